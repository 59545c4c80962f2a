"""`fabulist data generate` against llama-cpp-python's real OpenAI-compatible server, serving a GGUF the
project trained and exported in the test session (tests.llama_server): finish_reason=length handled,
records written, the key sent (the server demands it) and never stored, and a server killed mid-run."""

import json
import subprocess
import sys

import pytest

from fabulist.data import prompts as pr
from fabulist.records import dumps
from tests.llama_server import LlamaServer, clean_env, gone_message, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECRET = "sk-test-llama-DO-NOT-LEAK-51c2"


def write_prompts(path, n: int) -> list[dict]:
    records = list(pr.sample(n, seed=21))
    path.write_text("".join(dumps(r) + "\n" for r in records))
    return records


def generate_cmd(prompts, out, base_url: str, max_tokens: int) -> list[str]:
    return [sys.executable, "-m", "fabulist.cli", "data", "generate", "--prompts", str(prompts),
            "-o", str(out), "--base-url", base_url, "--model", "tiny-teacher", "--temperature", "0",
            "--max-tokens", str(max_tokens), "--concurrency", "1", "--timeout", "60", "--max-retries", "1",
            "--backoff", "0.05"]  # fmt: skip


def generate(*args) -> subprocess.CompletedProcess:
    env = clean_env(OPENAI_API_KEY=SECRET)
    return subprocess.run(generate_cmd(*args), capture_output=True, text=True, env=env, timeout=300)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_real_server_as_teacher_length_then_records(answering_gguf, tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    records = write_prompts(prompts, 6)
    with LlamaServer(answering_gguf, tmp_path / "server.log", api_key=SECRET) as server:
        # 2 tokens cannot hold a fable: every reply is cut (finish_reason=length), an error, not a record
        cut = generate(prompts, out, server.base_url, 2)
        assert cut.returncode == 1, cut.stderr + server.tail()  # every prompt failed: not a success
        assert "wrote 0 fables" in cut.stdout and "6 failed" in cut.stdout
        assert cut.stderr.strip().splitlines()[-1] == (
            "error: all 6 prompts tried failed and no fable was written; the reasons are in the errors file "
            "(rerun the same command to retry them)"
        )
        full = generate(prompts, out, server.base_url, 96)  # the model ends its fables well before 96
        assert full.returncode == 0, full.stderr
        assert "wrote 6 fables" in full.stdout and "0 failed" in full.stdout
        assert server.requests() == 12 and 'HTTP/1.1" 401' not in server.log.read_text()
    errors = lines(tmp_path / "fables.errors.jsonl")
    assert len(errors) == 6 and all(e["error"].startswith("finish_reason=length") for e in errors)
    written = lines(out)
    assert [r["prompt_hash"] for r in written] == [r["prompt_hash"] for r in records]
    for r in written:
        assert r["fable"].strip() and r["llm_name"] == "tiny-teacher" and r["teacher"] == "openai"
        assert r["llm_output_tokens"] > 0 and r["sampling"]["max_tokens"] == 96
        assert r["sampling"]["base_url"] == server.base_url
    everything = out.read_text() + (tmp_path / "fables.errors.jsonl").read_text()
    assert SECRET not in everything + cut.stdout + cut.stderr + full.stdout + full.stderr


def test_server_killed_mid_run_stops_with_one_line_and_the_rerun_completes_once(answering_gguf, tmp_path):
    prompts, out, total = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl", 60
    records = write_prompts(prompts, total)
    server = LlamaServer(answering_gguf, tmp_path / "server.log", api_key=SECRET).start()
    try:
        cmd = generate_cmd(prompts, out, server.base_url, 96)
        with running(cmd, clean_env(OPENAI_API_KEY=SECRET)) as proc:
            assert wait_for(lambda: out.exists() and out.read_text().count("\n") >= 4), server.tail()
            server.kill()
            stdout, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, stdout + err
        assert err.strip().splitlines()[-1] == gone_message(server.base_url, 3)
        before = lines(out)
        assert 4 <= len(before) < total
        errors = lines(tmp_path / "fables.errors.jsonl")
        assert len(errors) == 3 and all(e["error"].startswith("connection error") for e in errors)
        with LlamaServer(answering_gguf, tmp_path / "server2.log", port=server.port, api_key=SECRET) as again:
            rerun = generate(prompts, out, again.base_url, 96)
            assert rerun.returncode == 0, rerun.stderr + again.tail()
            assert again.requests() == total - len(before)
    finally:
        server.kill()
    assert (
        f"wrote {total - len(before)} fables" in rerun.stdout
        and f"{len(before)} already there" in rerun.stdout
    )
    raw = out.read_text()
    assert raw.endswith("\n") and len(raw.splitlines()) == total  # whole lines only
    written = lines(out)
    assert sorted(r["prompt_hash"] for r in written) == sorted(r["prompt_hash"] for r in records)
