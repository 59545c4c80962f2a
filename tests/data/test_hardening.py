"""Data loss and security (issue 20): what a refusal must leave untouched, and what must never reach disk.

Each refusal is one line on stderr starting "error: ", exit status 1, and every file byte for byte as it
was (a sha256 of each file under tmp_path before and after).
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fabulist.data import prompts as pr
from fabulist.records import AppendLog, RecordError, dumps
from tests.builders import assert_plot
from tests.data.fault_server import FaultServer
from tests.eval.judge_server import JudgeServer

SECRET = "sk-proj-SENTINEL-7f3e9a1c5b2d4e6f8a0b"
FAB = [sys.executable, "-m", "fabulist.cli"]


def fabulist(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FAB, *args], capture_output=True, text=True, timeout=120, env=env)


def tree(root: Path) -> dict[str, str]:
    """Every path under root -> sha256 of its bytes ('dir' for a folder)."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def assert_refused(result, line: str) -> None:
    """Exactly one stderr line, the expected one, exit status 1, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr == line + "\n", result.stderr


def write_prompts(path: Path, n: int = 3, tags: tuple[str, ...] = ()) -> list[dict]:
    records = list(pr.sample(n, seed=5, variants={"full": 1.0}))
    for record, tag in zip(records, tags, strict=False):
        record["prompt"] = f"{tag}{record['prompt']}"
    path.write_text("".join(dumps(r) + "\n" for r in records))
    return records


def write_prompts_path(tmp_path: Path) -> Path:
    path = tmp_path / "src-prompts.jsonl"
    write_prompts(path)
    return path


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    write_prompts(path)
    return path


def generate(prompts: Path, out: Path, *extra: str, env: dict | None = None):
    return fabulist("data", "generate", "--prompts", str(prompts), "-o", str(out), "--teacher", "procedural",
                    *extra, env=env)  # fmt: skip


# --- 1. `models pack --name` is one folder name under --dest, never a path ------------------------------


def fake_run(root: Path) -> tuple[Path, Path, Path]:
    """Just enough of an exported run for `pack` to copy it (the model card is stubbed)."""
    from fabulist.export.pack import META, SHIP

    run = root / "run"
    for rel in (*SHIP, *META):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel == "onnx-genai/int4":
            (run / rel).mkdir()
            (run / rel / "model.onnx").write_bytes(b"onnx")
        else:
            (run / rel).write_text(rel)
    (run / "training.json").write_text(json.dumps({"data": "/private/train.parquet"}))
    (run / "export_manifest.json").write_text(json.dumps({"artifacts": []}))
    quality, reproduce = root / "quality.json", root / "reproduce.sh"
    quality.write_text(json.dumps({"results": {"int4": {"summary": {}}}}))
    reproduce.write_text("fabulist train\n")
    return run, quality, reproduce


@pytest.mark.parametrize("name", ["./../victim", "../x", "", ".", "..", "a/b", ".hidden", "a\\b", "m\n"])
def test_pack_name_must_be_one_plain_folder_name(tmp_path, monkeypatch, name):
    from fabulist.cli import main
    from fabulist.export import pack

    monkeypatch.setattr(pack, "card", lambda *args: "a card\n")
    root = tmp_path / "work"
    run, quality, reproduce = fake_run(root)
    dest, victim = root / "models", root / "victim"
    (dest / "kept").mkdir(parents=True)
    (dest / "kept" / "README.md").write_text("an earlier model\n")
    victim.mkdir()
    (victim / "precious.txt").write_text("not a model\n")
    args = ["models", "pack", str(run), "--quality", str(quality), "--reproduce", str(reproduce)]
    before = tree(tmp_path)
    result = CliRunner().invoke(main, [*args, "--name", name, "--dest", str(dest)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: --name {name!r} is not a plain folder name: use letters, digits, '-', '_' and '.', "
        "not starting with '.'\n"
    )
    assert tree(tmp_path) == before  # nothing written outside --dest, no .tmp folder, victim intact
    good = CliRunner().invoke(main, [*args, "--name", "fable-1.0_b", "--dest", str(dest)])
    assert good.exit_code == 0, good.output
    assert sorted(p.name for p in dest.iterdir()) == ["fable-1.0_b", "kept"]
    assert (dest / "fable-1.0_b" / "README.md").read_text() == "a card\n"
    assert (victim / "precious.txt").read_text() == "not a model\n"


def test_ladder_rung_names_follow_the_same_rule():
    from fabulist.ladder.config import LadderError, _rung

    with pytest.raises(LadderError) as caught:
        _rung(
            {"name": "a\\b", "family": "deep-thin", "preset": "fable-1m"}, "rungs[0]", "1M", 1, 1, 256, "auto"
        )
    assert str(caught.value) == (
        "rungs[0]: name must be a non-empty folder name: letters, digits, '-', '_' and '.', not starting "
        "with '.' (got 'a\\\\b')"
    )


# --- 2. the torn-line repair cuts only a torn record, and only in a fables file -------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "1: not UTF-8 text"),
        (b"my notes\nsecond line without a newline", "1: not valid JSON (Expecting value)"),
        (b'{"a": 1}\n{"b": 2}', "1: missing field(s) prompt_hash, fable"),
        (b'{"prompt_hash": "x", "fable": "kept"}\n[1, 2]', "2: expected a JSON object"),
        (b'{"prompt_hash": "x", "fable": "kept"}\n{"prompt_hash": "y"}', "2: missing field(s) fable"),
    ],
    ids=["binary", "text", "json-without-fable-fields", "json-array-tail", "record-without-fable"],
)
def test_generate_refuses_a_file_that_is_not_fables_and_leaves_it(prompts_file, tmp_path, content, line):
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    before = tree(tmp_path)
    result = generate(prompts_file, out)
    assert_refused(result, f"error: {out}:{line}; not a fables file, so it is left as it is")
    assert out.read_bytes() == content and tree(tmp_path) == before  # no errors file, no lock file


def test_a_whole_last_record_without_newline_is_kept(prompts_file, tmp_path):
    out = tmp_path / "fables.jsonl"
    assert generate(prompts_file, out, "--limit", "2").returncode == 0
    two = out.read_bytes()
    assert two.count(b"\n") == 2
    out.write_bytes(two[:-1])  # a complete record that only lacks its newline
    result = generate(prompts_file, out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote 1 fables to ") and "; 2 already there, 0 failed" in result.stdout
    text = out.read_bytes()
    assert text.startswith(two) and text.count(b"\n") == 3
    hashes = [json.loads(x)["prompt_hash"] for x in text.splitlines()]
    assert len(set(hashes)) == 3


def test_a_torn_last_record_is_still_cut(prompts_file, tmp_path):
    out = tmp_path / "fables.jsonl"
    assert generate(prompts_file, out, "--limit", "2").returncode == 0
    two = out.read_bytes()
    first_end = two.index(b"\n") + 1
    torn = two[: first_end + 41]
    out.write_bytes(torn)
    result = generate(prompts_file, out)
    assert result.returncode == 0, result.stderr
    assert "; 1 already there, 0 failed" in result.stdout
    assert "repaired a torn last line (41 bytes cut; that fable was written again)" in result.stdout
    assert out.read_bytes().startswith(two[:first_end]) and out.read_bytes().count(b"\n") == 3


def test_append_log_without_required_fields_checks_its_last_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b'{"step": 1}\n{"step": 2}')  # whole record: gets its newline
    with AppendLog(log) as a:
        assert (a.repaired_bytes, a.newline_added) == (0, True)
        a.append([{"step": 3}])
    assert log.read_bytes() == b'{"step": 1}\n{"step": 2}\n{"step":3}\n'
    log.write_bytes(b'{"step": 1}\n{"step": 2, "lo')  # torn: cut
    with AppendLog(log) as a:
        assert a.repaired_bytes == len(b'{"step": 2, "lo')
    assert log.read_bytes() == b'{"step": 1}\n'
    log.write_bytes(b'{"step": 1}\nnot a record')  # foreign text: refused, untouched
    with pytest.raises(RecordError) as caught:
        AppendLog(log)
    assert str(caught.value) == (
        f"{log}:2: not valid JSON (Expecting value); not a JSONL log, so it is left as it is"
    )
    assert log.read_bytes() == b'{"step": 1}\nnot a record'


# --- 3. the API key never reaches disk, whatever field a server echoes it into --------------------------


def api_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, "OPENAI_API_KEY": SECRET}


def no_secret_under(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.mark.integration
def test_generate_scrubs_an_echoed_key_from_fables_and_errors(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    records = write_prompts(prompts, 3, ("[[fault:echo401]]", "[[fault:echo400]]", "[[fault:echokey]]"))
    with FaultServer() as server:
        result = fabulist("data", "generate", "--prompts", str(prompts), "-o", str(out), "--base-url",
                          server.base_url, "--model", "test-teacher", "--max-retries", "1",
                          "--backoff", "0.01", "--concurrency", "1", env=api_env())  # fmt: skip
        assert server.auth_headers == [f"Bearer {SECRET}"] * 3  # the key did travel
    assert result.returncode == 0, result.stderr
    assert no_secret_under(tmp_path) == [] and SECRET not in result.stdout + result.stderr
    errors = {
        e["prompt_hash"]: e["error"] for e in map(json.loads, (tmp_path / "fables.errors.jsonl").open())
    }
    assert errors == {
        records[0]["prompt_hash"]: "HTTP 401: Error code: 401 - Incorrect API key provided: [redacted]. "
        "You can find your API key at https://platform.openai.com.",
        records[1]["prompt_hash"]: "HTTP 400: Error code: 400 - bad request; headers were Authorization: "
        "[redacted]",
    }
    (fable,) = map(json.loads, out.open())
    assert fable["prompt_hash"] == records[2]["prompt_hash"]
    assert fable["llm_name"] == "test-teacher+[redacted]" and fable["fable"].endswith("\n([redacted])")


def test_dumps_scrubs_keys_and_bearer_tokens_everywhere(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    record = {"a": [f"x{SECRET}y", {SECRET: 1}], "b": "Bearer eyJhbGciOi.J9abc123", "c": "The Bearer of news"}
    assert dumps(record) == (
        '{"a":["x[redacted]y",{"[redacted]":1}],"b":"[redacted]","c":"The Bearer of news"}'
    )
    monkeypatch.setenv("OPENAI_API_KEY", "fox")  # too short to be a secret: only "Bearer fox" goes
    assert dumps({"fable": "A fox said: Bearer fox"}) == '{"fable":"A fox said: [redacted]"}'


@pytest.mark.integration
def test_judge_scrubs_an_echoed_key_from_judgments_and_cache(tmp_path):
    from fabulist.eval import evalset

    run = tmp_path / "run"
    run.mkdir()
    prompts = evalset.load()
    texts = ["A fox. [[fault:echo401]]", "A hen. [[judge:echokey]]", "A cat."]
    rows = [{"prompt_id": prompts[i].id, "sample": 0, "text": t} for i, t in enumerate(texts)]
    (run / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with JudgeServer() as server:
        result = fabulist("eval", "judge", str(run), "--judge-base-url", server.base_url, "--judge-model",
                          "test-judge", "--max-retries", "1", "--backoff", "0.01", env=api_env())  # fmt: skip
        assert {b["model"] for b in server.bodies} == {"test-judge"} and len(server.auth_headers) == 3
    assert result.returncode == 0, result.stderr
    assert no_secret_under(tmp_path) == [] and SECRET not in result.stdout + result.stderr
    judged = {r["prompt_id"]: r for r in map(json.loads, (run / "judgments.jsonl").open())}
    assert judged[prompts[0].id]["error"] == (
        "HTTP 401: Error code: 401 - Incorrect API key provided: [redacted]. You can find your API key at "
        "https://platform.openai.com."
    )
    assert judged[prompts[1].id]["grade"]["rationale"] == "Fine. Sent with [redacted]."
    assert judged[prompts[2].id]["grade"]["rationale"] == "Fine."


# --- 4. --errors, -o and --prompts must be three different files ----------------------------------------


@pytest.mark.parametrize(
    ("args", "same"),
    [
        (["-o", "fables.jsonl", "--errors", "fables.jsonl"],
         ("--errors", "fables.jsonl", "-o", "fables.jsonl")),
        (["-o", "fables.jsonl", "--errors", "link.jsonl"], ("--errors", "link.jsonl", "-o", "fables.jsonl")),
        (["-o", "fables.jsonl", "--errors", "prompts.jsonl"],
         ("--errors", "prompts.jsonl", "--prompts", "prompts.jsonl")),
        (["-o", "sub/../prompts.jsonl"], ("-o", "sub/../prompts.jsonl", "--prompts", "prompts.jsonl")),
    ],
    ids=["errors-is-output", "errors-links-to-output", "errors-is-prompts", "output-is-prompts"],
)  # fmt: skip
def test_errors_output_and_prompts_must_differ(prompts_file, tmp_path, args, same):
    out = tmp_path / "fables.jsonl"
    out.write_text(dumps({"prompt_hash": "kept", "fable": "an earlier fable"}) + "\n")
    (tmp_path / "link.jsonl").symlink_to(out)
    (tmp_path / "sub").mkdir()
    paths = [str(tmp_path / a) if not a.startswith("-") else a for a in args]
    before = tree(tmp_path)
    result = fabulist("data", "generate", "--prompts", str(prompts_file), "--teacher", "procedural", *paths)
    flag_a, a, flag_b, b = same
    assert_refused(result, f"error: {flag_a} {tmp_path / a} is the same file as {flag_b} {tmp_path / b}; "
                           f"give {flag_a} a file of its own")  # fmt: skip
    assert tree(tmp_path) == before


# --- 5. one run at a time per output: fables file, judge cache, training run -----------------------------


def hold_lock(target: Path) -> subprocess.Popen:
    """Another process that holds the lock on target until killed."""
    code = ("import sys, time\nfrom fabulist import locks\nlocks.exclusive(sys.argv[1], 'x')\n"
            "print('held', flush=True)\ntime.sleep(120)\n")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.integration
def test_a_second_generate_on_one_output_is_refused_naming_the_first(tmp_path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    write_prompts(prompts, 2, ("[[fault:timeoutx1]]",))
    # the first run waits in its first request, long enough for a second one to start on a busy machine
    with FaultServer(timeout_delay=180) as server:
        cmd = [*FAB, "data", "generate", "--prompts", str(prompts), "-o", str(out), "--base-url",
               server.base_url, "--model", "m", "--timeout", "300", "--concurrency", "1"]  # fmt: skip
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=api_env())
        try:
            lock = tmp_path / "fables.jsonl.lock"
            deadline = time.monotonic() + 60
            while not (lock.exists() and lock.read_text() == f"{first.pid}\n" and server.requests):
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            before = tree(tmp_path)
            second = generate(prompts, out)
            assert_refused(second, f"error: {out} is in use by another `fabulist data generate` run "
                                   f"(pid {first.pid}); wait for it to finish or stop it")  # fmt: skip
            assert tree(tmp_path) == before and out.read_bytes() == b""
        finally:
            first.kill()
            first.wait()
    again = generate(prompts, out)  # the kernel dropped the dead run's lock; its leftover file is reused
    assert again.returncode == 0 and again.stdout.startswith("wrote 2 fables")
    assert not (tmp_path / "fables.jsonl.lock").exists()


def test_the_judge_cache_is_locked(tmp_path):
    from fabulist.eval.cache import GradeCache

    cache = tmp_path / "judge-cache.sqlite"
    holder = hold_lock(cache)
    try:
        with pytest.raises(Exception) as caught:
            GradeCache(cache)
    finally:
        holder.kill()
        holder.wait()
    assert type(caught.value).__name__ == "LockError" and str(caught.value) == (
        f"{cache} is in use by another judge run using this cache (pid {holder.pid}); wait for it to finish "
        "or stop it"
    )
    with GradeCache(cache) as store:  # free again once the holder is gone
        store.put("k", {"grammar": 7}, 1, 2)
    assert not (tmp_path / "judge-cache.sqlite.lock").exists()


def test_the_training_run_folder_is_locked(tmp_path):
    from fabulist.locks import LockError
    from fabulist.train.trainer import TrainConfig, train

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    out = tmp_path / "run"
    holder = hold_lock(out)
    try:
        with pytest.raises(LockError) as caught:
            train(TrainConfig(data=str(data), out=str(out)), progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert str(caught.value) == (
        f"{out} is in use by another training run (pid {holder.pid}); wait for it to finish or stop it"
    )
    assert not out.exists()


def test_a_training_run_lets_go_of_its_folder_when_it_returns(tmp_path):
    """The lock lives as long as the run, not the process: a ladder or a test trains one folder again."""
    from fabulist.train.trainer import TrainConfig, TrainError, train

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "other.txt").write_text("not a run")
    for _ in range(2):  # the second call is refused for the folder, not for a lock this process still holds
        with pytest.raises(TrainError, match="is not empty and holds no fabulist run"):
            train(TrainConfig(data=str(data), out=str(out)), progress=False)
    assert not (tmp_path / "run.lock").exists()


# --- 6. no silent overwrite of a file of another kind ---------------------------------------------------


def test_prompts_refuse_to_replace_a_fables_file_without_force(tmp_path):
    out = tmp_path / "fables.jsonl"
    assert generate(write_prompts_path(tmp_path), out).returncode == 0
    fables = out.read_bytes()
    before = tree(tmp_path)
    result = fabulist("data", "prompts", "-n", "3", "-o", str(out))
    assert_refused(
        result, f"error: {out} holds fables; writing prompts would replace it (choose another -o, or --force)"
    )
    assert out.read_bytes() == fables and tree(tmp_path) == before
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n")
    result = fabulist("data", "prompts", "-n", "3", "-o", str(text))
    assert_refused(result, f"error: {text} is not a prompts file; writing prompts would replace it "
                           "(choose another -o, or --force)")  # fmt: skip
    assert text.read_text() == "my notes\n"
    prompts = tmp_path / "prompts.jsonl"
    assert fabulist("data", "prompts", "-n", "2", "-o", str(prompts)).returncode == 0
    assert fabulist("data", "prompts", "-n", "4", "-o", str(prompts)).returncode == 0  # extends its own kind
    forced = fabulist("data", "prompts", "-n", "3", "-o", str(out), "--force")
    assert forced.returncode == 0 and out.read_text().count("\n") == 3
    assert all("fable" not in json.loads(line) for line in out.read_text().splitlines())


def test_stats_plot_refuses_to_replace_a_non_png_without_force(tmp_path):
    from fabulist.cli import main

    fables = tmp_path / "fables.jsonl"
    assert generate(write_prompts_path(tmp_path), fables).returncode == 0
    report = tmp_path / "report.txt"
    report.write_text("my report\n")
    before = tree(tmp_path)
    for target in (report, fables):
        result = CliRunner().invoke(main, ["data", "stats", str(fables), "--plot", str(target)])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr == (
            f"error: --plot {target} exists and is not a PNG; choose another file, or --force to replace it\n"
        )
    assert tree(tmp_path) == before
    png = tmp_path / "words.png"
    assert CliRunner().invoke(main, ["data", "stats", str(fables), "--plot", str(png)]).exit_code == 0
    again = CliRunner().invoke(main, ["data", "stats", str(fables), "--plot", str(png)])
    assert again.exit_code == 0  # a PNG: replaced
    forced = CliRunner().invoke(main, ["data", "stats", str(fables), "--plot", str(report), "--force"])
    assert forced.exit_code == 0
    assert_plot(report)
