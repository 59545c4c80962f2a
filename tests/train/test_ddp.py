"""The same command under torchrun (2 CPU processes, gloo) follows the 1-process loss curve."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def run(fables, out, nproc: int) -> list[float]:
    train_path, valid_path = fables
    args = ["train", "--preset", "fable-1m", "--data", str(train_path), "--valid", str(valid_path),
            "--out", str(out), "--vocab-size", "2048", "--context", "512", "--batch-size", "8",
            "--max-steps", "5", "--warmup-steps", "2", "--lr", "3e-3", "--eval-every", "100",
            "--seed", "2"]  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = (
        [*launcher, "-m", "fabulist.cli", *args]
        if nproc > 1
        else [sys.executable, "-m", "fabulist.cli", *args]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_follow_one(fables, tmp_path):
    single = run(fables, tmp_path / "one", 1)
    double = run(fables, tmp_path / "two", 2)
    assert len(single) == len(double) == 5
    assert single[-1] < single[0]
    for a, b in zip(single, double, strict=True):
        assert abs(a - b) <= 2e-3 * abs(a), (single, double)
    record = json.loads((tmp_path / "two" / "training.json").read_text())
    one = json.loads((tmp_path / "one" / "training.json").read_text())
    assert record["processes"] == 2 and record["packing"] == "docs"
    # whole fables of 248-451 tokens, padding not counted: the same global batches in both runs
    assert record["tokens_seen"] == one["tokens_seen"] and 5 * 8 * 248 <= record["tokens_seen"] < 5 * 8 * 512
