"""Train a Llama-architecture fable model: AdamW, warmup + cosine, clipping, accumulation, packing.

    fabulist train --preset fable-5m --data split/train.parquet --valid split/valid.parquet --out runs/f5m
    torchrun --nproc_per_node 2 -m fabulist.cli train ...     # the same run, data-parallel (DDP)

The run folder ends up as a Hugging Face model folder (config.json, model.safetensors,
generation_config.json, tokenizer files) plus run.json (the configuration), training.json (what
happened), metrics.jsonl, samples.jsonl, loss.png, quality.png and checkpoints/. Each evaluation
(`--eval-every`) records the validation loss and, from `--eval-fables` fables sampled at fixed
evaluation-region prompts, judge-free quality metrics (element coverage, distinct-2, 4-gram repetition);
quality.png plots them against the validation loss. `--resume` continues the latest
checkpoint exactly: the learning rate is a function of the step, the block order a function of
(seed, epoch) and the checkpoint stores model, optimizer, RNG, step and data position.

The global batch (`--batch-size` sequences per optimizer step) stays the same whatever the number of
processes: each of W processes takes batch/(W x accum) sequences per micro-step.

This module is the loop (devices, DDP, losses, evaluation, the optimizer steps). Beside it: config.py (the
configuration and the schedule), checkpoint.py (the run folder and exact resume), folder.py (the Hugging
Face folder, training.json and the plots), data.py (documents to rows) and tokenizer.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabulist import fable_format as ff
from fabulist import locks
from fabulist.records import AppendLog, file_sha256, write_atomic
from fabulist.train import data as td
from fabulist.train import presets
from fabulist.train import tokenizer as tk
from fabulist.train.checkpoint import latest_checkpoint, load_checkpoint, prepare_out, save_checkpoint
from fabulist.train.config import TrainConfig, TrainError, lr_at
from fabulist.train.folder import build_model, export_hf, keep_rows_up_to, last_valid_loss

QualityFn = Callable[[Any, Any, int], "dict | None"]  # (model, tokenizer, context) -> a metrics row or None

SAMPLE_PROMPTS = (
    {"character": "Fox", "trait": "Greedy", "setting": "Orchard", "moral": "Sharing brings joy."},
    {"character": "Tortoise", "trait": "Patient"},
)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_dist(device_type: str) -> Dist:
    """Join the process group when started by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    import torch.distributed as torch_dist

    torch_dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(torch_dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, dist: Dist):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available")
        return torch.device("cuda", dist.local_rank)
    return torch.device(name)


# --- run folder ------------------------------------------------------------------------------------------


def _build_tokenizer(cfg: TrainConfig, out: Path, train_docs: list[str], dist: Dist, context: int):
    """Rank 0 trains (or copies) the tokenizer into the run folder; every rank then loads it from there."""
    source = cfg.tokenizer or cfg.init  # a model to start from brings its own tokenizer
    if dist.main and not (out / "tokenizer.json").exists():
        tok = tk.load(source) if source else tk.train_tokenizer(train_docs, cfg.vocab_size)
        tk.save(tok, out, context)
    _barrier(dist)
    return tk.load(out)


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as torch_dist

        torch_dist.barrier()


# --- the loop --------------------------------------------------------------------------------------------


def init_weights(model, folder: str) -> None:
    """Load a model folder's model.safetensors (safetensors only, never a pickle) into `model`."""
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise TrainError(f"--init {folder}: no model.safetensors in it")
    try:
        weights = load_file(path)
    except Exception as exc:  # safetensors raises its own types for a bad file
        raise TrainError(
            f"--init {path}: not a readable safetensors file ({exc.__class__.__name__})"
        ) from None
    own = model.state_dict()
    bad = sorted(k for k, v in weights.items() if k not in own or own[k].shape != v.shape)
    missing = sorted(set(own) - set(weights) - {"lm_head.weight"})
    if bad or missing:
        raise TrainError(f"--init {folder}: weights do not fit this preset ({(bad or missing)[0]})")
    model.load_state_dict(weights, strict=False)
    if "lm_head.weight" not in weights:
        model.tie_weights()


def lm_loss(model, inputs, targets, autocast: bool, reduction: str = "mean"):
    """Next-token cross-entropy of (B, T) inputs against (B, T) targets, IGNORE targets left out (mean
    over the rest, or their sum); `torch.compile` wraps this whole function with --compile, so the loss
    fuses with the model's last ops."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=inputs).logits  # (B, T, V)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=td.IGNORE, reduction=reduction)  # fmt: skip


def batch_loss(model, batch, device, autocast: bool, loss_fn=lm_loss, reduction: str = "mean"):
    """lm_loss of a numpy (inputs, targets) batch."""
    import torch

    x, y = (torch.from_numpy(a).to(device, non_blocking=True) for a in batch)
    return loss_fn(model, x, y, autocast, reduction)


def evaluate(model, rows: td.Rows, cfg: TrainConfig, micro: int, device, autocast: bool) -> float:
    """Mean loss per story token over the first eval_batches x micro validation documents (a fixed set:
    comparable over time and across packings)."""
    import torch

    model.eval()
    n = min(rows.count, cfg.eval_batches * micro)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, n, micro):
            batch = rows.batch(range(start, min(n, start + micro)))
            total += batch_loss(model, batch, device, autocast, reduction="sum").item()
            count += int((batch[1] != td.IGNORE).sum())
    model.train()
    return total / max(1, count)


def samples(model, tok, step: int, device) -> list[dict]:
    """Two short generations at fixed prompts, to read along as the model learns."""
    import torch

    model.eval()
    out = []
    special = tk.special_ids(tok)
    for i, labels in enumerate(SAMPLE_PROMPTS):
        ids = tok.encode(ff.prompt(labels), add_special_tokens=False).ids
        rng_state = torch.get_rng_state()  # sampling must not move the training RNG
        torch.manual_seed(1000 * step + i)
        with torch.no_grad():
            gen = model.generate(
                torch.tensor([ids], device=device), max_new_tokens=96, do_sample=True, temperature=0.8,
                top_k=40, eos_token_id=special["eos"], pad_token_id=special["pad"],
            )  # fmt: skip
        torch.set_rng_state(rng_state)
        out.append(
            {"step": step, "prompt": ff.prompt(labels), "text": tok.decode(gen[0, len(ids) :].tolist())}
        )
    model.train()
    return out


@dataclass
class Loaded:
    tok: object
    train: td.Rows
    valid: td.Rows | None
    data_hash: str
    documents: int
    free_text: int = 0  # documents whose header holds free-text elements (imported records)


def rows_of(tok, docs: list[str], context: int, seed: int, progress: bool = False, **kw) -> td.Rows:
    """Training or validation rows of documents (data.Rows; kw: packing, story_loss, window)."""
    special = tk.special_ids(tok)
    tokens, offsets = td.encode(tok, docs, progress=progress)
    header = td.header_mask(tokens, special["bos"], tok.token_to_id(ff.STORY))
    return td.Rows(tokens, offsets, header, context, seed, special["pad"], **kw)


def load_data(cfg: TrainConfig, out: Path, dist: Dist, context: int) -> Loaded:
    train_records = td.read_records(cfg.data)
    if not train_records:
        raise TrainError(f"{cfg.data}: no fables in it")
    docs = td.documents(train_records)
    tok = _build_tokenizer(cfg, out, docs, dist, context)
    train = rows_of(tok, docs, context, cfg.seed, progress=dist.main, packing=cfg.packing,
                    story_loss=cfg.loss_on == "story", group=cfg.batch_size)  # fmt: skip
    if train.split and dist.main and cfg.packing == "docs":
        print(f"{train.split} of {len(docs)} fables are longer than the context ({context} tokens): each is "
              "trained in pieces, the later ones without their header")  # fmt: skip
    if train.count < cfg.batch_size:
        raise TrainError(
            f"{cfg.data}: {len(docs)} fables make {train.count} rows of at most {context} tokens, fewer than "
            f"one batch of {cfg.batch_size}; give more data or a smaller --batch-size (or a larger --context)"
        )
    valid = None
    if cfg.valid:
        valid = rows_of(tok, td.documents(td.read_records(cfg.valid)), context, cfg.seed, window=0,
                        truncate=True)  # fmt: skip
        if valid.count == 0:
            raise TrainError(f"{cfg.valid}: no fables in it")
    free_text = sum(1 for r in train_records if r.get("elements_text"))
    return Loaded(tok, train, valid, file_sha256(cfg.data), len(docs), free_text)


def resolve_schedule(cfg: TrainConfig, rows: td.Rows) -> TrainConfig:
    """Defaults that need the data or preset: steps from --max-tokens or --epochs, warmup, eval interval,
    the lr."""
    from dataclasses import replace

    if cfg.max_steps:
        steps = cfg.max_steps
    elif cfg.max_tokens:
        steps = max(1, math.ceil(cfg.max_tokens / (cfg.batch_size * rows.tokens_per_row)))
    else:
        steps = max(1, math.ceil(cfg.epochs * rows.count / cfg.batch_size))
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(100, max(1, steps // 20))
    every = cfg.eval_every or max(1, steps // 10)
    lr = cfg.lr or presets.resolve(cfg.preset, cfg.shape).lr
    return replace(cfg, max_steps=steps, warmup_steps=warmup, eval_every=every, lr=lr)


def check_config(cfg: TrainConfig, dist: Dist) -> presets.Preset:
    preset = presets.resolve(cfg.preset, cfg.shape)
    if not cfg.data:
        raise TrainError("--data is required")
    if cfg.batch_size % (dist.world * cfg.grad_accum):
        raise TrainError(
            f"--batch-size {cfg.batch_size} must be divisible by processes x --grad-accum "
            f"({dist.world} x {cfg.grad_accum})"
        )
    if (cfg.max_steps is not None and cfg.max_steps < 1) or cfg.epochs <= 0 or (cfg.lr or 1) <= 0:
        raise TrainError("need --max-steps >= 1, --epochs > 0 and --lr > 0")
    if cfg.max_tokens is not None and cfg.max_tokens < 1:
        raise TrainError("need --max-tokens >= 1")
    if cfg.init:  # checked before the run folder is made: a bad --init leaves nothing behind
        if not (Path(cfg.init) / "model.safetensors").is_file():
            raise TrainError(f"--init {cfg.init}: no model.safetensors in it")
        if not cfg.tokenizer:
            tk.load(cfg.init)
    if cfg.eval_fables < 0 or cfg.eval_max_tokens < 1:
        raise TrainError("need --eval-fables >= 0 and --eval-max-tokens >= 1")
    if cfg.packing not in ("docs", "stream") or cfg.loss_on not in ("story", "all"):
        raise TrainError("need --packing docs|stream and --loss-on story|all")
    return preset


def train(
    cfg: TrainConfig, resume: bool = False, progress: bool = True, quality: QualityFn | None = None
) -> dict:
    """Run (or resume) one training run; returns the training record written to training.json.

    `quality(model, tokenizer, context)`, when given, measures the model at each evaluation (a metrics dict
    that goes into metrics.jsonl and quality.png, or None): `fabulist.eval.training.QualityProbe` is the one
    `fabulist train` and the ladder pass; the trainer itself knows nothing of how fables are scored."""
    import torch

    if cfg.device == "auto" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["WORLD_SIZE"])))
    dist = setup_dist("cuda" if cfg.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    preset = check_config(cfg, dist)
    context = min(cfg.context or preset.context, preset.context)
    if not Path(cfg.data).exists():
        raise TrainError(f"{cfg.data}: file not found")
    # out.lock beside the run folder, held by the main process while this run trains: a second run of the
    # same folder is refused with the holder's PID
    with locks.exclusive(cfg.out, "training run") if dist.main else contextlib.nullcontext():
        return _train(cfg, dist, preset, context, resume, progress, quality)


def _train(cfg: TrainConfig, dist: Dist, preset, context: int, resume: bool, progress: bool,
           quality: QualityFn | None) -> dict:  # fmt: skip
    import torch

    out = prepare_out(cfg, resume, file_sha256(cfg.data)) if dist.main else Path(cfg.out)
    _barrier(dist)
    if dist.main and not resume:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(
            out / "run.json",
            json.dumps({"config": cfg.identity(), "data_sha256": file_sha256(cfg.data)}, indent=1),
        )
    loaded = load_data(cfg, out, dist, context)
    cfg = resolve_schedule(cfg, loaded.train)
    device = pick_device(cfg.device, dist)
    model = build_model(preset, loaded.tok, cfg.seed)
    if cfg.init:
        init_weights(model, cfg.init)
    model = model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    state = {"step": 0, "position": [0, 0], "tokens": 0, "seconds": 0.0}
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(ckpt, model, optimizer, {"config": cfg.identity(), "data": loaded.data_hash})
    runner = torch.nn.parallel.DistributedDataParallel(model) if dist.world > 1 else model
    loop = Loop(cfg, dist, device, runner, model, optimizer, loaded, out, context, quality)
    return loop.run(state, progress)


def compiled_loss():
    import torch

    return torch.compile(lm_loss)


def make_optimizer(model, cfg: TrainConfig, device):
    """AdamW with weight decay on matrices only (not norms): fused on CUDA; foreach on CPU, where with
    --compile the learning rate is a tensor (capturable) so one compiled step serves the whole schedule."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if device.type == "cuda":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    lr = torch.tensor(cfg.lr) if cfg.compile else cfg.lr
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=True, capturable=cfg.compile)


def optimizer_step(optimizer, cfg: TrainConfig, device):
    """optimizer.step, compiled with --compile on CPU (fuses AdamW's elementwise updates; ~1.1x a step)."""
    import torch

    return torch.compile(optimizer.step) if cfg.compile and device.type != "cuda" else optimizer.step


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], float):
            group["lr"] = lr
        else:
            group["lr"].fill_(lr)  # a tensor learning rate: change it in place, no recompilation


class Loop:
    """The optimisation loop of one process; rank 0 also logs, samples, checkpoints and exports."""

    def __init__(self, cfg, dist, device, runner, model, optimizer, loaded: Loaded, out: Path, context: int,
                 quality: QualityFn | None = None):  # fmt: skip
        self.cfg, self.dist, self.device, self.quality = cfg, dist, device, quality
        self.runner, self.model, self.optimizer = runner, model, optimizer
        self.data, self.out, self.context = loaded, out, context
        self.autocast = device.type == "cuda"
        self.micro = cfg.batch_size // (dist.world * cfg.grad_accum)
        self.identity = {"config": cfg.identity(), "data": loaded.data_hash}
        self.loss_fn = compiled_loss() if cfg.compile else lm_loss
        self.optimizer_step = optimizer_step(optimizer, cfg, device)

    def step(self, position: tuple[int, int]) -> tuple[float, tuple[int, int]]:
        """One optimizer step over the global batch; returns the mean loss and the next data position."""
        import contextlib

        batch, position = self.data.train.take(position, self.cfg.batch_size)
        self.real_tokens = int((batch[0] != self.data.train.pad).sum())
        # The loss is the mean over every target of the global batch, whatever the split into processes and
        # micro-batches: each micro-batch adds its sum / all targets (x processes: DDP averages gradients).
        scale = self.dist.world / max(1, int((batch[1] != td.IGNORE).sum()))
        mine = self.dist.rank * self.cfg.grad_accum * self.micro
        total = 0.0
        for i in range(self.cfg.grad_accum):
            last = i == self.cfg.grad_accum - 1
            sync = contextlib.nullcontext() if last or self.dist.world == 1 else self.runner.no_sync()
            with sync:
                start = mine + i * self.micro
                rows = tuple(a[start : start + self.micro] for a in batch)
                loss = batch_loss(self.runner, rows, self.device, self.autocast, self.loss_fn, "sum") * scale
                loss.backward()
            total += loss.item()
        return self._all_mean(total), position

    def _all_mean(self, value: float) -> float:
        if self.dist.world == 1:
            return value
        import torch
        import torch.distributed as torch_dist

        t = torch.tensor([value], dtype=torch.float64)
        torch_dist.all_reduce(t)
        return t.item() / self.dist.world

    def run(self, state: dict, progress: bool) -> dict:
        import torch
        from tqdm import tqdm

        cfg = self.cfg
        torch.manual_seed(cfg.seed + self.dist.rank)
        if self.dist.main:
            keep_rows_up_to(self.out / "metrics.jsonl", state["step"])
            keep_rows_up_to(self.out / "samples.jsonl", state["step"])
        step, position = state["step"], tuple(state["position"])
        self.tokens = state["tokens"]  # real (not padding) tokens trained on so far
        stop = min(cfg.max_steps, cfg.stop_after or cfg.max_steps)
        show = progress and self.dist.main
        bar = tqdm(total=stop, initial=step, unit="step", disable=not show, dynamic_ncols=True)
        start, row = time.perf_counter(), {}
        while step < stop:
            row, position = self.one_step(step, position)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,}", refresh=False)
            self.observe(step, row)
            if step % cfg.save_every == 0 or step == stop:
                seconds = state["seconds"] + time.perf_counter() - start
                self.checkpoint(step, position, seconds)
        bar.close()
        return self.finish(
            step, row, state["seconds"] + time.perf_counter() - start, done=step == cfg.max_steps
        )

    def one_step(self, step: int, position: tuple[int, int]) -> tuple[dict, tuple[int, int]]:
        import torch

        set_lr(self.optimizer, lr_at(step, self.cfg))
        t0 = time.perf_counter()
        loss, position = self.step(position)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip).item()
        self.optimizer_step()
        self.optimizer.zero_grad(set_to_none=True)
        self.tokens += self.real_tokens
        row = {
            "step": step + 1,
            "tokens": self.tokens,
            "loss": round(loss, 5),
            "lr": lr_at(step, self.cfg),
            "grad_norm": round(norm, 4),
            "tokens_per_s": round(self.real_tokens / (time.perf_counter() - t0)),
        }
        return row, position

    def observe(self, step: int, row: dict) -> None:
        """Validation loss, metrics row and sample generations, at their intervals."""
        cfg, last = self.cfg, step == self.cfg.max_steps
        if self.data.valid and (step % cfg.eval_every == 0 or last):
            loss = evaluate(self.model, self.data.valid, cfg, self.micro, self.device, self.autocast)
            row |= {"valid_loss": round(loss, 5), "valid_ppl": round(math.exp(loss), 3)}
        if not self.dist.main:
            return
        if self.quality is not None and (step % cfg.eval_every == 0 or last):
            got = self.quality(self.model, self.data.tok, self.context)
            if got is not None:
                row["quality"] = got
        with AppendLog(self.out / "metrics.jsonl") as log:
            log.append([row])
        if step % (cfg.sample_every or cfg.eval_every) == 0 or last:
            with AppendLog(self.out / "samples.jsonl") as log:
                log.append(samples(self.model, self.data.tok, step, self.device))

    def checkpoint(self, step: int, position: tuple[int, int], seconds: float) -> None:
        state = {"step": step, "position": list(position), "tokens": self.tokens, "seconds": seconds}
        if self.dist.main:
            folder = self.out / "checkpoints" / f"step-{step:07d}"
            save_checkpoint(folder, self.model, self.optimizer, {**state, "identity": self.identity})
        _barrier(self.dist)

    def finish(self, step: int, row: dict, seconds: float, done: bool) -> dict:
        """The training record; when the run is complete, the Hugging Face folder too."""
        valid = last_valid_loss(self.out / "metrics.jsonl") if self.dist.main else None
        record = {
            "preset": self.cfg.preset,
            **({"shape": self.cfg.shape} if self.cfg.shape else {}),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "data": self.cfg.data,
            "data_sha256": self.data.data_hash,
            "documents": self.data.documents,
            "tokens_seen": self.tokens,
            **({"init": self.cfg.init} if self.cfg.init else {}),
            "packing": self.cfg.packing,
            "loss_on": self.cfg.loss_on,
            "split_documents": self.data.train.split if self.cfg.packing == "docs" else None,
            "steps": step,
            "complete": done,
            "wall_seconds": round(seconds, 1),
            "final_train_loss": row.get("loss"),
            "final_valid_loss": valid,
            "final_valid_ppl": None if valid is None else round(math.exp(valid), 3),
            "processes": self.dist.world,
            "device": str(self.device),
            "format": ff.FORMAT_VERSION,
            ff.ELEMENTS_KEY: ff.FREE_TEXT if self.data.free_text else ff.LISTS,
            "free_text_documents": self.data.free_text,
        }
        if self.dist.main and done:
            export_hf(self.model, self.data.tok, self.out, record)
        _barrier(self.dist)
        return record
