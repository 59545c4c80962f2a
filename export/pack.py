"""Pack an exported run into a model folder that ships inside the runtime package, with its model card.

    fabulist models pack runs/default --name fable-5m --quality quality.json --reproduce reproduce.sh

What ships is what the torch-free runtime and the browser demo load: onnxruntime-genai's INT4 graph (the
fast default), optimum's INT4 graph (transformers.js), a 4-bit GGUF (llama.cpp), the config, tokenizer and
prompt format. Only artifacts that passed their validation gate ship.
Everything else a run holds (checkpoints, fp32 weights, the other quantizations) stays behind; the card
still lists their validation, because that is how the shipped ones were chosen.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from fabulist import artifacts
from fabulist.export import web
from fabulist.export.errors import ExportError
from fabulist.export.run import table
from fabulist.names import RULE, is_folder_name
from fabulist.records import RecordError, read_json

SHIP = (
    artifacts.get("onnx", "int4", "genai").folder,  # the CLI runtime's default (fastest on a CPU)
    artifacts.get("onnx", "int8", "optimum", "fold").path,  # the browser's (fp32 speed in wasm, 6 MB)
    artifacts.get("gguf", "q4_k_m").path,  # llama.cpp's; fable-5m ships ~19 MB in all
)
META = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "fable_format.json", "loss.png")  # fmt: skip
MAX_BYTES = 25_000_000
SAMPLES = 10


def _size(path: Path) -> int:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def _read_json(path: Path, what: str) -> dict:
    """A JSON object from `path` (records.read_json's rules), or an ExportError naming the file and `what`."""
    if not path.exists():
        raise ExportError(f"{path} is missing: {what}")
    try:
        return read_json(path)
    except RecordError as exc:
        raise ExportError(f"{exc}: {what}") from None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_result(result, name: str, path: Path) -> None:
    """One entry of `results`: a summary of finite numbers for every reported check, rows of fables."""
    from fabulist.eval import quality as q

    keys = (*q.TARGETS, "repetition_4gram", "distinct_2")
    summary = result.get("summary") if isinstance(result, dict) else None
    rows = result.get("rows") if isinstance(result, dict) else None
    if not isinstance(summary, dict) or not all(_is_number(summary.get(k)) for k in keys):
        raise ExportError(f"{path}: results.{name}.summary must hold numbers for {', '.join(keys)}")
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("fable"), str)
        and (isinstance(r.get("ids"), dict) or isinstance(r.get("texts"), dict))
        for r in rows
    ):  # fmt: skip
        raise ExportError(
            f"{path}: results.{name}.rows must be a list of {{'ids' or 'texts': {{...}}, 'fable': text}}"
        )


def check_quality(quality: dict, path: Path) -> tuple[str, str]:
    """The (quantized, reference) result names of a `fabulist eval quality --json` file, its shape
    checked (the card reads these fields) so that a hand-edited file is one line, not a traceback."""
    results = quality.get("results")
    if not isinstance(results, dict) or not results:
        raise ExportError(
            f"{path}: no results; write it with `fabulist eval quality --quant int4,fp32 --json`"
        )
    if "int4" not in results:
        raise ExportError(f"{path} has no int4 results (has {', '.join(results)}); the card reports int4")
    bad = [n for n, r in results.items() if not (isinstance(r, dict) and isinstance(r.get("summary"), dict))]
    if bad:
        raise ExportError(f"{path}: results.{bad[0]} must be an object with a summary object")
    ref = "fp32" if "fp32" in results else "int4"
    return "int4", ref


def check_card_fields(quality: dict, path: Path | str = "the --quality file") -> None:
    """The fields of a quality file the model card reads, checked, so that a hand-edited or truncated
    file is one line, not a traceback halfway through the card."""
    for name, result in quality["results"].items():
        _check_result(result, name, path)
    for key in ("n", "temperature", "seed"):
        if not _is_number(quality.get(key)):
            raise ExportError(f"{path}: {key} must be a number, got {quality.get(key)!r}")


def valid_curve(metrics: Path) -> list[tuple[int, int, float]]:
    """(step, tokens, validation ppl) at each evaluation of the run."""
    rows = []
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if "valid_ppl" in row:
                rows.append((row["step"], row["tokens"], row["valid_ppl"]))
    return rows


def quality_table(quality: dict, quant: str, ref: str) -> str:
    from fabulist.eval import quality as q

    a, b = quality["results"][quant]["summary"], quality["results"][ref]["summary"]
    lines = [f"| check | target | {quant} | {ref} | gap (points) |", "|---|---|---:|---:|---:|"]
    for key, goal in q.goals():
        gap = (a[key] - b[key]) * 100
        lines.append(f"| {key} | {goal} | {a[key]:.1%} | {b[key]:.1%} | {gap:+.1f} |")
    return "\n".join(lines)


def _recipe(training: dict) -> list[str]:
    """The card's lines on how the run was trained, for the fields newer runs record."""
    lines = []
    if training.get("init"):
        lines.append(f"- continued from the weights of `{Path(training['init']).name}` (see Reproduce)")
    if training.get("packing"):
        kinds = {
            "docs": "whole fables per row, never cut from their header",
            "stream": "fixed blocks across fables",
        }
        rows = kinds.get(training["packing"], training["packing"])
        lines.append(f"- rows: {rows}; loss on {training.get('loss_on', 'all')} tokens")
    return lines


def browser_section(result: dict | None) -> list[str]:
    """The card's browser section from benchmarks/web_precision.py's JSON (None: no section)."""
    if result is None:
        return []
    lines = [
        "## In the browser",
        "",
        "The mobile demo (android-demo/) runs the model with transformers.js on onnxruntime-web's "
        "WebAssembly kernels, which have fast fp32 matrix products but no fast 4- or 8-bit ones. Every ONNX "
        f"precision of this model in headless Chromium {result['chromium']} on the demo's own runtime, in "
        f"one run (`benchmarks/web_precision.py`: {result['tokens']} greedy tokens, the precisions taking "
        f"turns, best of {result['repeats']}):",
        "",
        *web.browser_table(result),
        "",
        "int8-fold (shipped, the demo's default) stores each weight matrix of onnxruntime-genai's fused "
        "builder graph as int8 with one scale per output channel, rebuilt as `Mul(Cast(int8), scale)`; "
        "onnxruntime's constant folding computes those when the session loads, so the kernels run plain fp32 "
        "MatMuls from the smallest file. int8-fold-optimum is the same fold of optimum's graph (about 20 "
        "times the nodes), int4-builder the builder's INT4 graph. The price of int8-fold is memory: once "
        "loaded it holds fp32 matrices.",
        "",
    ]
    return lines


def check_browser(result: dict, path: Path) -> None:
    """A web_precision.py result the card can show, or a one-line ExportError."""
    rows = result.get("precisions") if isinstance(result, dict) else None
    keys = ("file", "bytes", "gate", "validation", "loaded_weight_bytes")
    if not isinstance(rows, dict) or not rows or not all(isinstance(r, dict) and all(k in r for k in keys)
                                                          for r in rows.values()):  # fmt: skip
        raise ExportError(f"{path} is not a benchmarks/web_precision.py result (no precisions with speeds)")
    if not all(k in result for k in ("chromium", "tokens", "repeats")):
        raise ExportError(f"{path} is not a benchmarks/web_precision.py result (no chromium/tokens/repeats)")


def card(name: str, run: Path, training: dict, manifest: dict, shipped: list[dict], quality: dict,
         quant: str, ref: str, reproduce: str, total: int, browser: dict | None = None) -> str:  # fmt: skip
    from fabulist.eval import quality as q

    check_card_fields(quality)
    summary = quality["results"][quant]["summary"]
    misses = q.verdict(summary)
    worst = max(abs(summary[k] - quality["results"][ref]["summary"][k]) for k in q.TARGETS) * 100
    curve = valid_curve(run / "metrics.jsonl")
    hours = training["wall_seconds"] / 3600
    lines = [
        f"# {name}: the default Fabulist fable model",
        "",
        f"A {training['parameters'] / 1e6:.1f}M-parameter Llama ({training['preset']}) trained by Fabulist "
        f"on {training['documents']:,} procedural fables, exported to INT4 ONNX and a 4-bit GGUF for the "
        "runtime, and to int8-fold ONNX for the browser (int8 weights that onnxruntime turns back into fp32 "
        "when it loads them; the mobile demo's default). It ships inside the runtime package, so "
        "`fabulist generate` writes fables offline with no `--model`.",
        "",
        "```",
        "fabulist generate --character fox --moral 'Kindness is rewarded.' --stats",
        f"fabulist generate --model {name} --format gguf --stats   # llama.cpp",
        "```",
        "",
        "## Files",
        "",
        "| file | bytes | format | validation vs PyTorch (KLD / top-1) |",
        "|---|---:|---|---|",
    ]
    for a in shipped:
        v = a.get("validation") or {}
        val = f"{v['kld']:.4f} / {v['top1']:.1%}" if "kld" in v else "-"
        kind = f"{a['format']} {a['quant']}" + (f" (method {a['method']})" if a.get("method") else "")
        lines.append(f"| `{a['path']}` | {a['bytes']:,} | {kind} | {val} |")
    lines += [
        "",
        f"In all {total / 1e6:.1f} MB with config and tokenizer (the limit in git is "
        f"{MAX_BYTES / 1e6:.0f} MB; INT8 and fp32 stay behind for size).",
        "",
        "## Training",
        "",
        f"- preset `{training['preset']}`, {training['parameters']:,} parameters, "
        f"format `{training['format']}`",
        f"- data: `{Path(training['data']).name}`, sha256 `{training['data_sha256']}`, "
        f"{training['documents']:,} fables",
        *_recipe(training),
        f"- {training['steps']:,} steps, {training['tokens_seen']:,} tokens seen, wall time "
        f"{training['wall_seconds']:,.0f} s ({hours:.1f} h) on {training['device']} x{training['processes']}",
        f"- final train loss {training['final_train_loss']:.3f}, validation loss "
        f"{training['final_valid_loss']:.3f}, **validation perplexity {training['final_valid_ppl']:.2f}**",
        "",
        "![loss curve](loss.png)",
        "",
    ]
    if curve:
        lines += ["| step | tokens | valid ppl |", "|---:|---:|---:|"]
        stride = max(1, len(curve) // 8)
        picked = curve[::stride] + ([curve[-1]] if (len(curve) - 1) % stride else [])
        lines += [f"| {s:,} | {t:,} | {p:.3f} |" for s, t, p in picked]
        lines.append("")
    lines += [
        "## Export validation (all artifacts of the run, 12 held-out fables)",
        "",
        "```",
        table(manifest["artifacts"]),
        "```",
        "",
        *browser_section(browser),
        "## Quality bar",
        "",
        f"{quality['n']} element combinations from the reserved evaluation region (never in training), one "
        f"fable each at temperature {quality['temperature']}, seed {quality['seed']}, through the runtime "
        f"(`fabulist eval quality`). Matching rules are in `fabulist/eval/quality.py`: the moral line is the "
        "last line starting `Moral:`; character and setting match as whole words (or the plural); the moral "
        "counts as stated when the line holds it verbatim or at least 70% of its content-word stems; "
        "one name, no glitch (no doubled phrase, broken run of function words or nameless introduction) and "
        "introduced (no 'the <animal>' before the animal was mentioned) catch what a reader notices.",
        "",
        quality_table(quality, quant, ref),
        "",
        f"Verdict for {quant}: "
        + ("the quality bar holds." if not misses else "misses " + "; ".join(misses) + "."),
        f"\nLargest {quant} vs {ref} gap on the {len(q.TARGETS)} checks: {worst:.1f} points "
        "(target: within 3).",
        "",
        f"## {SAMPLES} unedited samples (evaluation-region prompts, {quant}, T={quality['temperature']})",
        "",
    ]
    from fabulist import fable_format as ff

    for i, row in enumerate(quality["results"][quant]["rows"][:SAMPLES], 1):
        # asked by element ids (evaluation-region prompts) or as free text (`eval quality --prompts`)
        labels = (
            ff.labels_for(row["ids"])
            if "ids" in row
            else {k: ff.free_label(v) for k, v in row["texts"].items()}
        )
        head = "; ".join(f"{k}: {v}" for k, v in labels.items())
        lines += [f"**{i}.** _{head}_", "", *(f"> {x}" if x else ">" for x in row["fable"].splitlines()), ""]
    lines += [
        "## Reproduce",
        "",
        "From a clone of the repository (`./quickstart.sh test` sets up `.venv`); seeds are fixed, so the "
        "data and its hash repeat exactly; training on another machine gives close, not bit-identical, "
        "weights.",
        "",
        "```bash",
        reproduce.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _copy(src: Path, dst: Path) -> None:
    """A file or a folder's files, one copy2 each (so a failure is the OSError itself, not shutil's list)."""
    for path in sorted(src.rglob("*")) if src.is_dir() else [src]:
        target = dst / path.relative_to(src) if src.is_dir() else dst
        if path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _fill(tmp: Path, run: Path, name: str, training: dict, manifest: dict, shipped: list, quality: dict,
          reproduce_path: Path) -> dict:  # fmt: skip
    """Copy the shipped files into `tmp` and write its metadata; the training record as shipped."""
    for rel in (*SHIP, *META):
        _copy(run / rel, tmp / rel)
    shutil.copy2(reproduce_path, tmp / "reproduce.sh")
    shipped_manifest = {**manifest, "model": name, "artifacts": shipped}
    (tmp / artifacts.MANIFEST).write_text(json.dumps(shipped_manifest, indent=1))
    record = {**training, "data": Path(training["data"]).name}  # no local paths in a shipped file
    (tmp / "training.json").write_text(json.dumps(record, indent=1))
    summaries = {k: {"summary": v["summary"]} for k, v in quality["results"].items()}
    (tmp / "quality.json").write_text(json.dumps({**quality, "model": name, "results": summaries}, indent=1))
    return record


def pack(run: str | Path, name: str, dest_root: str | Path, quality_path: str | Path,
         reproduce_path: str | Path, max_bytes: int = MAX_BYTES,
         browser_path: str | Path | None = None) -> Path:  # fmt: skip
    """Copy the shippable artifacts of an exported run into dest_root/name with a README.md model card
    (with the browser table when browser_path, benchmarks/web_precision.py's JSON, is given)."""
    if not is_folder_name(name):  # dest_root/name (and its .tmp, .old) must stay inside dest_root
        raise ExportError(f"--name {name!r} is not a plain folder name: use {RULE}")
    run, dest_root = Path(run), Path(dest_root)
    quality_path, reproduce_path = Path(quality_path), Path(reproduce_path)
    if not run.is_dir():
        raise ExportError(f"{run} is not a folder")
    training = _read_json(run / "training.json", "train the model to completion first")
    manifest = _read_json(run / artifacts.MANIFEST, f"export it first: fabulist export {run} --quant int4")
    quality = _read_json(quality_path, "write it with `fabulist eval quality --quant int4,fp32 --json FILE`")
    quant, ref = check_quality(quality, quality_path)
    browser = None
    if browser_path is not None:
        browser = _read_json(Path(browser_path), "write it with benchmarks/web_precision.py RUN")
        check_browser(browser, Path(browser_path))
    if not reproduce_path.is_file():
        raise ExportError(f"{reproduce_path} is missing: the commands that reproduce the model")
    missing = [p for p in (*SHIP, *META) if not (run / p).exists()]
    if missing:
        raise ExportError(f"{run} lacks {', '.join(missing)}; run `fabulist export {run} --quant int4` first")
    by_path = {a["path"]: a for a in manifest["artifacts"]}
    shipped = [a for p, a in by_path.items() if any(p == s or p.startswith(s + "/") for s in SHIP)]
    failed = [a["path"] for a in shipped if a.get("gate")]
    if failed:
        raise ExportError(f"{', '.join(failed)} missed the validation gate; not shipping it")
    total = sum(_size(run / p) for p in (*SHIP, *META))
    if total > max_bytes:
        raise ExportError(
            f"the model would take {total / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit"
        )

    dest_root.mkdir(parents=True, exist_ok=True)
    final = dest_root / name
    tmp = dest_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        record = _fill(tmp, run, name, training, manifest, shipped, quality, reproduce_path)
        text = card(
            name,
            run,
            record,
            manifest,
            shipped,
            quality,
            quant,
            ref,
            reproduce_path.read_text(),
            total,
            browser,
        )
        (tmp / "README.md").write_text(text)
    except BaseException as exc:  # a full or read-only destination, a bad quality file: no half-built folder
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None:  # name the destination in the one line
            raise OSError(exc.errno, exc.strerror, str(dest_root)) from None
        raise
    old = dest_root / f".{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final
