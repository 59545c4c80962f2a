"""The browser's precision, int8-fold (export/web.py): int8 weights in the file, fp32 MatMuls once onnxruntime
has loaded it; exported and validated like every artifact, and in transformers.js on the wasm kernels the
same greedy fable as the fp32 graph."""

import json

import numpy as np
import pytest

from tests.android.conftest import run_node
from tests.builders import make_model_dir

# make_model_dir's tiny Llama: 2 layers x (q 64x64, k 64x32, v 64x32, o 64x64, gate/up/down 64x128) and a
# 512 x 64 embedding that the LM head shares (tied): 2 x 36,864 + 32,768 weights
TINY_INT8_WEIGHTS = 106_496
# the fold starts from onnxruntime-genai's builder graph, which fuses q, k and v into one MatMul: five weight
# MatMuls per layer (qkv, o, gate, up, down) and the LM head
WEIGHT_MATMULS = 2 * 5 + 1


def _graph(path):
    import onnx

    return onnx.load(str(path))


def test_int8_fold_stores_int8_weights_and_no_integer_kernel(demo_model):
    from onnx import TensorProto

    model = _graph(demo_model / "onnx" / "model_int8_fold.onnx")
    inits = model.graph.initializer
    assert sum(int(np.prod(t.dims)) for t in inits if t.data_type == TensorProto.INT8) == TINY_INT8_WEIGHTS
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"MatMulNBits", "MatMulInteger", "DequantizeLinear", "DynamicQuantizeLinear"}
    assert "GroupQueryAttention" in ops  # the builder's fused graph, not optimum's
    # a quarter of fp32's bytes plus the graph itself (the tied table stored once, not twice)
    fp32 = (demo_model / "onnx" / "model.onnx").stat().st_size
    assert (demo_model / "onnx" / "model_int8_fold.onnx").stat().st_size < fp32 / 3


def test_onnxruntime_folds_the_weights_back_to_fp32(demo_model, tmp_path):
    """After onnxruntime's level-1 optimizations (what every session runs, onnxruntime-web's included) every
    weight MatMul reads an fp32 constant; only the embedding's Gather still reads int8 (a row per token)."""
    import onnxruntime as ort
    from onnx import TensorProto

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(
        str(demo_model / "onnx" / "model_int8_fold.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    graph = _graph(tmp_path / "optimized.onnx").graph
    inits = {t.name: t for t in graph.initializer}
    weights = [n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert len(weights) == WEIGHT_MATMULS
    assert all(inits[w].data_type == TensorProto.FLOAT and len(inits[w].dims) == 2 for w in weights)
    int8 = {name for name, t in inits.items() if t.data_type == TensorProto.INT8}
    readers = [n.op_type for n in graph.node if set(n.input) & int8]
    assert readers == ["Gather"]


@pytest.fixture(scope="module")
def fold_export(tmp_path_factory):
    """`fabulist export --format onnx --quant int8 --method fold` on a fresh tiny model, validated."""
    from fabulist.export import run

    folder = make_model_dir(tmp_path_factory.mktemp("fold-model"))
    run.export_model(folder, "onnx", "int8", progress=False, method="fold")
    return folder


def test_export_writes_validates_and_records_int8_fold(fold_export):
    manifest = json.loads((fold_export / "export_manifest.json").read_text())
    (art,) = manifest["artifacts"]
    assert (art["path"], art["format"], art["quant"], art["method"]) == (
        "onnx/model_int8_fold.onnx",
        "onnx",
        "int8",
        "fold",
    )
    assert art["files"] == ["onnx/model_int8_fold.onnx"]
    assert art["notes"][1] == (
        "folded from onnxruntime-genai's fp32 builder graph (fused ops: fewer kernels per token)"
    )
    assert art["notes"][2].startswith(f"{TINY_INT8_WEIGHTS:,} weights stored as int8")
    assert (
        art["notes"][3]
        == "token embedding: int8 rows gathered, then scaled (the tied LM head shares its table)"
    )
    # 2 x 36,864 fp32 + the head's 32,768 fp32 + the 32,768-byte int8 table = 458,752 bytes once loaded
    assert art["notes"][4].startswith("once loaded: 0.5 MB of weights")
    assert art["bytes"] == (fold_export / art["path"]).stat().st_size
    # the logits of symmetric per-channel int8 weights: far inside the INT8 gate's KLD (0.01)
    v = art["validation"]
    assert v["positions"] > 1000 and v["kld"] < 1e-3 and v["max_abs_diff"] < 0.25
    assert not (fold_export / "onnx" / "model_int8.onnx").exists()  # fold does not replace the rtn graph


def test_int8_fold_in_wasm_decodes_as_the_fp32_graph(demo_model):
    """transformers.js on onnxruntime-web's wasm kernels: the same greedy tokens as the fp32 graph, and the
    prompt's last logits within int8 weight rounding of fp32's."""
    labels = [{"character": "Fox"}, {"character": "Owl", "moral": "Honesty is the best policy."}, {}]
    got = run_node("tests/greedy.mjs", "--model", str(demo_model), "--labels", json.dumps(labels),
                   "--quants", "int8-fold,fp32", "--max", "40")  # fmt: skip
    for fold, fp32 in zip(got["results"]["int8-fold"], got["results"]["fp32"], strict=True):
        assert fold["prompt_ids"] == fp32["prompt_ids"]
        assert fold["tokens"] == fp32["tokens"] and len(fold["tokens"]) > 0
        gap = np.abs(np.asarray(fold["logits"]) - np.asarray(fp32["logits"])).max()
        assert 0 < gap < 0.25  # not the fp32 graph itself, and close to it


@pytest.mark.slow
@pytest.mark.integration
def test_chromium_speed_measures_every_precision_on_one_and_two_threads(demo_model):
    """benchmarks/web_precision.py's harness: every precision of the folder in headless Chromium, a worker
    per thread count (cross-origin isolated, so 2 threads are real), exactly --tokens tokens each run."""
    got = run_node("tests/chromium_speed.mjs", "--model", str(demo_model), "--threads", "1,2",
                   "--tokens", "8", "--repeats", "1")  # fmt: skip
    assert got["isolated"] is True and got["tokens"] == 8
    assert {t: got["loads"][t]["threads"] for t in got["loads"]} == {"1": 1, "2": 2}
    for by_quant in got["threads"].values():
        assert list(by_quant) == ["int8-fold", "int4", "int8", "fp32"]  # the folder has no int8-dynamic
        assert by_quant["int4"]["vs_int4"] == 1.0
        for m in by_quant.values():
            assert len(m["decode_tok_s"]) == 1 and m["decode_tok_s"][0] > 0 and m["prefill_s"][0] > 0


@pytest.mark.slow
@pytest.mark.integration
def test_cli_exports_int8_fold(tmp_path):
    """`fabulist export --format onnx --quant int8 --method fold`: the browser's graph, in its own file."""
    import subprocess
    import sys

    folder = make_model_dir(tmp_path / "model")
    cmd = [sys.executable, "-m", "fabulist.cli", "export", str(folder), "--format", "onnx", "--quant", "int8",
           "--method", "fold", "--no-validate"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "onnx/model_int8_fold.onnx" in r.stdout and "not validated" in r.stdout
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == ["model_int8_fold.onnx"]
    (art,) = json.loads((folder / "export_manifest.json").read_text())["artifacts"]
    assert (art["quant"], art["method"], art["validation"]) == ("int8", "fold", None)


def test_int8_fold_without_a_model_folder_folds_optimums_graph(demo_model, tmp_path):
    """The builder's graph needs the model folder; without one (or where the builder refuses the
    architecture) the fold starts from the fp32 graph it is given, and its notes say so."""
    from fabulist.export import onnx as ox

    notes = []
    dest = ox.quantize_graph(
        demo_model / "onnx" / "model.onnx", tmp_path / "fold.onnx", "int8", "fold", notes
    )
    assert notes[0] == "folded from optimum's fp32 graph (onnxruntime-genai's builder: no model folder given)"
    ops = {n.op_type for n in _graph(dest).graph.node}
    assert "GroupQueryAttention" not in ops and "Cast" in ops
