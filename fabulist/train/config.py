"""What a training run is: its configuration (what `fabulist train`'s options fill in), the fields that
must match to resume it, and the learning-rate schedule, a pure function of the step."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from fabulist.errors import FabulistError


class TrainError(FabulistError):
    """A training run that cannot start or resume."""


@dataclass
class TrainConfig:
    preset: str = "fable-5m"
    data: str = ""
    valid: str | None = None
    out: str = ""
    tokenizer: str | None = None
    vocab_size: int = 4096
    context: int | None = None  # default: the preset's
    batch_size: int = 16  # sequences per optimizer step, over all processes
    grad_accum: int = 1
    max_steps: int | None = None  # default: --max-tokens, else --epochs passes over the training rows
    max_tokens: int | None = None  # train on about this many tokens (padding not counted): sets max_steps
    epochs: float = 1.0
    lr: float | None = None  # default: the preset's
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None  # default: 5% of the steps, at most 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 0  # 0: ten evaluations per run
    eval_batches: int = 8
    eval_fables: int = 8  # fables sampled at each evaluation for judge-free quality metrics (0: none)
    eval_max_tokens: int = 320  # their length limit (never past the training context)
    sample_every: int = 0  # 0: at every evaluation
    save_every: int = 200
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    stop_after: int | None = None  # stop (with a checkpoint) at this step; --resume continues
    shape: dict | None = None  # a custom shape (presets.SHAPE_KEYS); `preset` then only names it
    packing: str = "docs"  # docs: whole documents per row; stream: fixed blocks across documents (data.py)
    loss_on: str = "story"  # story: header targets ignored; all: every real token
    init: str | None = None  # start from this model folder's weights (and its tokenizer) instead of random

    def identity(self) -> dict:
        """The fields that must match for a checkpoint to be resumed by this configuration."""
        skip = {"max_steps", "max_tokens", "epochs", "eval_every", "eval_batches", "eval_fables",
                "eval_max_tokens", "sample_every", "save_every", "device", "compile",
                "stop_after"}  # fmt: skip
        if self.shape is None:  # runs from before custom shapes resume unchanged
            skip.add("shape")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))
