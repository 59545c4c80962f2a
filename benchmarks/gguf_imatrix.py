"""GGUF 4-bit quants with and without an importance matrix, on one trained model: size, bits per weight,
KLD, top-1 and perplexity ratio against PyTorch fp32 (issue 21, item 3).

    .venv/bin/python benchmarks/gguf_imatrix.py [MODEL_DIR] [--wide 100] [--variants rtn,imatrix,...]

MODEL_DIR is a trained model folder (default: /root/fabulist-work/run4, the shipped fable-5m v2.2, when it
is there); its files are copied into a scratch folder, so it is never written. The f32 GGUF is written
once and the importance matrix collected once (export/imatrix.py, on export/calib.json); each of Q4_0,
IQ4_NL and Q4_K_M is then made by llama.cpp's quantizer (`export.gguf.quantize`, what `fabulist export
--method` calls) several ways (VARIANTS): `rtn` (no imatrix), `imatrix`, `imatrix-body` (the imatrix
without the LM head's entry, as `llama-imatrix` collects by default) and `uniform` (every entry 1: llama.cpp's
weighted search with no activation statistics, which separates the search from the statistics), and
validated in llama.cpp against one PyTorch reference on export validation's held-out positions
(validate.HELDOUT texts) and gate.
Those ~1,500 positions decide small KLD differences poorly, so each quant is also measured on the first
--wide held-out fables (set 1234, never calibrated on), with the per-text KLD difference to `rtn` and its
standard error over texts. No timings: every number here is deterministic and needs no quiet machine.
Writes benchmarks/results/gguf_imatrix.json and .md (with --variants: gguf_imatrix-<variants>.*).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from fabulist import artifacts
from fabulist.export import calib as cb
from fabulist.export import gguf as gg
from fabulist.export import imatrix as im
from fabulist.export import plan as pl
from fabulist.export import validate as va

DEFAULT_MODEL = Path("/root/fabulist-work/run4")
OUT = Path(__file__).resolve().parent / "results"
QUANTS = ("q4_0", "iq4_nl", "q4_k_m")
VARIANTS = ("rtn", "imatrix", "imatrix-body", "uniform")  # rtn first: the others are compared with it
HEAD = "token_embd.weight", "output.weight"  # the LM head's entry (tied: the embedding matrix)


def working_copy(model_dir: Path, tmp: Path) -> Path:
    from fabulist.bench.quant_methods import working_copy as copy

    return copy(model_dir, tmp)


def wide_metrics(path: Path, ref: va.Reference) -> tuple[dict, np.ndarray]:
    """(KLD, top-1, ppl ratio over all positions; each text's own KLD) of one GGUF file under llama.cpp."""
    lm = gg.LlamaLM(path)
    try:
        tests = [lm.logits(ids)[:-1] for ids in ref.seqs]
    finally:
        lm.close()
    refs = [r[:-1] for r in ref.logits]
    per_text = np.array([va.compare_logits(r, t)["kld"] for r, t in zip(refs, tests, strict=True)])
    targets = np.concatenate([ids[1:] for ids in ref.seqs])
    metrics = va.compare_logits(np.concatenate(refs), np.concatenate(tests), targets)
    return {**metrics, "positions": len(targets)}, per_text


def measure(model_dir: Path, wide: int, variants=VARIANTS) -> tuple[list[dict], dict]:
    with tempfile.TemporaryDirectory(prefix="gguf-imatrix-") as tmp:
        work = working_copy(model_dir, Path(tmp))
        config = json.loads((work / "config.json").read_text())
        params = pl.parameters(config)
        ref, wide_ref = va.Reference(work), va.Reference(work, n_texts=wide)
        f32 = work / Path(artifacts.get("gguf", "f32").path).name
        gg.write_gguf(work, config, f32, "f32")
        texts, note = cb.calibration_texts()
        found = im.collect(work, texts, cb.CALIB_TOKENS, dataset=cb.FROZEN)
        im.write(work / im.FILE, found)
        full = im.read(work / im.FILE).importance()  # through the file, as llama-quantize would read it
        importance = {"rtn": None, "imatrix": full,
                      "imatrix-body": {n: v for n, v in full.items() if n not in HEAD},
                      "uniform": {n: np.ones_like(v) for n, v in full.items()}}  # fmt: skip
        rows, base = [], {}
        for quant in QUANTS:
            for variant in variants:
                path = work / f"{quant}-{variant}.gguf"
                gg.quantize(f32, path, quant, importance[variant])
                rows.append(row(path, quant, variant, ref, wide_ref, params, base))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "mix"}), flush=True)
        tokens = int(max(found.counts.values()))
        info = {"model": str(model_dir), "parameters": params, "calibration": f"{note}, {tokens:,} tokens",
                "validation_positions": rows[0]["positions"], "wide_texts": wide,
                "wide_positions": rows[0]["wide_positions"]}  # fmt: skip
    return rows, info


def row(path: Path, quant: str, variant: str, ref, wide_ref, params: int, base: dict) -> dict:
    metrics, missed = gg.validate_gguf(path, quant, ref)
    wide, per_text = wide_metrics(path, wide_ref)
    if variant == "rtn":
        base[quant] = per_text
    diff = per_text - base[quant]
    size = path.stat().st_size
    return {
        "quant": quant,
        "method": variant,
        "bytes": size,
        "bits_per_weight": round(size * 8 / params, 3),
        **{k: metrics[k] for k in ("kld", "top1", "ppl_ratio", "positions")},
        "gate": missed or "pass",
        "wide_kld": wide["kld"],
        "wide_top1": wide["top1"],
        "wide_ppl_ratio": wide["ppl_ratio"],
        "wide_positions": wide["positions"],
        "wide_kld_change": float(diff.mean() / base[quant].mean()),  # relative to rtn, per-text mean
        "wide_kld_change_se": float(diff.std(ddof=1) / math.sqrt(len(diff)) / base[quant].mean()),
        "mix": dict(Counter(gg.tensor_types(path).values())),
    }


def markdown(rows: list[dict], info: dict) -> str:
    lines = [
        f"GGUF 4-bit quants with and without an importance matrix on `{info['model']}` "
        f"({info['parameters']:,} parameters; {info['calibration']}).",
        "",
        f"KLD / top-1 / ppl: export validation's {info['validation_positions']:,} held-out positions. "
        f"Wide: {info['wide_texts']} held-out fables ({info['wide_positions']:,} positions); KLD change: "
        "per-text mean relative to the same quant without imatrix, +- one standard error over texts.",
        "",
        "| quant | method | size MB | bits/w | KLD | top-1 | ppl ratio | gate | wide KLD | wide top-1 "
        "| KLD change | tensor types |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        mix = ", ".join(f"{n} {t}" for t, n in sorted(r["mix"].items()) if t != "F32")
        change = (
            "-" if r["method"] == "rtn" else f"{r['wide_kld_change']:+.1%} +- {r['wide_kld_change_se']:.1%}"
        )
        lines.append(
            f"| {r['quant']} | {r['method']} | {r['bytes'] / 1e6:.3f} | {r['bits_per_weight']:.3f} | "
            f"{r['kld']:.5f} | {r['top1']:.2%} | {r['ppl_ratio']:.4f} | {r['gate']} | {r['wide_kld']:.5f} | "
            f"{r['wide_top1']:.2%} | {change} | {mix} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL if DEFAULT_MODEL.exists() else None)
    ap.add_argument("--wide", type=int, default=100, help="held-out fables of the wide measurement")
    ap.add_argument("--variants", help=f"comma-separated, rtn first [default: {','.join(VARIANTS)}]")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    variants = tuple(args.variants.split(",")) if args.variants else VARIANTS
    if variants[0] != "rtn" or not set(variants) <= set(VARIANTS):
        raise SystemExit(f"--variants: rtn first, then any of {', '.join(VARIANTS[1:])}")
    stem = "gguf_imatrix" if variants == VARIANTS else "gguf_imatrix-" + "-".join(variants)
    if args.model is None:
        raise SystemExit("pass a trained model folder (the default, /root/fabulist-work/run4, is not here)")
    rows, info = measure(args.model, args.wide, variants)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps({**info, "rows": rows}, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(rows, info))
    print(markdown(rows, info))


if __name__ == "__main__":
    main()
