"""Benchmark rows at the full published shapes of three models people bring (issue 24): SmolLM2-135M,
Gemma-3-270M and Qwen2.5-0.5B, built here with random weights (no hub is reachable; speed and memory do
not depend on the weights), exported to every artifact and measured with the peers by the bench suite.

    nice -n 10 .venv/bin/python -m fabulist.bench.byom_shapes                 # all three, about an hour
    .venv/bin/python -m fabulist.bench.byom_shapes --only smollm2 --threads 1,2
    .venv/bin/python -m fabulist.bench.byom_shapes --table                    # only merge results.md

Each folder is the published config.json (tests/export/test_architectures.py keeps them) with random
weights (seed 0, transformers' own init) saved as bfloat16, as the published checkpoints are. Its
tokenizer is the one those tests train (512 tokens, the model's kind: byte-level BPE or SentencePiece-style
BPE) padded to the published vocabulary with unreachable `<unusedN>` tokens, so the embedding, the GGUF
token list and the LM head have the real sizes. One model at a time: the build and the export run in a
child process (Qwen2.5-0.5B in fp32 and its ONNX export take several GB), then `fabulist bench run
--model DIR` (suite.run_suite) measures its rows, each in its own process, into
benchmarks/results/byom/<name>/. results.md merges the rows of all three with what was built and, for
what was not, why.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {"smollm2": "SmolLM2-135M", "gemma3": "Gemma-3-270M", "qwen2.5": "Qwen2.5-0.5B"}  # smallest first
# The published checkpoints are bfloat16 (SmolLM2's config says so; Gemma-3-270M's 536 MB and
# Qwen2.5-0.5B's 988 MB model.safetensors are 2 bytes per parameter).
DTYPE = "bfloat16"
ROWS = (  # the suite's rows measured here: each engine but optimum (its int4 decode took 6x ours on
    # SmolLM2), with the pairs the ratios need; f16, q8_0, q4_k_m and the fp32 graphs are exported but not
    # timed, so that three models fit an hour on shared cores. PyTorch last: it is the slowest by far.
    "ours onnx int8", "ours onnx int4", "onnxruntime-genai int4", "ours gguf q4_0", "llama-cpp-python q4_0",
    "pytorch fp32 (transformers generate)",
)  # fmt: skip
EXPORTS = (("onnx", "all"), ("gguf", "all"))  # one export call per format: one failing keeps the other
WORK = Path("benchmarks/work/byom")
OUT = Path("benchmarks/results/byom")


def padded_tokenizer(tok, rows: int):
    """tok with `<unusedN>` tokens appended to its model vocabulary up to `rows` ids (Gemma's own tokenizer
    has such placeholders); no merge makes them, so text tokenizes exactly as before."""
    from tokenizers import Tokenizer

    tj = json.loads(tok.to_str())
    ids = set(tj["model"]["vocab"].values()) | {t["id"] for t in tj["added_tokens"]}
    if max(ids) + 1 != len(ids) or len(ids) > rows:
        raise ValueError(f"tokenizer ids are not 0..{len(ids) - 1} below {rows}")
    vocab = tj["model"]["vocab"]
    # added tokens (Qwen's specials, appended after training) join the model vocabulary at their ids: else
    # loading renumbers them after the padding, leaving a gap where they were
    vocab.update({t["content"]: t["id"] for t in tj["added_tokens"]})
    vocab.update({f"<unused{i}>": i for i in range(len(ids), rows)})
    padded = Tokenizer.from_str(json.dumps(tj))
    for t in tj["added_tokens"]:
        if padded.token_to_id(t["content"]) != t["id"]:
            raise ValueError(f"padding moved {t['content']} from id {t['id']}")
    return padded


def build(name: str, folder: Path, seed: int = 0) -> Path:
    """The full-shape folder of `name`: published config, padded tokenizer, random bfloat16 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from fabulist.bench.architectures import CONFIGS, tokenizer_for

    tok, ids = tokenizer_for(name)
    config = {k: v for k, v in CONFIGS[name].items() if k != "_tiny"}
    config |= {**ids, "torch_dtype": DTYPE}
    tok = padded_tokenizer(tok, config["vocab_size"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    GenerationConfig(**{k: v for k, v in ids.items() if k != "pad_token_id"}).save_pretrained(folder)
    record = {"preset": f"{SHAPES[name]} shape", "random_weights": True, "seed": seed, "dtype": DTYPE,
              "tokenizer": f"{tok.get_vocab_size()} tokens: 512 trained + <unusedN> padding"}  # fmt: skip
    (folder / "preset.json").write_text(json.dumps(record))  # the suite marks the size random_weights
    return folder


def prepare(name: str) -> dict:
    """Build (unless built) and export (each format unless done) one shape; {"built": ..., "failed": ...}."""
    from fabulist.bench.models import ARTIFACTS
    from fabulist.export.run import export_model

    folder = WORK / name
    record = {"seconds": {}, "failed": {}}
    if not (folder / "preset.json").exists():
        t = time.perf_counter()
        build(name, folder)
        record["seconds"]["build"] = round(time.perf_counter() - t, 1)
    for fmt, quant in EXPORTS:
        if all((folder / a).exists() for a in ARTIFACTS if a.startswith(fmt)):
            continue
        t = time.perf_counter()
        try:  # RTN int4: GPTQ's calibration would take most of the hour at these sizes (same graph format)
            export_model(folder, fmt, quant, budget="1000GB", validate=False, progress=True,
                         method="rtn" if fmt == "onnx" else None)  # fmt: skip
        except Exception as e:  # one line for the table; the other format still runs
            record["failed"][fmt] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        record["seconds"][f"export {fmt}"] = round(time.perf_counter() - t, 1)
    record["built"] = [a for a in ARTIFACTS if (folder / a).exists()]
    return record


def measure(name: str, threads: tuple[int, ...], repeats: int) -> dict:
    """The suite's rows on the exported folder into OUT/name (the work of `fabulist bench run --model`)."""
    from fabulist.bench import suite

    opts = suite.Options(out=OUT / name, work=WORK, model=WORK / name, presets=(), threads=threads,
                         repeats=repeats, rows=ROWS, contexts=(), timeout=600)  # fmt: skip
    return suite.run_suite(opts)


def run(names: list[str], threads: tuple[int, ...], repeats: int) -> None:
    for name in names:
        t0 = time.perf_counter()
        _log(f"{name}: build and export ({SHAPES[name]} shape)")
        cmd = [sys.executable, "-m", "fabulist.bench.byom_shapes", "--prepare", name]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        lines = proc.stdout.strip().splitlines()
        record = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
        if record is None:
            record = {"failed": {"build": f"build/export process exited {proc.returncode}"}, "built": []}
        _log(f"{name}: built {len(record['built'])} artifact(s), failed: {record['failed'] or 'none'}")
        if record["built"] or (WORK / name / "model.safetensors").exists():
            measure(name, threads, repeats)
        record["wall_s"] = round(time.perf_counter() - t0, 1)
        path = OUT / name / "build.json"
        if path.exists():  # a rerun builds nothing: keep the earlier build and export times
            record["seconds"] = json.loads(path.read_text()).get("seconds", {}) | record.get("seconds", {})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
        write_table()


# ---------------------------------------------------------------- the merged table


def _num(row: dict, key: str, spec: str = ",.1f") -> str:
    return format(row[key], spec) if key in row else "-"


def write_table() -> str:
    """OUT/results.md: every measured row of every shape, what was built, and each failure's reason."""
    lines = [
        "# Bring your own model: full published shapes",
        "",
        "Random weights (seed 0) at the published config.json of each model; bfloat16 safetensors. The "
        "machine was shared with other jobs during the run: compare rows within one shape and thread "
        "count (ratios), not with other runs. `python -m fabulist.bench.byom_shapes` rebuilds it. "
        "Unvalidated exports; ONNX int4 by RTN (GPTQ's calibration would take most of the hour); f16, "
        "q8_0, q4_k_m and the fp32 graphs are exported but not timed. Tokenizers: 512 trained tokens "
        "padded with unreachable <unusedN> to the published vocabulary.",
        "",
        "| shape | params | row | thr | decode tok/s (tg128) | pp512 tok/s | peak RSS MB | load s "
        "| file MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for name, shape in SHAPES.items():
        res, build_rec = OUT / name / "results.json", OUT / name / "build.json"
        if not res.exists():  # an interrupted suite run: the rows it measured (suite.PARTIAL)
            res = OUT / name / "results.partial.json"
        if not res.exists():
            lines.append(f"| {shape} | | (not measured: the run ended before this shape) | | | | | | |")
            continue
        results = json.loads(res.read_text())
        if res.name != "results.json":
            notes.append(f"- {shape}: rows of an interrupted run ({res.name}), the others not measured.")
        for r in results["rows"]:
            head = f"| {shape} | {r['parameters'] / 1e6:.0f}M | {r['name']} | {r['threads']} "
            mb = f"{r['bytes'] / 1e6:,.0f}" if "bytes" in r else "-"
            if "skipped" in r:
                lines.append(head + f"| not measured: {r['skipped']} | | | | {mb} |")
                continue
            speed = f"| {_num(r, 'tg128_tok_s')} | {_num(r, 'pp512_tok_s', ',.0f')} "
            lines.append(
                head + speed + f"| {_num(r, 'peak_rss_mb', ',.0f')} | {_num(r, 'load_s', '.2f')} | {mb} |"
            )
        if build_rec.exists():
            rec = json.loads(build_rec.read_text())
            fails = "; ".join(f"{k}: {v}" for k, v in rec["failed"].items()) or "none"
            secs = "".join(f"{k} {v:.0f} s; " for k, v in rec.get("seconds", {}).items())
            notes.append(f"- {shape}: built {', '.join(rec['built']) or 'nothing'}; failed: {fails}; "
                         f"{secs}last measuring run {rec.get('wall_s', 0):.0f} s.")  # fmt: skip
    lines += ["", "## Artifacts", "", *notes, ""]
    text = "\n".join(lines)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.md").write_text(text)
    return text


def _log(msg: str) -> None:
    print(f"[byom] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated of " + ", ".join(SHAPES))
    p.add_argument("--threads", default="1")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--table", action="store_true", help="only merge the results into results.md")
    p.add_argument("--prepare", help=argparse.SUPPRESS)  # the child process that builds and exports
    args = p.parse_args()
    if args.prepare:
        print(json.dumps(prepare(args.prepare)))
        return
    if args.table:
        print(write_table())
        return
    names = args.only.split(",") if args.only else list(SHAPES)
    bad = [n for n in names if n not in SHAPES]
    if bad:
        p.error(f"unknown shape {bad[0]!r}; choose from {', '.join(SHAPES)}")
    run(names, tuple(int(t) for t in args.threads.split(",")), args.repeats)


if __name__ == "__main__":
    main()
