"""Which ONNX precision the browser should run: every ONNX graph of one model, its size, its validation
against PyTorch, the weight bytes onnxruntime holds once it has loaded it, and its decode speed in headless
Chromium on the mobile demo's own runtime (android-demo/tests/chromium_speed.mjs), all measured in one run.

    .venv/bin/python benchmarks/web_precision.py MODEL_DIR [--threads 1,2] [--tokens 64] [--repeats 3]

MODEL_DIR is a trained model folder (config.json, model.safetensors, tokenizer.json) exported with
`fabulist export MODEL_DIR --format onnx --quant all` (onnx/model.onnx is required; model_q4.onnx and
model_int8.onnx are used where present). Its files are copied into a scratch folder, never written. The
graphs: int4 (model_q4.onnx: MatMulNBits 4-bit, made with the default method where absent), int8
(MatMulNBits 8-bit, rtn), int8-dynamic (quantize_dynamic: MatMulInteger), fp32, int8-fold (int8
weights on disk, folded back to fp32 by onnxruntime at load: export/web.py; it folds onnxruntime-genai's
builder graph), int8-fold-optimum (the same fold of optimum's graph: the fused graph's gain, measured) and
int4-builder (the builder's INT4 graph, onnx-genai/int4/, weights inlined). Each is validated by
`export.validate.validate` against one PyTorch reference (the gate of its class: int8/int4/fp32). Speed:
the (threads, precision) pairs take turns, best decode tok/s of --repeats, and the ratio to int4 in the
same run. tok/s depend on the machine's load: rerun on a quiet machine before quoting them.
Writes benchmarks/results/web_precision.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from fabulist import artifacts
from fabulist.export import onnx as ox
from fabulist.export import validate as va
from fabulist.export.web import browser_table

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "android-demo"
OUT = Path(__file__).resolve().parent / "results"
COPIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "fable_format.json")  # fmt: skip
# int8 `dynamic` writes the int8 file; staged here beside `rtn`'s under a name of its own
_INT8 = Path(ox.optimum_path("int8"))
DYNAMIC = _INT8.with_name(f"{_INT8.stem}_dynamic{_INT8.suffix}").as_posix()
# Two more graphs only this benchmark stages (android-demo/tests/chromium_speed.mjs's EXTRA names them): the
# fold of optimum's graph (what int8-fold was before it started from the builder's graph) and the builder's
# own INT4 graph, its weights inlined into one file as the browser needs
_FOLD = Path(ox.optimum_path("int8", "fold"))
FOLD_OPTIMUM = _FOLD.with_name(f"{_FOLD.stem}_optimum{_FOLD.suffix}").as_posix()
_Q4 = Path(ox.optimum_path("int4"))
INT4_BUILDER = _Q4.with_name(f"{_Q4.stem}_builder{_Q4.suffix}").as_posix()
# precision -> (path in the folder, gate class, how it is made when the folder lacks it: (quant, method) of
# export.onnx.quantize_graph on the fp32 graph, "optimum" for a fold of optimum's graph, "builder" for the
# builder's INT4 graph copied from onnx-genai/, None for nothing)
GRAPHS = {
    "int4": (ox.optimum_path("int4"), "int4", ("int4", ox.METHODS["int4"][0])),
    "int8": (ox.optimum_path("int8"), "int8", ("int8", "rtn")),
    "int8-dynamic": (DYNAMIC, "int8", ("int8", "dynamic")),
    "fp32": (ox.optimum_path("fp32"), "fp32", None),
    "int8-fold": (ox.optimum_path("int8", "fold"), "int8", ("int8", "fold")),
    "int8-fold-optimum": (FOLD_OPTIMUM, "int8", "optimum"),
    "int4-builder": (INT4_BUILDER, "int4", "builder"),
}


def stage(model_dir: Path, dest: Path) -> dict[str, list[str]]:
    """dest: the model's config, tokenizer and every graph in GRAPHS (those the folder has are copied as
    they are, the rest made from its fp32 graph); returns each graph's notes."""
    fp32 = model_dir / GRAPHS["fp32"][0]
    if not fp32.is_file():
        raise SystemExit(
            f"{model_dir}: no {GRAPHS['fp32'][0]}; run fabulist export {model_dir} --format onnx --quant all"
        )
    (dest / GRAPHS["fp32"][0]).parent.mkdir(parents=True)
    for name in COPIED:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, dest / name)
    import onnx

    manifest = model_dir / artifacts.MANIFEST
    listed = json.loads(manifest.read_text())["artifacts"] if manifest.is_file() else []
    method = {a["path"]: a.get("method") for a in listed}
    made = {}
    for quant, (file, _, recipe) in GRAPHS.items():
        have = model_dir / file
        if have.is_file() and not ox.external_files(have):
            shutil.copy2(have, dest / file)
            made[quant] = [f"as exported (method {method.get(file)})"]
        elif recipe == "optimum":  # no model folder: export.onnx folds the graph it is given
            made[quant] = []
            ox.quantize_graph(fp32, dest / file, "int8", "fold", made[quant])
        elif recipe == "builder":
            rel = artifacts.get("onnx", "int4", "genai").path
            built = model_dir / rel
            if not built.is_file():
                raise SystemExit(
                    f"{model_dir}: no {built.name} of the builder; run fabulist export {model_dir}"
                )
            onnx.save(onnx.load(str(built)), str(dest / file))  # external data inlined: one file
            made[quant] = [f"{rel}, weights inlined"]
        elif recipe is not None:
            made[quant] = []
            ox.quantize_graph(fp32, dest / file, *recipe, made[quant], model_dir=model_dir)
        else:
            raise SystemExit(f"{have} keeps its weights in external data; the browser needs one file")
    return made


def loaded_weight_bytes(path: Path) -> int:
    """Bytes of the initializers onnxruntime holds after its level-1 optimizations (constant folding
    included): what int8-fold costs in memory once its weights are fp32 again."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        model = onnx.load(opts.optimized_model_filepath)
    return sum(len(onnx.numpy_helper.to_array(t).tobytes()) for t in model.graph.initializer)


def chromium_speed(model: Path, threads: str, tokens: int, repeats: int) -> dict:
    cmd = ["node", "tests/chromium_speed.mjs", "--model", str(model), "--quants", ",".join(GRAPHS),
           "--threads", threads, "--tokens", str(tokens), "--repeats", str(repeats)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=DEMO, capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0:
        raise SystemExit(
            f"chromium_speed.mjs failed: {(proc.stderr.strip() or proc.stdout).splitlines()[-1]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(model_dir: Path, threads: str, tokens: int, repeats: int) -> dict:
    ref = va.Reference(model_dir)
    with tempfile.TemporaryDirectory(prefix="web-precision-") as tmp:
        staged = Path(tmp) / model_dir.name
        made = stage(model_dir, staged)
        rows = {}
        for quant, (file, gate_class, _) in GRAPHS.items():
            path = staged / file
            metrics, miss = ox.validate_onnx(path, gate_class, ref)
            rows[quant] = {"file": file, "bytes": path.stat().st_size, "gate_class": gate_class,
                           "gate": miss or "pass", "validation": metrics, "notes": made.get(quant, []),
                           "loaded_weight_bytes": loaded_weight_bytes(path)}  # fmt: skip
        speed = chromium_speed(staged, threads, tokens, repeats)
    for t, by_quant in speed["threads"].items():
        for quant, s in by_quant.items():
            rows[quant][f"threads_{t}"] = s
    return {"model": str(model_dir), "tokens": tokens, "repeats": repeats, "chromium": speed["chromium"],
            "isolated": speed["isolated"], "precisions": rows}  # fmt: skip


def markdown(result: dict) -> str:
    lines = browser_table(result)  # the model card (models pack --browser) shows the same table
    note = (f"\n{result['tokens']} greedy tokens, best of {result['repeats']} interleaved runs, headless "
            f"Chromium {result['chromium']} (transformers.js, onnxruntime-web wasm, a worker per thread "
            "count). Command: `.venv/bin/python benchmarks/web_precision.py MODEL_DIR`.\n")  # fmt: skip
    return "\n".join(lines) + "\n" + note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    opts = ap.parse_args()
    result = measure(opts.model.resolve(), opts.threads, opts.tokens, opts.repeats)
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "web_precision.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (opts.out / "web_precision.md").write_text("# ONNX precisions in the browser\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
