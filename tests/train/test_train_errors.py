"""Bad training input: one clear line, a non-zero exit, nothing overwritten."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def fabulist_train(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fabulist.cli", "train", "--vocab-size", "512", "--context", "64",
           "--batch-size", "4", "--max-steps", "2", "--eval-every", "100", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def one_line(result, expected: str) -> None:
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_unknown_preset_lists_the_valid_ones(fables, tmp_path):
    result = fabulist_train("--preset", "fable-7b", "--data", str(fables[0]), "--out", str(tmp_path / "r"))
    one_line(result, "error: unknown preset 'fable-7b'; choose from fable-1m, fable-3m, fable-5m")


def test_empty_and_too_small_data(fables, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    one_line(fabulist_train("--preset", "fable-1m", "--data", str(empty), "--out", str(tmp_path / "a")),
             f"error: {empty}: no fables in it")  # fmt: skip
    small = tmp_path / "small.jsonl"
    small.write_text(fables[0].read_text().splitlines()[0] + "\n")
    result = fabulist_train("--preset", "fable-1m", "--data", str(small), "--out", str(tmp_path / "b"),
                            "--batch-size", "64")  # fmt: skip
    one_line(result, "fewer than one batch of 64")


def test_resume_refuses_corrupt_and_different_runs(fables, tmp_path):
    out = tmp_path / "run"
    base = ("--preset", "fable-1m", "--data", str(fables[0]), "--out", str(out))
    assert fabulist_train(*base, "--stop-after", "1", "--save-every", "1").returncode == 0
    ckpt = out / "checkpoints" / "step-0000001"
    one_line(fabulist_train(*base), "already holds this run; pass --resume")
    one_line(
        fabulist_train(*base, "--resume", "--lr", "0.5"), "already holds a different run (differs in lr)"
    )
    run_json = (out / "run.json").read_bytes()
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    one_line(fabulist_train(*base, "--resume"), f"checkpoint {ckpt} is corrupt or incomplete")
    assert (out / "run.json").read_bytes() == run_json and not (out / "model.safetensors").exists()


def test_foreign_folder_is_not_overwritten(fables, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"meow")
    one_line(fabulist_train("--preset", "fable-1m", "--data", str(fables[0]), "--out", str(out)),
             "is not empty and holds no fabulist run")  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["cat.jpg"]


def test_bad_token_budget_and_init_folder(fables, tmp_path):
    data = str(fables[0])
    one_line(fabulist_train("--preset", "fable-1m", "--data", data, "--out", str(tmp_path / "a"),
                            "--max-tokens", "0"), "error: need --max-tokens >= 1")  # fmt: skip
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty-model"
    empty.mkdir()
    result = fabulist_train("--preset", "fable-1m", "--data", data, "--out", str(tmp_path / "b"),
                            "--init", str(empty))  # fmt: skip
    one_line(result, f"error: --init {empty}: no model.safetensors in it")
    junk = tmp_path / "junk-model"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"")
    (junk / "tokenizer.json").write_bytes(b"\x00\x01 not a tokenizer")
    one_line(fabulist_train("--preset", "fable-1m", "--data", data, "--out", str(tmp_path / "c"),
                            "--init", str(junk)), "error: cannot load tokenizer")  # fmt: skip
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()  # nothing made for a bad --init
