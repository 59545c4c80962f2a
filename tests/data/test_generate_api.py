"""The real `openai` client and the `fabulist data generate` process against a local fault-injecting
OpenAI-compatible server on 127.0.0.1."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fabulist.data import prompts as pr
from fabulist.records import FABLE_FIELDS, dumps
from tests.data.fault_server import FABLE, FaultServer

pytestmark = pytest.mark.integration
SECRET = "sk-test-DO-NOT-LEAK-8f3a1c"
TAGS = ["", "", "[[fault:429x2]]", "[[fault:500x1]]", "[[fault:timeoutx1]]", "[[fault:malformedx1]]",
        "[[fault:empty]]", "[[fault:length]]"]  # fmt: skip


def write_prompts(path: Path, tags: list[str], seed: int = 7) -> list[dict]:
    """Prompt records whose prompts start with the fault server's tags (one record per tag)."""
    records = list(pr.sample(len(tags), seed=seed, variants={"full": 1.0}))
    for record, tag in zip(records, tags, strict=True):
        record["prompt"] = f"{tag}{record['prompt']}"
    path.write_text("".join(dumps(r) + "\n" for r in records))
    return records


def run_generate(server: FaultServer, prompts: Path, out: Path, *extra: str, key: str | None = SECRET):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if key:
        env["OPENAI_API_KEY"] = key
    cmd = [sys.executable, "-m", "fabulist.cli", "data", "generate", "--prompts", str(prompts),
           "-o", str(out), "--base-url", server.base_url, "--model", "test-teacher", "--timeout", "0.5",
           "--max-retries", "3", "--backoff", "0.05", "--concurrency", "4", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_faults_records_errors_and_retries(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    records = write_prompts(prompts, TAGS)
    with FaultServer() as server:
        result = run_generate(server, prompts, out)
        assert result.returncode == 0, result.stderr
        counts = {key: len(times) for key, times in server.requests.items()}
        times_429 = server.requests["[[fault:429x2]]"]
        gaps_429 = [b - a for a, b in itertools.pairwise(times_429)]
        assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)

    written = lines(out)
    assert len(written) == 6 and len({r["prompt_hash"] for r in written}) == 6
    by_hash = {r["prompt_hash"]: r for r in written}
    for record, tag in zip(records, TAGS, strict=True):
        assert (record["prompt_hash"] in by_hash) == (tag not in ("[[fault:empty]]", "[[fault:length]]"))
    one = written[0]
    assert list(one)[: len(FABLE_FIELDS)] == list(FABLE_FIELDS)
    assert one["fable"] == FABLE and one["llm_input_tokens"] == 50 and one["llm_output_tokens"] == 100
    assert one["llm_name"] == "test-teacher" and one["teacher"] == "openai"
    assert one["sampling"]["temperature"] == 1.0 and one["sampling"]["base_url"] == server.base_url

    # exactly the retries the faults call for, and Retry-After honoured between 429s
    assert counts["[[fault:429x2]]"] == 3 and counts["[[fault:500x1]]"] == 2
    assert counts["[[fault:timeoutx1]]"] == 2 and counts["[[fault:malformedx1]]"] == 2
    assert counts["[[fault:empty]]"] == 1 and counts["[[fault:length]]"] == 1
    assert min(gaps_429) >= 0.95

    errors = lines(tmp_path / "fables.errors.jsonl")
    reasons = sorted(e["error"] for e in errors)
    assert (
        len(errors) == 2 and reasons[0] == "empty content" and reasons[1].startswith("finish_reason=length")
    )
    assert "wrote 6 fables" in result.stdout and "2 failed" in result.stdout and "5 retries" in result.stdout

    everything = (
        out.read_text() + (tmp_path / "fables.errors.jsonl").read_text() + result.stdout + result.stderr
    )
    assert SECRET not in everything


def test_rerun_retries_failures_without_duplicates(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    write_prompts(prompts, TAGS)
    with FaultServer() as server:
        assert run_generate(server, prompts, out).returncode == 0
        again = run_generate(server, prompts, out)  # upstream still broken for the two
        assert "6 already there" in again.stdout and "2 failed" in again.stdout
        server.heal()
        healed = run_generate(server, prompts, out)
        assert healed.returncode == 0 and "wrote 2 fables" in healed.stdout
    written = lines(out)
    assert len(written) == 8 and len({r["prompt_hash"] for r in written}) == 8
    assert len(lines(tmp_path / "fables.errors.jsonl")) == 4  # two failures in each of the first two runs


def test_gives_up_after_max_retries(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    write_prompts(prompts, ["[[fault:always500]]"])
    with FaultServer() as server:
        result = run_generate(server, prompts, out)
        assert len(server.requests["[[fault:always500]]"]) == 4
    assert result.returncode == 1 and out.read_text() == ""  # every prompt failed: not a success
    (error,) = lines(tmp_path / "fables.errors.jsonl")
    assert error["error"] == "HTTP 500 (gave up after 4 attempts)" and error["attempts"] == 4


def test_a_server_that_is_gone_stops_the_run_with_one_line(tmp_path):
    """No server on the port: after --concurrency prompts in a row give up on connection errors, the run
    stops with one line (instead of filing every remaining prompt as an error) and keeps what it wrote."""
    import socket

    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    write_prompts(prompts, [""] * 12)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused

    class Gone:
        base_url = f"http://127.0.0.1:{port}/v1"

    result = run_generate(Gone, prompts, out)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {Gone.base_url} stopped accepting connections (4 requests in a row gave up); "
        "what was written is kept: rerun the same command to resume"
    )
    errors = lines(tmp_path / "fables.errors.jsonl")
    assert len(errors) == 4 and all(e["error"].startswith("connection error (gave up") for e in errors)
    assert out.read_text() == ""


def test_max_cost_stops_cleanly(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    write_prompts(prompts, [""] * 6)
    with FaultServer(usage=(0, 1000)) as server:  # each fable: 1000 output tokens at $1000/M = $1
        budget = ["--concurrency", "1", "--price-in", "0", "--price-out", "1000", "--max-cost", "2.5"]
        result = run_generate(server, prompts, out, *budget)
    assert result.returncode == 0, result.stderr
    assert len(lines(out)) == 3
    assert "cost $3.0000" in result.stdout and "--max-cost reached" in result.stdout


def test_missing_key_for_openai_is_one_line(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    write_prompts(prompts, [""])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    cmd = [sys.executable, "-m", "fabulist.cli", "data", "generate", "--prompts", str(prompts), "-o",
           str(tmp_path / "f.jsonl"), "--teacher", "openai", "--model", "gpt-4o-mini"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: OPENAI_API_KEY is not set (needed for the OpenAI API; or pass --base-url)"
    )
