"""One quick benchmark run (a tiny random model, every row, one thread), shared by the bench tests."""

import pytest

from fabulist.bench import suite


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    opts = suite.quick_options(out / "results", work=out / "work")
    opts.log = False
    return suite.run_suite(opts), out / "results"
