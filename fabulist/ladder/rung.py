"""One rung of the ladder: train it (resumably), export it, measure its speed and quality.

    fabulist ladder run CONFIG --data train.parquet --valid valid.parquet --out runs/ladder

The rung's folder OUT/rungs/NAME is a `fabulist train` run folder (a Hugging Face model folder once
trained). A finished training (training.json with the planned steps) is never repeated; an interrupted
one continues from its latest checkpoint (`train(..., resume=True)`). Every later stage writes its
result to OUT/rungs/NAME/ladder/<stage>.json together with the settings that made it and the sha256 of
the weights it measured; a rerun reuses a result whose settings and weights are unchanged.

Stages: export (`fabulist export --quant int4`: ONNX int4 for onnxruntime-genai and optimum, GGUF q4_0
and q4_K_M, each validated against PyTorch: KLD and top-1 in the manifest); speed (the benchmark
worker's row for our runtime on the exported ONNX artifact: decode tok/s, TTFT, peak RSS); quality
(`fabulist.eval.quality` on the evaluation-region prompts through the runtime, on the same artifact);
curve (optional: the same checks, through PyTorch, at intermediate checkpoints and at the end); judge
(only when a judge is given: `fabulist eval run` + `eval judge` on the curated prompts).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fabulist import artifacts
from fabulist.ladder.config import LadderConfig, LadderError, Rung, misses
from fabulist.records import write_atomic
from fabulist.thresholds import COVERAGE

ARTIFACTS = {  # quant -> the exported artifacts the ladder reads and the benchmark row that times them
    quant: {"onnx": artifacts.get("onnx", quant, graph).path, "gguf": artifacts.get("gguf", gguf).path,
            "row": f"ours onnx {quant}"}
    for quant, graph, gguf in (("int4", "genai", "q4_0"), ("int8", "optimum", "q8_0"))
}  # fmt: skip


@dataclass(frozen=True)
class Data:
    """The files every rung trains on (see run.prepare_data)."""

    train: Path
    valid: Path
    tokenizer: Path


def log(msg: str) -> None:
    print(f"[ladder] {msg}", flush=True)


def quality_score(summary: dict) -> float:
    """One number for plots and thresholds: the mean rate of the four coverage checks."""
    return sum(summary[k] for k in COVERAGE) / len(COVERAGE)


def cached(path: Path, settings: dict, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """(result, computed now?): the saved result when its settings match, else compute and save it."""
    settings = json.loads(json.dumps(settings))  # the form it takes on disk (tuples become lists)
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            saved = {}
        if saved.get("settings") == settings:
            return saved["result"], False
    start = time.perf_counter()
    result = compute()
    result["seconds"] = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"settings": settings, "result": result}, indent=1, ensure_ascii=False))
    return result, True


# --- training --------------------------------------------------------------------------------------------


def train_config(cfg: LadderConfig, rung: Rung, data: Data, out: Path):
    """The `fabulist train` configuration of a rung: its shape, the ladder's data, tokenizer and schedule."""
    from fabulist.train.trainer import TrainConfig

    steps = cfg.steps(rung)
    every = steps // (cfg.curve_points + 1) if cfg.curve_points else steps // 4
    return TrainConfig(
        preset=rung.name, shape={**rung.shape_dict(), "context": cfg.context, "lr": rung.lr},
        data=str(data.train), valid=str(data.valid), out=str(out), tokenizer=str(data.tokenizer),
        vocab_size=cfg.vocab_size, context=cfg.context, batch_size=cfg.batch_size, max_steps=steps,
        lr=rung.lr, eval_every=max(1, steps // 8), sample_every=steps, save_every=max(1, every),
        seed=cfg.seed, device=cfg.device, compile=cfg.compile,
        eval_fables=4,  # quality against tokens for the learning curves, cheap at each of the 8 evaluations
    )  # fmt: skip


def train_rung(cfg: LadderConfig, rung: Rung, data: Data, out: Path, progress: bool) -> tuple[dict, str]:
    """(training record, "done" | "resumed" | "trained")."""
    from fabulist.eval.training import probe_for
    from fabulist.train.trainer import train

    record_path = out / "training.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("steps") != cfg.steps(rung):
            raise LadderError(
                f"rung {rung.name} in {out} was trained for {record.get('steps')} steps but the config now "
                f"asks {cfg.steps(rung)}; use a new --out (or delete that rung's folder)"
            )
        return record, "done"
    resume = (out / "run.json").exists()
    config = train_config(cfg, rung, data, out)
    record = train(config, resume=resume, progress=progress, quality=probe_for(config))
    if not record["complete"]:
        raise LadderError(
            f"rung {rung.name} stopped at step {record['steps']}; run the ladder again to resume"
        )
    return record, "resumed" if resume else "trained"


def weights_sha256(out: Path) -> str:
    from fabulist.records import file_sha256

    return file_sha256(out / "model.safetensors")


def learning_curve(out: Path) -> list[dict]:
    """Validation loss against training tokens, from the run's metrics.jsonl, with the quality score of
    the fables the trainer samples at each evaluation where it records them (a row's "quality")."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    points = []
    for r in rows:
        if "valid_loss" in r:
            point = {"step": r["step"], "tokens": r["tokens"], "valid_loss": r["valid_loss"]}
            if all(k in r.get("quality", {}) for k in COVERAGE):
                point["quality_score"] = quality_score(r["quality"])
            points.append(point)
    return points


# --- export, speed, quality ------------------------------------------------------------------------------


def export(cfg: LadderConfig, out: Path, progress: bool) -> dict:
    """{"onnx": artifact, "gguf": artifact} as the export manifest records them (sizes, validation)."""
    from fabulist.export.run import export_model

    artifacts = {
        a["path"]: a for a in export_model(out, "all", cfg.quant, cfg.memory_budget, progress=progress)
    }
    keep = ("path", "bytes", "bits_per_weight", "validation", "gate", "memory")
    picked = {}
    for fmt in ("onnx", "gguf"):
        path = ARTIFACTS[cfg.quant][fmt]
        if path not in artifacts:
            raise LadderError(f"the export of {out} wrote no {path}")
        picked[fmt] = {k: artifacts[path].get(k) for k in keep}
    return picked


def speed(cfg: LadderConfig, out: Path) -> dict:
    """The benchmark worker's row for our runtime on the ONNX artifact (its own process)."""
    from fabulist.bench import suite

    opts = suite.Options(threads=(cfg.speed_threads,), repeats=cfg.speed_repeats, contexts=(), log=False)
    row = suite.measure_row(out, ARTIFACTS[cfg.quant]["row"], cfg.speed_threads, opts)
    return {"row": ARTIFACTS[cfg.quant]["row"], "threads": cfg.speed_threads, **row}


def quality(generator, count: int, cfg: LadderConfig, progress: bool) -> dict:
    from fabulist.eval import quality as q

    e = cfg.eval
    from fabulist.runtime.sampling import preset

    params = preset("quality", temperature=e.temperature, seed=e.seed, max_new_tokens=e.max_new_tokens)
    result = q.run(generator, count, params, progress=progress)
    summary = result["summary"] | {"quality_score": quality_score(result["summary"])}
    return {"summary": summary, "fables": [{"ids": r["ids"], "fable": r["fable"]} for r in result["rows"]]}


def quality_runtime(cfg: LadderConfig, out: Path, progress: bool) -> dict:
    from fabulist.runtime.load import load_generator

    return quality(load_generator(out, "onnx", cfg.quant), cfg.eval.count, cfg, progress)


def checkpoint_folder(out: Path, checkpoint: Path, dest: Path) -> Path:
    """A Hugging Face folder for a training checkpoint: the run's config and tokenizer, its weights
    (the LM head is tied to the embedding, which is why the checkpoint need not store it)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):  # fmt: skip
        if (out / name).exists():
            shutil.copy2(out / name, tmp / name)
    shutil.copy2(checkpoint / "model.safetensors", tmp / "model.safetensors")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def curve_checkpoints(out: Path, points: int) -> list[Path]:
    """`points` intermediate checkpoints, evenly spread, then the final one."""
    found = sorted((out / "checkpoints").glob("step-*[0-9]"))
    middle = found[:-1]
    if points < len(middle):
        middle = [middle[round((i + 1) * len(middle) / (points + 1)) - 1] for i in range(points)]
    return [*middle, *found[-1:]]


def quality_curve(cfg: LadderConfig, out: Path, record: dict, progress: bool) -> dict:
    """Quality (PyTorch fp32, curve_count prompts) at intermediate checkpoints and at the end."""
    from fabulist.eval.torch_backend import load_torch_generator

    points = []
    for ck in curve_checkpoints(out, cfg.curve_points):
        step = int(ck.name.split("-")[1])
        tokens = json.loads((ck / "state.json").read_text())["tokens"]  # real tokens trained by then
        folder = checkpoint_folder(out, ck, out / "ladder" / "curve-model")
        result = quality(load_torch_generator(folder), cfg.curve_count, cfg, progress)
        points.append({"step": step, "tokens": tokens, **result["summary"]})
        shutil.rmtree(folder, ignore_errors=True)
    return {"points": points}


def judge_scores(cfg: LadderConfig, out: Path, sha: str, judge: dict, progress: bool) -> dict:
    """Judge means over the curated prompts (`fabulist eval run` + `eval judge` in ladder/judge-SHA)."""
    from fabulist.eval import generate, grading
    from fabulist.eval import report as rp

    run_dir = out / "ladder" / f"judge-{sha[:12]}"
    j = cfg.judge
    from fabulist.runtime.sampling import preset

    params = preset("judge", temperature=j["temperature"], seed=cfg.eval.seed,
                    max_new_tokens=cfg.eval.max_new_tokens)  # fmt: skip
    generate.run(out, run_dir, "onnx", cfg.quant, j["n"], params, j["limit"], progress=progress)
    summary = grading.run(run_dir, judge["judge"], judge.get("cache"), judge.get("prices"))
    scores = rp.build(run_dir)["judge"]["scores"]
    kept = {k: summary[k] for k in ("judge_model", "graded", "failures", "cost_usd")}
    return {**kept, "scores": {k: v["mean"] for k, v in scores.items()}, "run": str(run_dir)}


# --- the rung --------------------------------------------------------------------------------------------


def run_rung(
    cfg: LadderConfig, rung: Rung, data: Data, out: Path, judge: dict | None, progress: bool
) -> dict:
    """Every stage of one rung (each skipped when its result is there); returns the rung's report row."""
    start = time.perf_counter()
    record, trained = train_rung(cfg, rung, data, out, progress)
    sha = weights_sha256(out)
    stages = out / "ladder"
    base = {"weights": sha, "quant": cfg.quant}
    actions = {"train": trained}
    artifacts, fresh = cached(stages / "export.json", {**base, "budget": cfg.memory_budget},
                              lambda: export(cfg, out, progress))  # fmt: skip
    actions["export"] = "done" if not fresh else "exported"
    timing = {"speed": [cfg.speed_threads, cfg.speed_repeats]}
    measured, fresh = cached(stages / "speed.json", {**base, **timing}, lambda: speed(cfg, out))
    actions["speed"] = "done" if not fresh else "measured"
    settings = {**base, "eval": vars(cfg.eval)}
    scored, fresh = cached(stages / "quality.json", settings, lambda: quality_runtime(cfg, out, progress))
    actions["quality"] = "done" if not fresh else "measured"
    curve = None
    if cfg.curve_points:
        settings = {**base, "eval": vars(cfg.eval), "points": cfg.curve_points, "count": cfg.curve_count}
        curve, fresh = cached(
            stages / "curve.json", settings, lambda: quality_curve(cfg, out, record, progress)
        )
        actions["curve"] = "done" if not fresh else "measured"
    judged = judge_scores(cfg, out, sha, judge, progress) if judge else None
    row = make_row(cfg, rung, record, artifacts, measured, scored, curve, judged, out)
    row["actions"] = actions
    row["seconds"]["ladder_this_run"] = round(time.perf_counter() - start, 1)
    return row


def make_row(cfg, rung: Rung, record, artifacts, measured, scored, curve, judged, out: Path) -> dict:
    summary = scored["summary"]
    metrics = {**summary, "valid_loss": record["final_valid_loss"]}
    kept = ("threads", "load_s", "ttft_s", "tg128_tok_s", "pp128_tok_s", "peak_rss_mb", "skipped")
    config = json.loads((out / "config.json").read_text())
    return {
        "name": rung.name, "family": rung.family, "size": rung.size, "target_params": rung.target,
        "preset": rung.preset, "shape": rung.shape_dict(), "lr": rung.lr, "params": record["parameters"],
        "vocab_size": config["vocab_size"], "context": config["max_position_embeddings"],
        "tokens": record["tokens_seen"], "steps": record["steps"], "valid_loss": record["final_valid_loss"],
        "valid_ppl": record["final_valid_ppl"], "train_loss": record["final_train_loss"],
        "artifacts": {k: artifacts[k] for k in ("onnx", "gguf")},
        "speed": {k: measured[k] for k in kept if k in measured},
        "quality": {k: v for k, v in summary.items()}, "meets": not misses(metrics, cfg.threshold),
        "misses": misses(metrics, cfg.threshold), "loss_curve": learning_curve(out),
        "quality_curve": (curve or {}).get("points", []), "judge": judged, "folder": str(out),
        "seconds": {"train": record["wall_seconds"], "export": artifacts["seconds"],
                    "speed": measured["seconds"], "quality": scored["seconds"],
                    **({"curve": curve["seconds"]} if curve else {})},
    }  # fmt: skip
