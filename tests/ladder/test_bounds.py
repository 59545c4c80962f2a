"""The range rule and the deep-against-wide verdict on rows made here (no training)."""

import pytest

from fabulist.bench import fit
from fabulist.export import plan as pl
from fabulist.ladder import bounds
from fabulist.ladder import config as lc
from fabulist.train import presets

from .test_config import BASE, edited


def row(name, params, meets, family="deep-thin", size="55K", loss=5.0, quality=0.0, onnx=1000, gguf=900):
    return {"name": name, "params": params, "meets": meets, "family": family, "size": size,
            "valid_loss": loss, "vocab_size": 512, "quality": {"quality_score": quality},
            "artifacts": {"onnx": {"bytes": onnx}, "gguf": {"bytes": gguf}}}  # fmt: skip


def test_lower_bound_is_the_smallest_rung_that_meets_the_threshold():
    rows = [row("c", 300, True), row("a", 100, False), row("b", 200, True), row("d", 150, False)]
    assert bounds.lower_bound(rows) == {"rung": "b", "params": 200, "family": "deep-thin", "size": "55K"}
    assert bounds.lower_bound([row("a", 100, False)]) is None


def _largest_fitting(budget: int, context: int, quants: dict) -> str:
    """The rule written out again: presets by size; the last whose artifacts fit in both formats."""
    best = None
    for p in sorted(presets.load().values(), key=lambda p: p.parameters(512)):
        if all(
            fit.estimate(p, f, q, context, budget, pl.OVERHEAD_BYTES, 512)["fits"] for f, q in quants.items()
        ):
            best = p.name
    return best


# Written out: the largest preset whose INT4 (ONNX int4 + GGUF q4_0) and INT8 (int8 + q8_0) artifacts fit,
# as the planner's memory model (weights + KV cache + the runtime's fixed overhead) puts them today.
@pytest.mark.parametrize(
    ("budget", "context", "int4", "int8"),
    [("300MB", 2048, "mobilellm-125m", "fable-50m"), ("150MB", 512, "fable-15m", "fable-5m"),
     ("500MB", 4096, "mobilellm-125m", "mobilellm-125m")],
)  # fmt: skip
def test_upper_bound_follows_the_fit_planner(budget, context, int4, int8):
    cfg = lc.parse(edited(memory_budget=budget, fit_context=context))
    up = bounds.upper_bound([], cfg)
    assert {k: (v["largest"] or {}).get("name") for k, v in up.items()} == {"int4": int4, "int8": int8}
    for precision, quants in bounds.PRECISIONS.items():
        want = _largest_fitting(pl.parse_bytes(budget), context, quants)
        assert (up[precision]["largest"] or {}).get("name") == want
        assert up[precision]["limited_by"] == "budget"  # mobilellm-350m never fits these budgets
    assert up["int4"]["largest"]["params"] >= up["int8"]["largest"]["params"]


def test_upper_bound_says_when_every_candidate_fits_and_uses_measured_sizes():
    cfg = lc.parse(edited(fit_context=512))
    rows = [row("d", 53536, False, onnx=10**10), row("w", 57536, False, family="wide-shallow")]
    up = bounds.upper_bound(rows, cfg)["int4"]
    assert up["largest"]["name"] == "mobilellm-350m" and up["limited_by"] == "candidates"
    by_name = {c["name"]: c for c in up["candidates"]}
    assert by_name["d"]["source"] == "measured" and not by_name["d"]["fits"]  # a 10 GB ONNX file
    assert by_name["w"]["source"] == "measured" and by_name["w"]["fits"]
    assert by_name["fable-1m"]["source"] == "estimated"
    int8 = {c["name"]: c for c in bounds.upper_bound(rows, cfg)["int8"]["candidates"]}
    assert int8["d"]["source"] == "estimated"  # the ladder exported int4 only


def test_verdicts_pick_the_lower_validation_loss_with_a_tie_margin():
    rows = [row("a-d", 100, False, loss=4.0, quality=0.5), row("a-w", 110, False, "wide-shallow", loss=4.2),
            row("b-d", 200, False, size="B", loss=3.500), row("b-w", 210, False, "wide-shallow", "B", 3.505),
            row("c-d", 300, False, size="C", loss=3.3), row("c-w", 310, False, "wide-shallow", "C", 3.1),
            row("e-d", 400, False, size="E", loss=3.0)]  # fmt: skip
    v = bounds.verdicts(rows)
    assert [(x["size"], x["winner"]) for x in v] == [
        ("55K", "deep-thin"),
        ("B", "tie"),
        ("C", "wide-shallow"),
    ]
    assert v[0]["valid_loss_gap"] == pytest.approx(0.2) and v[0]["quality_gap"] == pytest.approx(0.5)
    assert (
        bounds.overall(v) == "no shape won: deep-thin 1, wide-shallow 1, ties 1 of 3 sizes (validation loss)"
    )
    assert bounds.overall(v[:1]).startswith("deep-thin won")
    assert BASE["sizes"][0]["size"] == "55K"
