"""ONNX quantization methods (`fabulist export --method`): the method table and its refusals, weight-only
INT8 against its gate where dynamic INT8 misses it, the calibrated (GPTQ) and data-free (k-quant, HQQ) INT4
methods through the one validation pass, the method recorded in the manifest, and calibration files."""

import json
import math
import subprocess
import sys

import pytest

from fabulist import fable_format as ff
from fabulist.export import run
from fabulist.export.calib import calibration_texts
from fabulist.export.errors import ExportError
from fabulist.export.onnx import load_proto, methods, quantize_graph, validate_onnx
from fabulist.export.validate import Reference

pytestmark = pytest.mark.slow


def _bits(path) -> list[int]:
    nodes = load_proto(path).graph.node
    return sorted(a.i for n in nodes if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "bits")


def test_each_precision_gets_its_method_or_its_default():
    assert methods(["fp32", "int8", "int4"], None) == {"int8": "rtn", "int4": "gptq"}
    assert methods(["int8", "int4"], "rtn") == {"int8": "rtn", "int4": "rtn"}
    assert methods(["int8", "int4"], "gptq") == {"int8": "rtn", "int4": "gptq"}
    assert methods(["int8"], "dynamic") == {"int8": "dynamic"}


@pytest.mark.parametrize(
    ("quants", "method", "message"),
    [
        (
            ["int4"],
            "awq",
            "unknown quantization method 'awq' for --quant int4 (int4: gptq, rtn, k_quant, hqq)",
        ),
        (["int8"], "gptq", "unknown quantization method 'gptq' for --quant int8 (int8: rtn, dynamic, fold)"),
        (["fp32"], "rtn", "unknown quantization method 'rtn' for --quant fp32 (none for fp32)"),
    ],
)
def test_a_method_no_requested_precision_has_is_refused(quants, method, message):
    with pytest.raises(ExportError) as e:
        methods(quants, method)
    assert str(e.value) == message


def test_cli_refuses_a_bad_method_or_calib_in_one_line(tmp_path, tiny_model):
    cases = [
        (
            ("--method", "awq"),
            "error: unknown quantization method 'awq' for --quant int4 (int4: gptq, rtn",
        ),
        (
            ("--format", "gguf", "--quant", "int8", "--method", "rtn"),
            "error: --method rtn applies to ONNX int8/int4 artifacts",
        ),  # q8_0 has no method
        (("--quant", "int8", "--calib", "x.jsonl"), "error: --calib x.jsonl is read only by --method gptq"),
    ]
    for args, expected in cases:
        cmd = [sys.executable, "-m", "fabulist.cli", "export", str(tiny_model), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(expected), result.stderr
    assert not (tiny_model / "onnx").exists()


@pytest.fixture(scope="module")
def exported(trained_tiny_model):
    """fp32, weight-only int8 and GPTQ int4 of the briefly trained tiny model, validated."""
    from fabulist.export.onnx import export_onnx

    results = export_onnx(
        trained_tiny_model, ["fp32", "int8", "int4"], method="gptq", fast=False, progress=False
    )
    return trained_tiny_model, {r["quant"]: r for r in results}


def test_weight_only_int8_passes_its_gate_where_dynamic_misses_it(exported, tmp_path):
    model_dir, res = exported
    int8 = res["int8"]
    assert int8["method"] == "rtn" and int8["gate"] is None, int8["gate"]
    assert int8["validation"]["top1"] >= 0.97 and int8["validation"]["kld"] <= 0.01
    assert _bits(model_dir / int8["path"]) == [8] * 15  # 2 layers x 7 matrices + the LM head
    # dynamic INT8 of the same graph: activations quantized per tensor (measured: KLD 0.0011, top-1 97.0%)
    dynamic = quantize_graph(model_dir / "onnx/model.onnx", tmp_path / "dyn.onnx", "int8", "dynamic", [])
    metrics, _ = validate_onnx(dynamic, "int8", Reference(model_dir))
    assert metrics["kld"] > 3 * int8["validation"]["kld"]  # measured: 5x


def test_gptq_is_calibrated_on_the_frozen_fables_and_beats_rtn(exported, tmp_path):
    model_dir, res = exported
    gptq = res["int4"]
    assert gptq["method"] == "gptq"
    assert any(
        n.startswith("calibration: 64 frozen training-region fables (calib.json)") for n in gptq["notes"]
    )
    v = gptq["validation"]
    assert v["positions"] == res["fp32"]["validation"]["positions"]
    assert all(math.isfinite(v[k]) for k in ("kld", "top1", "ppl_ratio")) and v["top1"] > 0.5
    assert _bits(model_dir / gptq["path"]) == [4] * 15
    rtn = quantize_graph(model_dir / "onnx/model.onnx", tmp_path / "rtn.onnx", "int4", "rtn", [])
    rtn_metrics, _ = validate_onnx(rtn, "int4", Reference(model_dir))
    assert v["kld"] < 0.9 * rtn_metrics["kld"], (v["kld"], rtn_metrics["kld"])  # the point of calibrating


def test_gptq_without_error_spreading_is_rtn(exported, tmp_path):
    # H = I: each row's rounding error goes nowhere, so GPTQ must write RTN's codes and scales exactly
    import numpy as np
    from onnx import numpy_helper

    from fabulist.export import gptq

    model_dir = exported[0]
    fp32 = load_proto(model_dir / "onnx/model.onnx")
    name, (_, weight) = next(iter(gptq.weighted_matmuls(fp32).items()))
    w = numpy_helper.to_array(next(i for i in fp32.graph.initializer if i.name == weight))
    packed, scales, _ = gptq.pack(*gptq.solve(w, np.eye(w.shape[0])), np.float32)
    rtn = load_proto(quantize_graph(model_dir / "onnx/model.onnx", tmp_path / "r.onnx", "int4", "rtn", []))
    node = next(n for n in rtn.graph.node if n.name == name + "_Q4")
    inits = {i.name: numpy_helper.to_array(i) for i in rtn.graph.initializer}
    assert np.array_equal(packed.reshape(inits[node.input[1]].shape), inits[node.input[1]])
    assert np.array_equal(scales.reshape(-1), inits[node.input[2]].reshape(-1))


@pytest.mark.parametrize("method", ["k_quant", "hqq"])
def test_data_free_int4_methods_validate(exported, tmp_path, method):
    model_dir = exported[0]
    notes = []
    path = quantize_graph(model_dir / "onnx/model.onnx", tmp_path / "q4.onnx", "int4", method, notes)
    metrics, _ = validate_onnx(path, "int4", Reference(model_dir))
    assert all(math.isfinite(metrics[k]) for k in ("kld", "top1", "ppl_ratio")) and metrics["top1"] > 0.5
    assert _bits(path) == [4] * 15
    assert f"MatMulNBits 4-bit, method {method}, block 32, asymmetric, accuracy_level None" in notes


def test_the_method_round_trips_into_the_manifest(fresh_tiny_model):
    run.export_model(fresh_tiny_model, "onnx", "int8", validate=False, progress=False, method="dynamic")
    run.export_model(fresh_tiny_model, "onnx", "int4", validate=False, progress=False, method="k_quant")
    manifest = json.loads((fresh_tiny_model / "export_manifest.json").read_text())
    got = {a["path"]: a.get("method") for a in manifest["artifacts"]}
    assert got == {"onnx/model_int8.onnx": "dynamic", "onnx/model_q4.onnx": "k_quant",
                   "onnx-genai/int4/model.onnx": "rtn"}  # fmt: skip
    run.export_model(fresh_tiny_model, "onnx", "int8", validate=False, progress=False)
    manifest = json.loads((fresh_tiny_model / "export_manifest.json").read_text())
    assert {a["path"]: a.get("method") for a in manifest["artifacts"]}["onnx/model_int8.onnx"] == "rtn"


def test_calibration_from_a_fables_file(tmp_path):
    records = [{"fable": f"Fable {i}. Moral: Share.", "variant": "full",
                "elements": {"character": "fox", "trait": "brave", "setting": "forest", "conflict":
                             "sharing-food", "resolution": "reward", "moral": "kindness-is-rewarded"}}
               for i in range(3)]  # fmt: skip
    path = tmp_path / "fables.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    texts, note = calibration_texts(path, n=2)
    assert texts == [ff.training_text(r) for r in records[:2]]
    assert note == "calibration: the first 2 fables of fables.jsonl"
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "x"}\n')
    for bad, message in [
        (tmp_path / "none.jsonl", "none.jsonl: file not found"),
        (tmp_path / "prompts.jsonl", r"prompts.jsonl:1: missing field\(s\) fable"),
    ]:
        with pytest.raises(ExportError, match=message):
            calibration_texts(bad)
