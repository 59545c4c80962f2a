"""ONNX quantization methods side by side on one trained model: size, bits per weight, KLD, top-1 and
perplexity ratio against PyTorch fp32 (export validation's held-out fables and gates), and decode speed.

    .venv/bin/python benchmarks/quant_methods.py [MODEL_DIR] [--methods int8:rtn,int4:gptq] [--calib FILE]
    .venv/bin/python benchmarks/quant_methods.py --freeze-calib     # rewrite export/calib.json

MODEL_DIR is a trained model folder (default: /root/fabulist-work/run3, the shipped fable-5m, when it is
there). Its files are copied into a scratch folder, so the model folder is never written. The fp32 graph
is exported once with optimum; each method (export.onnx.METHODS) quantizes that same graph through
`export.onnx.quantize_graph`, the function `fabulist export --method` calls, and is validated by
`export.validate.validate` against one PyTorch reference. Decode tok/s: prefill 32 tokens, then 128 greedy
steps through the KV cache (benchmarks/onnx_decode.py), --threads intra-op threads, best of --repeats with
the graphs taking turns.
Build seconds and tok/s depend on the machine's load: rerun on a quiet machine before quoting them.
Writes benchmarks/results/quant_methods/<model>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from fabulist import fable_format as ff
from fabulist.bench.onnx_decode import decode_speed
from fabulist.export import onnx as ox
from fabulist.export import plan as pl
from fabulist.export import validate as va

DEFAULT_MODEL = Path("/root/fabulist-work/run3")
OUT = Path(__file__).resolve().parent / "results" / "quant_methods"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "generation_config.json", "training.json")  # fmt: skip


def all_methods() -> list[tuple[str, str]]:
    return [(q, m) for q, methods in ox.METHODS.items() for m in methods]


def parse_methods(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return all_methods()
    pairs = [tuple(item.split(":", 1)) for item in text.split(",")]
    bad = [p for p in pairs if len(p) != 2 or p not in all_methods()]
    if bad:
        raise SystemExit(f"unknown --methods {bad}; choose from {[':'.join(p) for p in all_methods()]}")
    return pairs


def row(name: str, path: Path, quant: str, ref, params: int) -> dict:
    files = [path, *(path.parent / n for n in ox.external_files(path))]
    size = sum(f.stat().st_size for f in files)
    metrics, missed = ox.validate_onnx(path, quant, ref)
    return {
        "artifact": name,
        "quant": quant,
        "bytes": size,
        "bits_per_weight": round(size * 8 / params, 3),
        **{k: metrics[k] for k in ("kld", "top1", "ppl_ratio", "max_abs_diff")},
        "gate": missed or "pass",
    }


def interleaved_speed(paths: list[Path], threads: int, repeats: int) -> list[float]:
    """Best decode tok/s of each graph, the graphs taking turns repeat by repeat, so that a change in the
    machine's load falls on all of them alike."""
    best = [0.0] * len(paths)
    for _ in range(repeats):
        for i, path in enumerate(paths):
            best[i] = max(best[i], decode_speed(path, threads, 1))
    return [round(b, 1) for b in best]


def working_copy(model_dir: Path, tmp: Path) -> Path:
    """The model's files (MODEL_FILES) copied into tmp/<name>: exports go there, never into model_dir."""
    work = tmp / model_dir.name
    work.mkdir()
    for name in MODEL_FILES:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, work / name)
    return work


def measure(model_dir: Path, pairs, calib, threads: int, repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="quant-methods-") as tmp:
        work = working_copy(model_dir, Path(tmp))
        config = ox.check_model_dir(work)
        params = pl.parameters(config)
        ref = va.Reference(work)
        fp32 = ox._export_fp32(work, work / "onnx", progress=False)
        rows = [{**row("fp32", fp32, "fp32", ref, params), "method": "-", "build_s": 0.0}]
        paths = [fp32]
        for quant, method in pairs:
            dest = work / f"{quant}-{method}" / "model.onnx"
            dest.parent.mkdir()
            notes: list[str] = []
            start = time.perf_counter()
            ox.quantize_graph(fp32, dest, quant, method, notes, calib=calib, model_dir=work)
            built = round(time.perf_counter() - start, 1)
            rows.append({**row(f"{quant} {method}", dest, quant, ref, params),
                         "method": method, "build_s": built, "notes": notes})  # fmt: skip
            paths.append(dest)
            print({k: v for k, v in rows[-1].items() if k != "notes"}, flush=True)
        for r, speed in zip(rows, interleaved_speed(paths, threads, repeats), strict=True):
            r["decode_tok_s"] = speed
    return rows


def markdown(model: str, rows: list[dict], threads: int) -> str:
    lines = [
        f"Quantization methods on `{model}` (held-out positions of export validation; decode at {threads} "
        "thread(s); timings noisy unless the machine was quiet)",
        "",
        "| artifact | size MB | bits/w | KLD | top-1 | ppl ratio | gate | decode tok/s | build s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['artifact']} | {r['bytes'] / 1e6:.2f} | {r['bits_per_weight']:.2f} | {r['kld']:.5f} | "
            f"{r['top1']:.1%} | {r['ppl_ratio']:.4f} | {r['gate']} | {r['decode_tok_s']:.1f} | "
            f"{r['build_s']} |"
        )
    return "\n".join(lines) + "\n"


def sensitivity(model_dir: Path, calib=None) -> list[dict]:
    """The first step of mixed precision (issue 21, item 4): for each weighted MatMul alone, its GPTQ
    4-bit weights (export/gptq.py) in the fp32 graph, and the KLD that costs against fp32 on the
    calibration fables (never the validation probes), most sensitive first."""
    import numpy as np
    import onnxruntime as ort
    from onnx import numpy_helper

    from fabulist.export import gptq

    with tempfile.TemporaryDirectory(prefix="quant-sensitivity-") as tmp:
        work = working_copy(model_dir, Path(tmp))
        fp32 = ox._export_fp32(work, work / "onnx", progress=False)
        feeds, _ = ox._calibration(work, calib, fp32)
        model = ox.load_proto(fp32)
        hs = gptq.hessians(model, feeds)
        inits = {i.name: i for i in model.graph.initializer}

        def logits(proto) -> np.ndarray:
            session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            return np.concatenate([session.run(["logits"], f)[0][0][:-1] for f in feeds])

        ref = logits(model)
        rows = []
        for node, (act, weight) in gptq.weighted_matmuls(model).items():
            w = numpy_helper.to_array(inits[weight])
            codes, scales = gptq.solve(w, hs[act])
            fake = (codes.astype(np.float64) - 8) * np.repeat(scales, gptq.BLOCK, axis=0)
            original = numpy_helper.from_array(w, weight)
            inits[weight].CopyFrom(numpy_helper.from_array(fake.astype(w.dtype), weight))
            metrics = va.compare_logits(ref, logits(model))
            inits[weight].CopyFrom(original)
            rows.append(
                {"matmul": node, "shape": list(w.shape), "kld": metrics["kld"], "top1": metrics["top1"]}
            )
            print(rows[-1], flush=True)
    return sorted(rows, key=lambda r: -r["kld"])


def freeze_calib(n: int = 64, seed: int = 20261202) -> Path:
    """Rewrite export/calib.json: n training-region prompts (sampler seed `seed`), their fables by the
    procedural teacher v1 (which wrote the shipped model's corpus), as training-format texts."""
    from fabulist.data import prompts
    from fabulist.data.teachers.base import Budget
    from fabulist.data.teachers.procedural import ProceduralTeacher
    from fabulist.export import calib

    teacher = ProceduralTeacher(seed=0, version="v1")
    outcomes = teacher.outcomes(prompts.sample(n, seed=seed, region="train"), Budget())
    texts = [ff.training_text(o.record) for o in outcomes if o.record is not None]
    out = Path(calib.__file__).with_name(calib.FROZEN)
    comment = ("Calibration fables for the export quantizers that read activations (GPTQ): training-format "
               f"texts for training-region prompts (fabulist.data.prompts.sample({n}, seed={seed}, "
               "region='train')) written by the procedural teacher v1, frozen here so that editing the "
               "grammar never changes an export. Rewrite: quant_methods.py --freeze-calib.")  # fmt: skip
    out.write_text(json.dumps({"_comment": comment, "texts": texts}, indent=0, ensure_ascii=False) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL if DEFAULT_MODEL.exists() else None)
    ap.add_argument("--methods", help="quant:method pairs, comma-separated [default: all]")
    ap.add_argument("--calib", help="calibration fables for gptq [default: export/calib.json]")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--freeze-calib", action="store_true", help="rewrite export/calib.json and stop")
    ap.add_argument("--sensitivity", action="store_true", help="per-matrix 4-bit KLD on calibration text")
    args = ap.parse_args()
    if args.freeze_calib:
        print(freeze_calib())
        return
    if args.model is None:
        raise SystemExit("pass a trained model folder (the default, /root/fabulist-work/run3, is absent)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sensitivity:
        rows = sensitivity(args.model, args.calib)
        (args.out / f"{args.model.name}-sensitivity.json").write_text(json.dumps(rows, indent=1) + "\n")
        for r in rows:
            print(f"{r['matmul']:<48}{r['shape']!s:>14}  KLD {r['kld']:.6f}  top-1 {r['top1']:.1%}")
        return
    rows = measure(args.model, parse_methods(args.methods), args.calib, args.threads, args.repeats)
    name = args.model.name
    record = {"model": str(args.model), "threads": args.threads, "repeats": args.repeats, "rows": rows}
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    table = markdown(name, rows, args.threads)
    (args.out / f"{name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
