"""Hangs (issue 20): every wait has a bound, and each bound is checked against a wall clock.

A server that drips its reply, a Retry-After of a day, a judge reply with a hundred thousand braces and
`--threads 1000` each end (or are clipped) in seconds. Each test runs the slow part in a daemon thread or a
subprocess with a timeout, so on code without the bound it fails in bounded time instead of hanging.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fabulist.cli import main
from fabulist.data import prompts as pr
from fabulist.data.teachers import api
from fabulist.data.teachers.base import Budget
from fabulist.errors import FabulistError
from fabulist.eval import grading
from fabulist.eval import judge as jd
from tests.data import test_generate_api as generate_api
from tests.data.fault_server import FaultServer
from tests.eval.judge_server import GRADE, JudgeServer


def write_prompts(path: Path, tags: list[str]) -> list[dict]:
    return generate_api.write_prompts(path, tags, seed=11)


def finishes_within(seconds: float, call) -> tuple[bool, dict]:
    """Run call() in a daemon thread; (whether it finished within `seconds`, {'result' or 'error'})."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), box


# --- 1. --timeout is a deadline for the whole request ----------------------------------------------------


@pytest.mark.integration
def test_a_server_dripping_a_byte_a_second_is_cut_at_the_timeout(tmp_path):
    """Each read gets a byte within a second, so a per-read timeout of 3 s never fires; the deadline does."""
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    write_prompts(prompts, ["[[fault:drip]]", ""])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with FaultServer(drip_interval=1.0) as server:
        cmd = [sys.executable, "-m", "fabulist.cli", "data", "generate", "--prompts", str(prompts),
               "-o", str(out), "--base-url", server.base_url, "--model", "m", "--timeout", "3",
               "--max-retries", "0", "--concurrency", "2"]  # fmt: skip
        start = time.monotonic()
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert elapsed < 25, elapsed  # 3 s of deadline plus interpreter start-up; the drip takes minutes
    (error,) = [json.loads(x) for x in (tmp_path / "fables.errors.jsonl").read_text().splitlines()]
    assert error["error"] == "timeout (gave up after 1 attempts)"
    assert len(out.read_text().splitlines()) == 1


@pytest.mark.integration
def test_the_judge_has_the_same_deadline(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge")
    from tests.eval.test_judge import write_run

    write_run(tmp_path / "run", ["A fox ran home. [[fault:drip]]"])
    with JudgeServer(drip_interval=0.5) as server:
        judge = jd.Judge("test-judge", server.base_url, timeout=1.0, max_retries=1, backoff=0.01)
        start = time.monotonic()
        finished, box = finishes_within(20, lambda: grading.run(tmp_path / "run", judge))
        elapsed = time.monotonic() - start
    assert finished and "error" not in box, box
    assert box["result"]["failures"] == 1 and box["result"]["requests"] == 2
    assert elapsed < 6, elapsed  # two attempts of 1 s each; the dripped reply takes minutes


# --- 2. Retry-After is obeyed up to a cap ----------------------------------------------------------------


def test_retry_after_is_capped_at_max_backoff():
    teacher = api.APITeacher("m", "http://127.0.0.1:9/v1")
    assert teacher.max_backoff == 60.0  # the cap the --max-retries help promises
    assert teacher._delay(0, 100_000.0) == 60.0
    assert teacher._delay(0, 2.0) >= 2.0  # a modest Retry-After is still honoured in full


@pytest.mark.integration
def test_a_retry_after_of_a_day_does_not_stall_the_run(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (prompt,) = pr.sample(1, seed=3, variants={"full": 1.0})
    prompt["prompt"] = "[[fault:hugewaitx1]]" + prompt["prompt"]
    with FaultServer() as server:
        teacher = api.APITeacher(
            "m", server.base_url, timeout=5, max_retries=2, backoff=0.01, max_backoff=0.3
        )
        start = time.monotonic()
        finished, box = finishes_within(20, lambda: teacher.write(prompt, Budget()))
        elapsed = time.monotonic() - start
        times = server.requests["[[fault:hugewaitx1]]"]
    assert finished and box["result"].record is not None, box
    assert len(times) == 2 and times[1] - times[0] < 2.0 and elapsed < 5, (times, elapsed)


# --- 3. the judge's tolerant parser is linear and bounded ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("{" * 30_000, False),  # under the size limit: 30,000 unmatched braces
        ("{" * 15_000 + "}" * 15_000, False),  # 15,000 nested empty objects
        ("{" * 20_000 + json.dumps(GRADE), True),  # a grade after 20,000 stray braces is still found
        ('{"a": ' * 4_000 + json.dumps(GRADE), True),
        ('{"a": ' + "[" * 20_000 + json.dumps(GRADE), True),  # deeper than json's recursion limit
        ("{" * 100_000, False),  # over the size limit: refused without being scanned
        ("x" * 40_000 + json.dumps(GRADE), False),
    ],
)
def test_judge_parse_is_linear_in_the_braces(text, found):
    start = time.monotonic()
    finished, box = finishes_within(5, lambda: jd.parse(text))
    elapsed = time.monotonic() - start
    assert finished and "error" not in box, box
    assert (box["result"] is not None) == found
    assert elapsed < 0.5, elapsed  # the old scan: 8,000 braces 3.3 s, 20,000 over a minute


def test_judge_parse_limit_is_documented():
    assert jd.MAX_REPLY == 32_000 and jd.parse(" " * (jd.MAX_REPLY - 200) + json.dumps(GRADE)) is not None


# --- 4. --threads is bounded by the machine's cores ------------------------------------------------------


class Stop(FabulistError):
    pass


def test_generate_threads_are_clipped_to_the_cores(tmp_path, monkeypatch):
    seen = {}

    def fake_load(model_dir, fmt, quant, threads, graph):
        seen["threads"] = threads
        raise Stop("stopped before loading")

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr("fabulist.runtime.load.load_generator", fake_load)
    res = CliRunner().invoke(main, ["generate", "--model", str(tmp_path), "--character", "fox", "--threads",
                                    "1000"])  # fmt: skip
    assert seen["threads"] == 2
    assert (
        res.stderr.splitlines()[0] == "note: --threads 1000 is more than this machine's 2 CPU cores; using 2"
    )
    res = CliRunner().invoke(main, ["generate", "--model", str(tmp_path), "--threads", "2"])
    assert seen["threads"] == 2 and "note:" not in res.stderr


def test_eval_run_threads_are_clipped_to_the_cores(tmp_path, monkeypatch):
    seen = {}

    def fake_run(*args):
        seen["threads"] = args[-1]
        raise Stop("stopped before loading")

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr("fabulist.eval.generate.run", fake_run)
    res = CliRunner().invoke(main, ["eval", "run", "--model", str(tmp_path), "--out", str(tmp_path / "o"),
                                    "--threads", "1000"])  # fmt: skip
    assert seen["threads"] == 2 and "using 2" in res.stderr


def test_bench_threads_are_clipped_and_deduplicated(tmp_path, monkeypatch):
    from fabulist.bench import suite

    seen = {}

    def fake_suite(opts):
        seen["threads"] = opts.threads
        raise Stop("stopped before measuring")

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(suite, "run_suite", fake_suite)
    res = CliRunner().invoke(main, ["bench", "run", "--threads", "1,1000,2", "--out", str(tmp_path)])
    assert seen["threads"] == (1, 2) and "--threads 1000 is more than" in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--threads", "0"],
        ["eval", "run", "--model", ".", "--out", "o", "--threads", "-1"],
        ["bench", "run", "--threads", "1,0"],
        ["bench", "run", "--threads", "1,many"],
    ],
)
def test_fewer_than_one_thread_is_refused(args, monkeypatch):
    from fabulist.bench import suite

    monkeypatch.setattr(suite, "run_suite", lambda opts: pytest.fail("ran with a bad --threads"))
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--threads': "), line
