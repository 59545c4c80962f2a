"""GGUF export validated with real llama.cpp (llama-cpp-python) on tiny random Llama folders."""

import json
import math
import shutil

import pytest

from fabulist.export import gguf as gg
from fabulist.export.errors import ExportError

pytestmark = pytest.mark.slow
QUANTS = ["f32", "f16", "q8_0", "q4_0", "q4_k_m"]


@pytest.fixture(scope="module")
def tiny_results(tiny_model, tmp_path_factory):
    model = shutil.copytree(tiny_model, tmp_path_factory.mktemp("gguf64") / "model")
    return model, {r["quant"]: r for r in gg.export_gguf(model, QUANTS, progress=False)}


@pytest.fixture(scope="module")
def results_256(tiny_model_256, tmp_path_factory):
    model = shutil.copytree(tiny_model_256, tmp_path_factory.mktemp("gguf256") / "model")
    return model, {r["quant"]: r for r in gg.export_gguf(model, ["f32", "f16", "q8_0", "q4_0", "q4_k_m"],
                                                            validate=False, progress=False)}  # fmt: skip


def test_f32_matches_torch_logits_and_greedy(tiny_results):
    f32 = tiny_results[1]["f32"]
    assert f32["validation"]["max_abs_diff"] <= 1e-3
    assert f32["validation"]["greedy_match"] is True
    assert f32["gate"] is None


def test_tokenizer_parity_on_all_probes(tiny_results):
    for r in tiny_results[1].values():
        assert r["validation"]["tokenizer_mismatches"] == []


def test_all_quants_written_with_metrics(tiny_results):
    model, results = tiny_results
    written = [*(f"model-{q}.gguf" for q in QUANTS), "imatrix.gguf"]  # the 4-bit quants' importance
    assert sorted(p.name for p in (model / "gguf").iterdir()) == sorted(written)
    for q, r in results.items():
        assert r["path"] == f"gguf/model-{q}.gguf" and r["bytes"] == (model / r["path"]).stat().st_size
        v = r["validation"]
        assert all(math.isfinite(v[k]) for k in ("max_abs_diff", "kld", "ppl_ratio"))
        assert 0.0 <= v["top1"] <= 1.0
    assert results["f16"]["gate"] is None
    assert results["q8_0"]["validation"]["kld"] < results["q4_0"]["validation"]["kld"]


def test_k_quant_fallbacks_reported_for_dim_64(tiny_results):
    r = tiny_results[1]["q4_k_m"]
    assert not any(t.endswith("_K") for t in r["fallbacks"])
    assert any("fell back" in n and "256" in n for n in r["notes"])


def test_k_quants_used_for_dim_256(results_256):
    r = results_256[1]["q4_k_m"]
    assert r["fallbacks"].get("Q4_K", 0) > 0 and r["method"] == "imatrix"
    assert not [n for n in r["notes"] if n.startswith("Q4_K_M")]  # no fallback: rows of 256 take Q4_K
    assert r["validation"] is None


def test_sizes_decrease_with_precision(results_256):
    b = {q: r["bytes"] for q, r in results_256[1].items()}
    assert b["f32"] > b["f16"] > b["q8_0"] > b["q4_0"]


def test_intermediate_f32_removed(tiny_model, tmp_path):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    gg.export_gguf(model, ["q8_0"], validate=False, progress=False)
    assert [p.name for p in (model / "gguf").iterdir()] == ["model-q8_0.gguf"]


def test_an_earlier_f32_survives_a_later_quantization(tiny_model, tmp_path):
    # q4_0 alone quantizes from a temp f32: the model-f32.gguf an earlier export wrote stays as it was
    model = shutil.copytree(tiny_model, tmp_path / "model")
    gg.export_gguf(model, ["f32"], validate=False, progress=False)
    before = (model / "gguf" / "model-f32.gguf").read_bytes()
    gg.export_gguf(model, ["q4_0"], validate=False, progress=False)
    assert sorted(p.name for p in (model / "gguf").iterdir()) == [
        "imatrix.gguf",
        "model-f32.gguf",
        "model-q4_0.gguf",
    ]
    assert (model / "gguf" / "model-f32.gguf").read_bytes() == before


def test_failed_write_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    import gguf

    model = shutil.copytree(tiny_model, tmp_path / "model")

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(ExportError, match="disk full"):
        gg.export_gguf(model, ["f32", "q4_0"], validate=False, progress=False)
    assert list((model / "gguf").iterdir()) == []


@pytest.mark.parametrize("case", ["not_model", "no_tokenizer", "not_llama", "bad_quant"])
def test_bad_input(tiny_model, tmp_path, case):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    quants = ["f32"]
    if case == "not_model":
        model = tmp_path / "empty"
        model.mkdir()
    elif case == "no_tokenizer":
        (model / "tokenizer.json").unlink()
    elif case == "not_llama":
        cfg = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    else:
        quants = ["q3_k"]
    with pytest.raises(ExportError) as e:
        gg.export_gguf(model, quants, validate=False, progress=False)
    assert "\n" not in str(e.value)


def test_corrupt_gguf_is_an_export_error(tmp_path):
    bad = tmp_path / "model-f32.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 10)
    with pytest.raises(ExportError):
        gg.tensor_types(bad)
    with pytest.raises(ExportError):
        gg._load_llama(bad)


def test_truncated_gguf_is_an_export_error(tiny_results, tmp_path):
    src = tiny_results[0] / "gguf" / "model-f32.gguf"
    bad = tmp_path / "model-f32.gguf"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ExportError, match="re-export"):
        gg.tensor_types(bad)
    with pytest.raises(ExportError, match="re-export"):
        gg._load_llama(bad)
