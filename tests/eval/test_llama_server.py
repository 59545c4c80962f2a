"""The judge against llama-cpp-python's real OpenAI-compatible server, serving a GGUF the project trained
and exported in the test session (tests.llama_server): structured output through `json_object` + `schema`
(the server refuses `json_schema`), grades in range, a rerun that sends nothing, and a server killed
mid-run whose grades the cache keeps."""

import json
import sqlite3
import subprocess
import sys

import pytest

from fabulist.eval import evalset
from fabulist.eval.judge import AGE_GROUPS, DIMENSIONS
from tests.llama_server import LlamaServer, clean_env, gone_message, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORIES = [
    "The hen found a seed and shared it with her friends.\n\nMoral: Sharing makes friends.",
    "A small fox ran home before the rain.\n\nMoral: Be kind.",
    "The owl waited and waited. Then the moon came up.",
    "Once there was a cat who lied. Nobody believed him again.\n\nMoral: Tell the truth.",
]


def cached(run_dir) -> int:
    """Grades in the judge's cache so far (0 before the judge has made it)."""
    try:
        with sqlite3.connect(f"file:{run_dir / 'judge-cache.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
    except sqlite3.Error:  # no file or no table yet
        return 0


def write_run(run_dir, n: int) -> None:
    """A run folder with n completions, two per prompt of the evaluation set."""
    prompts = evalset.load()
    run_dir.mkdir(parents=True)
    rows = [
        {"prompt_id": prompts[i // 2].id, "sample": i % 2, "text": STORIES[i % len(STORIES)]}
        for i in range(n)
    ]
    (run_dir / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def judge_cmd(run_dir, base_url: str) -> list[str]:
    return [sys.executable, "-m", "fabulist.cli", "eval", "judge", str(run_dir), "--judge-base-url", base_url,
            "--judge-model", "tiny-judge", "--concurrency", "1", "--timeout", "60", "--max-retries", "1",
            "--backoff", "0.05"]  # fmt: skip


def judge(run_dir, base_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(judge_cmd(run_dir, base_url), capture_output=True, text=True, env=clean_env(),
                          timeout=300)  # fmt: skip


def test_real_server_grades_through_json_object_and_a_rerun_sends_nothing(answering_gguf, tmp_path):
    run = tmp_path / "run"
    write_run(run, 6)
    with LlamaServer(answering_gguf, tmp_path / "server.log") as server:
        first = judge(run, server.base_url)
        assert first.returncode == 0, first.stderr + server.tail()
        summary = json.loads((run / "judge.json").read_text())
        sent = server.requests()
        again = judge(run, server.base_url)
        assert again.returncode == 0, again.stderr
        assert server.requests() == sent  # every grade from the cache: not one request
        log = server.log.read_text()
    # json_schema was asked once and refused (llama-cpp-python: HTTP 500), then json_object + schema
    assert sent == 1 + 6 and log.count("500 Internal Server Error") == 1
    assert summary["structured_output"] == "json_object" and summary["requests"] == 6
    assert summary["graded"] == 6 and summary["failures"] == 0 and summary["cache_hits"] == 0
    assert summary["input_tokens"] > 6 * 500  # the server's own usage counts (the rubric is long)
    rows = [json.loads(line) for line in (run / "judgments.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["error"] is None for r in rows)
    for r in rows:
        assert all(1 <= r["grade"][d] <= 10 for d in DIMENSIONS) and r["grade"]["age_group"] in AGE_GROUPS
    rerun = json.loads((run / "judge.json").read_text())
    assert rerun["cache_hits"] == 6 and rerun["requests"] == 0 and rerun["input_tokens"] == 0
    assert "6 cache hits" in again.stderr and "| overall |" in again.stdout
    report = json.loads((run / "report.json").read_text())
    assert 1 <= report["judge"]["scores"]["overall"]["mean"] <= 10


def test_server_killed_mid_run_keeps_grades_and_the_rerun_asks_only_for_the_rest(answering_gguf, tmp_path):
    run, total = tmp_path / "run", 16
    write_run(run, total)
    server = LlamaServer(answering_gguf, tmp_path / "server.log").start()
    try:
        with running(judge_cmd(run, server.base_url), clean_env()) as proc:
            # killed once four grades are in the cache: the server logs a request when its answer is
            # sent, which can be before the judge has stored it (kept was 3 once)
            assert wait_for(lambda: server.requests() >= 1 + 4 and cached(run) >= 4), server.tail()
            server.kill()
            _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert err.strip().splitlines()[-1] == gone_message(server.base_url, 3)
        with sqlite3.connect(run / "judge-cache.sqlite") as db:
            kept = db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
        assert 4 <= kept < total
        with LlamaServer(answering_gguf, tmp_path / "server2.log", port=server.port) as again:
            rerun = judge(run, again.base_url)
            assert rerun.returncode == 0, rerun.stderr + again.tail()
            assert again.requests() == 1 + (total - kept)  # the refused json_schema request, then the rest
    finally:
        server.kill()
    s = json.loads((run / "judge.json").read_text())
    assert s["cache_hits"] == kept and s["requests"] == total - kept
    assert s["graded"] == total and s["failures"] == 0
    assert len((run / "judgments.jsonl").read_text().splitlines()) == total
