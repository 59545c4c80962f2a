"""Held-out perplexity, KL divergence and top-1 agreement against the fp32 PyTorch model, per artifact."""

import json

import numpy as np
import pytest

from fabulist.eval import heldout
from fabulist.export import validate as va
from fabulist.logits import LogitStats
from fabulist.records import dumps
from tests.builders import make_fables

pytestmark = pytest.mark.slow


def test_running_sums_match_export_validation_definitions():
    rng = np.random.default_rng(0)
    sums = LogitStats()
    refs, tests, targets = [], [], []
    for n in (5, 9):  # two texts of different lengths, accumulated
        ref, test = rng.normal(size=(n, 16)), rng.normal(size=(n, 16))
        tgt = rng.integers(0, 16, size=n - 1)
        sums.add(test, ref, tgt)
        refs.append(ref[:-1])
        tests.append(test[:-1])
        targets.append(tgt)
    got = sums.result()
    want = va.compare_logits(np.concatenate(refs), np.concatenate(tests), np.concatenate(targets))
    assert got["kld"] == pytest.approx(want["kld"]) and got["top1"] == pytest.approx(want["top1"])
    assert got["ppl"] / got["ref_ppl"] == pytest.approx(want["ppl_ratio"])


def test_every_format_against_the_pytorch_reference(onnx_model, tmp_path):
    torch_ = heldout.compute(onnx_model, "torch", None)
    assert torch_["reference"] is None and torch_["kld"] is None and torch_["texts"] == va.HELDOUT
    formats = (("onnx", "fp32"), ("onnx", "int4"), ("gguf", "f32"), ("gguf", "q4_0"))
    results = {(f, q): heldout.compute(onnx_model, f, q, threads=1) for f, q in formats}
    for r in results.values():
        assert r["positions"] == torch_["positions"] and r["ref_ppl"] == pytest.approx(torch_["ppl"])
    for exact in (("onnx", "fp32"), ("gguf", "f32")):
        r = results[exact]
        assert r["kld"] < 1e-6 and r["top1"] > 0.99 and r["ppl"] == pytest.approx(torch_["ppl"], rel=1e-4)
    for quantized, full in ((("onnx", "int4"), ("onnx", "fp32")), (("gguf", "q4_0"), ("gguf", "f32"))):
        assert results[quantized]["kld"] > 100 * max(results[full]["kld"], 1e-9)
        assert results[quantized]["top1"] < 1.0


def test_validation_split_as_heldout_texts_and_the_cached_file(onnx_model, tmp_path):
    valid = tmp_path / "valid.jsonl"
    valid.write_text("".join(dumps(r) + "\n" for r in make_fables(5, seed=9)))
    run = tmp_path / "run"
    run.mkdir()
    settings = {"model": str(onnx_model), "format": "onnx", "quant": "int4"}
    (run / "run.json").write_text(json.dumps({"settings": settings}))
    first = heldout.ensure(run, valid, limit=3)
    assert first["texts"] == 3 and first["source"] == "valid.jsonl (first 3 fables)" and first["kld"] > 0
    assert heldout.ensure(run, valid, limit=3) == first == heldout.load(run)  # reused, not recomputed
    other = heldout.ensure(run)  # other texts: computed again
    assert other["texts"] == va.HELDOUT and other["settings"]["heldout"] is None
    (run / "heldout.json").unlink()
    settings["model"] = str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps({"settings": settings}))
    assert "not found" in heldout.ensure(run)["unavailable"]
