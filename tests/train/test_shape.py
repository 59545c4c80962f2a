"""Custom shapes: `fabulist train --shape` and TrainConfig.shape build the model they describe, and runs
made without a shape keep the identity they had (so they still resume)."""

import json
import subprocess
import sys

import pytest

from fabulist.train import presets
from fabulist.train.trainer import TrainConfig

SHAPE = {"hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1,
         "intermediate_size": 96}  # fmt: skip


def test_custom_shapes_are_checked_like_presets():
    p = presets.custom("mine", SHAPE, context=128, lr=2e-3)
    assert (p.hidden_size, p.num_hidden_layers, p.context, p.lr, p.head_dim) == (64, 3, 128, 2e-3, 16)
    assert presets.parse_shape("64,3,4,1,96") == SHAPE
    assert (
        presets.resolve("fable-1m", SHAPE).context == presets.get("fable-1m").context
    )  # context, lr inherited
    assert presets.resolve("fable-1m") == presets.get("fable-1m")
    for bad, message in [({**SHAPE, "num_key_value_heads": 3}, "kv heads must divide heads"),
                         ({**SHAPE, "intermediate_size": 100}, "multiples of 32"),
                         ({**SHAPE, "num_hidden_layers": 0}, "must be positive"),
                         ({"hidden_size": 64}, "missing")]:  # fmt: skip
        with pytest.raises(presets.PresetError, match=message):
            presets.custom("mine", bad)
    with pytest.raises(presets.PresetError, match="expected hidden,layers,heads,kv_heads,ffn"):
        presets.parse_shape("64,3,4")


def test_runs_without_a_shape_keep_their_identity():
    assert "shape" not in TrainConfig(preset="fable-1m").identity()
    assert TrainConfig(preset="x", shape=SHAPE).identity()["shape"] == SHAPE


@pytest.mark.slow
def test_cli_trains_a_custom_shape(fables, tmp_path):
    train_path, valid_path = fables
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fabulist.cli", "train", "--preset", "mine", "--shape", "64,3,4,1,96",
           "--data", str(train_path), "--valid", str(valid_path), "--out", str(out), "--vocab-size", "512",
           "--context", "64", "--batch-size", "4", "--max-steps", "3", "--lr", "3e-3"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert [config[k] for k in presets.SHAPE_KEYS] == list(SHAPE.values())
    record = json.loads((out / "training.json").read_text())
    assert record["shape"] == SHAPE and record["preset"] == "mine"
    assert record["parameters"] == presets.custom("mine", SHAPE).parameters(config["vocab_size"])
    bad = subprocess.run([*cmd[:7], "64,3", *cmd[8:]], capture_output=True, text=True, timeout=120)
    assert (
        bad.returncode == 1
        and bad.stderr.startswith("error: --shape '64,3'")
        and "Traceback" not in bad.stderr
    )
