"""Completions for the evaluation set: n per prompt, batched through the runtime, saved append-only.

    fabulist eval run --model runs/f5m --format onnx --quant int4 -n 10 --temperature 1.0 --out runs/eval/int4

`OUT/completions.jsonl` gets one line per completion, written prompt by prompt (flush + fsync) with the
sampling parameters that made it, so a judge can be rerun without regenerating. `OUT/run.json` records the
model, artifact and settings. A rerun skips prompts whose n completions are already written (a prompt cut
short by a crash is generated again: its partial lines are ignored); a rerun with other settings in the
same folder is refused. Prompt i samples with seed `seed * 100_003 + i`, so a resumed run writes the same
text as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from fabulist.errors import FabulistError
from fabulist.eval import evalset
from fabulist.records import AppendLog, read_jsonl, write_atomic

COMPLETIONS = "completions.jsonl"
RUN = "run.json"


class EvalRunError(FabulistError):
    """An evaluation run that cannot start or continue: conflicting settings, a missing folder."""


def load_model(model_dir: str | Path, fmt: str, quant: str | None, threads: int | None = None):
    """A runtime Generator for an exported artifact, or over the PyTorch checkpoint (`fmt="torch"`)."""
    if fmt == "torch":
        from fabulist.eval.torch_backend import load_torch_generator

        return load_torch_generator(model_dir, threads)
    from fabulist.runtime.load import load_generator

    return load_generator(model_dir, fmt, quant, threads)


def done_prompts(path: Path, n: int) -> set[str]:
    """Prompt ids that already have n completions in the file."""
    if not path.exists():
        return set()
    counts = Counter(r["prompt_id"] for r in read_jsonl(path, ["prompt_id"]))
    return {pid for pid, c in counts.items() if c >= n}


def _check_settings(out: Path, settings: dict) -> None:
    path = out / RUN
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))["settings"]
        changed = sorted(k for k in settings if before.get(k) != settings[k])
        if changed:
            raise EvalRunError(
                f"{out} holds a run with other settings ({', '.join(changed)}); use a new --out folder"
            )


def run(model_dir, out, fmt: str = "onnx", quant: str | None = None, n: int = 10, params=None,
        limit: int | None = None, threads: int | None = None, prompts_file: str | None = None,
        progress: bool = True) -> dict:  # fmt: skip
    """Generate what is missing in `out`; return {'written', 'skipped', 'prompts'}. params: the run's
    SamplingParams (default: the `judge` preset, seed 0: T=1, as the judged protocol samples); its seed
    seeds the run, and prompt i draws with prompt_seed(seed, i)."""
    from dataclasses import replace

    from tqdm import tqdm

    from fabulist.runtime.sampling import preset, prompt_seed

    params = params or preset("judge", seed=0)
    seed = params.seed or 0
    if n < 1 or (limit is not None and limit < 1):  # a negative limit would count from the end
        raise EvalRunError("-n and --limit must be at least 1")
    out = Path(out)
    prompts = evalset.load(prompts_file)[:limit]
    settings = {"model": str(model_dir), "format": fmt, "quant": quant, "n": n,
                "temperature": params.temperature, "top_p": params.top_p, "seed": seed,
                "max_new_tokens": params.max_new_tokens,
                "evalset": evalset.version(prompts_file)}  # fmt: skip
    _check_settings(out, settings)
    log_path = out / COMPLETIONS
    done = done_prompts(log_path, n)
    todo = [(i, p) for i, p in enumerate(prompts) if p.id not in done]
    written = 0
    if todo:
        gen = load_model(model_dir, fmt, quant, threads)
        write_atomic(out / RUN, json.dumps({"settings": settings, "artifact": str(gen.artifact)}, indent=1))
        with AppendLog(log_path) as log:
            for i, p in tqdm(todo, unit="prompt", disable=not progress):
                one = replace(params, seed=prompt_seed(seed, i))
                outs = gen.generate(p.model_prompt, one, n)
                log.append(_record(p, k, c, one) for k, c in enumerate(outs))
                written += len(outs)
    return {"written": written, "skipped": len(prompts) - len(todo), "prompts": len(prompts)}


def _record(p: evalset.EvalPrompt, k: int, c, params) -> dict:
    sampling = {k2: v for k2, v in asdict(params).items() if k2 not in ("stop",)}
    return {"prompt_id": p.id, "sample": k, "text": c.text, "finish_reason": c.finish_reason,
            "new_tokens": len(c.tokens), "sampling": sampling}  # fmt: skip


def load_completions(out: str | Path) -> list[dict]:
    """The completions of a run, one per (prompt, sample) (a rerun's duplicates of a torn prompt dropped)."""
    path = Path(out) / COMPLETIONS
    if not path.exists():
        raise EvalRunError(f"{out}: no {COMPLETIONS}; run `fabulist eval run --out {out}` first")
    seen = {}
    for r in read_jsonl(path, ["prompt_id", "sample", "text"]):
        seen[(r["prompt_id"], r["sample"])] = r
    if not seen:
        raise EvalRunError(f"{path}: no completions; run `fabulist eval run --out {out}` (again)")
    return list(seen.values())
