"""ONNX export of the tiny model: parity with PyTorch, the KV-cache path, quantized graphs, layout, errors."""

import json
import math
from collections import Counter

import pytest

from fabulist import fable_format as ff
from fabulist.export.errors import ExportError
from fabulist.export.onnx import OnnxLM, export_onnx, load_proto, validate_onnx
from fabulist.export.validate import Reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every artifact of one fresh tiny model (optimum fp32/int8/int4 and genai fp32/int4), validated."""
    from tests.builders import make_model_dir

    model_dir = make_model_dir(tmp_path_factory.mktemp("onnx-model"))
    results = export_onnx(model_dir, ["fp32", "int8", "int4"], progress=False)
    return model_dir, {(r["format"], r["quant"]): r for r in results}


def _ops(model_dir, rel):
    return Counter(n.op_type for n in load_proto(model_dir / rel, load_external_data=False).graph.node)


def test_layout_and_no_temp_files(exported):
    model_dir, res = exported
    assert sorted(p.name for p in (model_dir / "onnx").iterdir()) == [
        "model.onnx",
        "model_int8.onnx",
        "model_q4.onnx",
    ]
    assert sorted(p.name for p in (model_dir / "onnx-genai").iterdir()) == ["fp32", "int4"]
    assert set(res) == {
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("onnx", "int4"),
        ("onnx-genai", "fp32"),
        ("onnx-genai", "int4"),
    }
    for r in res.values():
        assert (model_dir / r["path"]).is_file() and r["bytes"] > 0 and r["notes"]
    assert res["onnx", "int4"]["path"] == "onnx/model_q4.onnx"
    assert res["onnx", "int4"]["bytes"] < res["onnx", "int8"]["bytes"] < res["onnx", "fp32"]["bytes"]
    genai = json.loads((model_dir / "onnx-genai/fp32/genai_config.json").read_text())
    assert genai["model"]["context_length"] == 256
    assert json.loads((model_dir / "fable_format.json").read_text()) == ff.describe()


def test_fp32_parity_and_kv_greedy(exported):
    _, res = exported
    for fmt in ("onnx", "onnx-genai"):
        r = res[fmt, "fp32"]
        assert r["gate"] is None, r["gate"]
        assert r["validation"]["max_abs_diff"] <= 1e-3
        assert r["validation"]["greedy_match"] and r["validation"]["greedy_tokens"] > 0
        assert r["validation"]["top1"] == 1.0


@pytest.mark.parametrize("key", [("onnx", "int8"), ("onnx", "int4"), ("onnx-genai", "int4")])
def test_quantized_metrics(exported, key):
    v = exported[1][key]["validation"]
    assert all(math.isfinite(v[k]) for k in ("max_abs_diff", "kld", "top1", "ppl_ratio"))
    assert 0.0 <= v["top1"] <= 1.0 and 0.0 <= v["kld"] < 0.1 and 0.9 < v["ppl_ratio"] < 1.1
    assert v["top1"] > 0.5  # random weights give flat distributions; real checkpoints do far better


def test_graph_io_and_ops(exported):
    model_dir, _ = exported
    graph = load_proto(model_dir / "onnx/model.onnx", load_external_data=False).graph
    assert {"input_ids", "attention_mask", "position_ids", "past_key_values.0.key"} <= {
        i.name for i in graph.input
    }
    assert {"logits", "present.0.key", "present.1.value"} <= {o.name for o in graph.output}
    assert _ops(model_dir, "onnx/model_q4.onnx")["MatMulNBits"] >= 15  # 2 layers x 7 + LM head
    int8 = _ops(model_dir, "onnx/model_int8.onnx")  # weight-only by default: 8-bit MatMulNBits, LM head too
    assert int8["MatMulNBits"] == 15 and int8["MatMulInteger"] + int8["DynamicQuantizeLinear"] == 0
    genai = _ops(model_dir, "onnx-genai/int4/model.onnx")
    assert genai["GroupQueryAttention"] == 2 and genai["MatMulNBits"] > 0


def test_quant_only_keeps_fp32_out_and_lm_head_8bit(fresh_tiny_model):
    res = export_onnx(
        fresh_tiny_model, ["int4"], validate=False, lm_head_8bit=True, fast=False, progress=False
    )
    assert [r["path"] for r in res] == ["onnx/model_q4.onnx"] and res[0]["validation"] is None
    assert sorted(p.name for p in (fresh_tiny_model / "onnx").iterdir()) == ["model_q4.onnx"]
    nodes = load_proto(fresh_tiny_model / "onnx/model_q4.onnx").graph.node
    bits = {n.name: a.i for n in nodes if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "bits"}
    assert bits.pop("/lm_head/MatMul_Q8") == 8 and set(bits.values()) == {4}


def test_onnx_greedy_matches_torch_on_another_prompt(exported):
    model_dir, _ = exported
    ref = Reference(model_dir, n_texts=1, max_tokens=32)
    from fabulist.export.validate import torch_greedy

    prompt = ref.seqs[0][5:20]
    assert OnnxLM(model_dir / "onnx/model.onnx").greedy(prompt, 20, ref.eos) == torch_greedy(
        model_dir, prompt, 20
    )


def _bad_dir(tmp_path, config=None, tokenizer=True):
    tmp_path.mkdir(exist_ok=True)
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    if tokenizer:
        (tmp_path / "tokenizer.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize(
    "case, match",
    [
        ("no_config", "is not a model folder"),
        ("no_tokenizer", "has no tokenizer.json"),
        ("gpt2", "model_type 'gpt2' is not supported; supported: llama, qwen2"),
        ("quant", r"unknown ONNX quant \['q3'\]"),
    ],
)
def test_bad_inputs(tmp_path, case, match):
    folder = {
        "no_config": lambda: _bad_dir(tmp_path),
        "no_tokenizer": lambda: _bad_dir(tmp_path, {"model_type": "llama"}, tokenizer=False),
        "gpt2": lambda: _bad_dir(tmp_path, {"model_type": "gpt2"}),
        "quant": lambda: _bad_dir(tmp_path, {"model_type": "llama"}),
    }[case]()
    with pytest.raises(ExportError, match=match) as err:
        export_onnx(folder, ["q3"] if case == "quant" else ["fp32"], progress=False)
    assert "\n" not in str(err.value)


def test_corrupt_onnx_is_an_export_error(tmp_path, exported):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ExportError, match="cannot load"):
        OnnxLM(bad)
    with pytest.raises(ExportError, match="cannot read ONNX file"):
        load_proto(bad)
    with pytest.raises(ExportError, match="cannot load"):
        validate_onnx(bad, "fp32", None)
