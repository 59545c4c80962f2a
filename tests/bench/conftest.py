"""One quick benchmark run (a tiny random model, every row, one thread), shared by the bench tests: run as a
user of the wheel runs it, from a folder outside the repository with the wheel's own files."""

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, installed_wheel):
    _, site = installed_wheel
    cwd = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import fabulist.bench.suite as s; print(s.__file__)"],
                           capture_output=True, text=True, env=env, cwd=cwd)  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    r = subprocess.run([sys.executable, "-m", "fabulist.cli", "bench", "run", "--quick"],
                       capture_output=True, text=True, env=env, cwd=cwd, timeout=1500)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = cwd / "benchmarks" / "work" / "quick"  # the documented default under the working directory
    return json.loads((out / "results.json").read_text()), out
