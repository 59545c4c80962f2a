"""`generate -n 1000000`: refused from a memory estimate before the KV cache is allocated (issue 20).

Without the check the batch allocates until the OS kills the process (no message at all: the kernel's OOM
killer took 21 GB on a 24 GB machine for -n 100000). A million completions of the embedded model need
about 7 TB of KV cache at the default length, more than any CI machine has.
"""

import time

from tests.fuzz.conftest import Sandbox, run


def test_a_batch_that_cannot_fit_is_one_line_before_it_allocates(fresh):
    sandbox: Sandbox = fresh()
    start = time.perf_counter()
    result = run("generate -n", ["generate", "-n", "1000000", "--no-stream", "--seed", "0"], sandbox.root)
    (line,) = result.stderr.splitlines()
    assert (
        line.startswith("error: 1,000,000 completions of up to ")
        and "GB is available; ask for at most" in line
    )
    assert time.perf_counter() - start < 30
