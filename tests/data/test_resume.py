"""Exactly-once, resumable generation: a kill -9 mid-run, a torn last line, a rerun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fabulist.records import AppendLog, dumps

N = 60_000


def fabulist(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fabulist.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def test_append_log_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(dumps({"prompt_hash": "a"}) + "\n" + '{"prompt_hash": "b", "fab')
    with AppendLog(path) as log:
        assert log.repaired_bytes == len('{"prompt_hash": "b", "fab')
        log.append([{"prompt_hash": "b"}])
    assert [json.loads(x)["prompt_hash"] for x in path.read_text().splitlines()] == ["a", "b"]
    with AppendLog(path) as log:  # a clean file is left alone
        assert log.repaired_bytes == 0


@pytest.mark.slow
@pytest.mark.integration
def test_kill_9_then_resume_gives_exactly_n_unique_records(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    made = fabulist("data", "prompts", "--count", str(N), "--seed", "11", "-o", str(prompts))
    assert made.wait(timeout=300) == 0, made.stderr.read()
    run = fabulist("data", "generate", "--prompts", str(prompts), "-o", str(out), "--teacher", "procedural")
    deadline = time.monotonic() + 120
    while (not out.exists() or out.stat().st_size < 2_000_000) and time.monotonic() < deadline:
        assert run.poll() is None, "generate finished before it could be killed: raise N"
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    partial = out.read_bytes()
    assert 0 < partial.count(b"\n") < N

    again = fabulist("data", "generate", "--prompts", str(prompts), "-o", str(out), "--json")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    summary = json.loads(stdout)
    text = out.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # no torn line anywhere
    assert len(records) == N and len({r["prompt_hash"] for r in records}) == N
    assert summary["already_done"] + summary["written"] == N and summary["already_done"] > 0
    assert summary["repaired_bytes"] == (
        0 if partial.endswith(b"\n") else len(partial) - partial.rfind(b"\n") - 1
    )
    assert text.encode().startswith(partial[: partial.rfind(b"\n") + 1])  # what was written is kept as is
