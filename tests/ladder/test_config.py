"""Ladder configs: the shipped ones are valid ladders, and every bad value is one clear error."""

import copy
import itertools
import json
import subprocess
import sys

import pytest

from fabulist.ladder import config as lc
from fabulist.train import presets

DEEP = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 64}  # fmt: skip
WIDE = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 64}  # fmt: skip
RUNGS = [
    {"name": "d", "family": "deep-thin", "shape": DEEP},
    {"name": "w", "family": "wide-shallow", "shape": WIDE},
]
BASE = {"vocab_size": 512, "context": 256,
        "sizes": [{"size": "55K", "params": 55000, "tokens": 40000, "rungs": RUNGS}]}  # fmt: skip


def edited(**changes):
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return raw


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_shipped_configs_are_ladders(name):
    cfg = lc.load(name)
    sizes = list(dict.fromkeys(r.size for r in cfg.rungs))
    params = [[r.parameters(cfg.vocab_size) for r in cfg.rungs if r.size == s] for s in sizes]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(params))  # sizes do not overlap
    for s in sizes:
        here = [r for r in cfg.rungs if r.size == s]
        assert len({r.tokens for r in here}) == 1  # one token budget per size
    if name == "default":
        assert len(sizes) >= 5
        assert all({r.family for r in cfg.rungs if r.size == s} == set(lc.FAMILIES) for s in sizes)
        assert cfg.threshold == lc.quality_bar() and cfg.eval.count == 100 and cfg.memory_budget == "6GB"
    else:
        assert len(cfg.rungs) == 3


def test_rungs_resolve_shapes_presets_and_the_lr_rule():
    raw = edited(lr={"base": 3e-3, "hidden": 128, "max": 6e-3}, vocab_size=4096, context=384, sizes=[
        {"size": "1M", "params": 1_100_000, "tokens": 10_000, "rungs": [
            {"name": "p", "family": "wide-shallow", "preset": "fable-1m"},
            {"name": "c", "family": "deep-thin", "lr": 1e-3,
             "shape": {**WIDE, "num_hidden_layers": 24}}]}])  # fmt: skip
    cfg = lc.parse(raw)
    p, c = cfg.rungs
    one = presets.get("fable-1m")
    assert p.shape_dict() == {k: getattr(one, k) for k in presets.SHAPE_KEYS} and p.preset == "fable-1m"
    assert p.shape.context == 384 and p.lr == pytest.approx(3e-3)  # the ladder's context, lr at hidden 128
    assert c.lr == 1e-3 and c.shape.num_hidden_layers == 24
    assert cfg.steps(p) == 4  # ceil(10,000 tokens / (batch 8 x context 384))
    thin = lc.parse(edited(lr={"base": 3e-3, "hidden": 128, "max": 6e-3}))
    assert [r.lr for r in thin.rungs] == [pytest.approx(6e-3), pytest.approx(6e-3)]  # 3e-3 x 128/32 capped
    assert lc.parse(edited(lr={"base": 3e-3, "hidden": 128})).rungs[1].lr == pytest.approx(6e-3)  # 128/64


def test_misses_reads_minimums_and_maximums():
    thr = {"moral_line": 0.9, "repetition_4gram": 0.05, "valid_loss": 2.0}
    assert lc.misses({"moral_line": 0.95, "repetition_4gram": 0.01, "valid_loss": 1.5}, thr) == []
    got = lc.misses({"moral_line": 0.5, "repetition_4gram": 0.2, "valid_loss": None}, thr)
    assert got == ["moral_line 0.5 < 0.9", "repetition_4gram 0.2 > 0.05", "valid_loss not measured"]


def _rung0(**changes):
    raw = edited()
    raw["sizes"][0]["rungs"][0].update(changes)
    return raw


BAD = [
    (edited(colour="red"), "unknown key 'colour'"),
    (edited(sizes=[]), "sizes must be a non-empty list"),
    (edited(context=100), "context must be a whole number >= 256"),
    (edited(quant="int3"), "quant 'int3' is not one of int4, int8"),
    (edited(threshold={"beauty": 0.5}), "threshold: unknown metric 'beauty'"),
    (edited(threshold={"moral_line": 95}), "moral_line is a rate"),
    (edited(memory_budget="lots"), "memory_budget: bad memory budget 'lots'"),
    (edited(lr={"base": 1e-3}), "lr must be a positive number or"),
    (edited(train_fables=-3), "train_fables must be"),
    (edited(eval={"count": 0}), "eval: count must be a whole number >= 1"),
    (_rung0(family="deep"), "family 'deep' is not one of deep-thin, wide-shallow"),
    (_rung0(preset="fable-1m"), "give exactly one of shape or preset"),
    (_rung0(name="w"), "the rung name 'w' is used twice"),
    (_rung0(name="../x"), "name must be a non-empty folder name"),
    (_rung0(shape={**DEEP, "num_attention_heads": 3}), "heads must divide hidden_size"),
    (_rung0(shape={**DEEP, "layers": 3}), "unknown keys ['layers']"),
    (_rung0(shape={**DEEP, "num_hidden_layers": 40}), "from the size's 55,000"),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_configs_say_what_is_wrong(raw, message):
    with pytest.raises(lc.LadderError, match=None) as err:
        lc.parse(raw, "ladder config x.json")
    assert message in str(err.value) and str(err.value).startswith("ladder config x.json")


def test_sizes_must_increase():
    raw = edited()
    raw["sizes"].append({**copy.deepcopy(raw["sizes"][0]), "params": 50000})
    with pytest.raises(lc.LadderError, match="increasing order of params"):
        lc.parse(raw)


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), (json.dumps(edited(context="big")), "context must be a whole number")],
)
def test_cli_gives_one_line_errors(tmp_path, text, message):
    path = tmp_path / "ladder.json"
    path.write_text(text)
    for args in (
        ["plan", str(path)],
        ["run", str(path), "--data", "x", "--valid", "y", "--out", str(tmp_path)],
    ):
        cmd = [sys.executable, "-m", "fabulist.cli", "ladder", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ladder config") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_cli_plan_lists_the_rungs():
    cmd = [sys.executable, "-m", "fabulist.cli", "ladder", "plan", "tiny"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == [r.name for r in lc.load("tiny").rungs]
    assert "threshold: moral_line 0.95" in lines[-1]
