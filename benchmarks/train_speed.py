"""Training throughput: Fabulist's training step against a plain eager LlamaForCausalLM loop.

    .venv/bin/python benchmarks/train_speed.py [--presets fable-1m,fable-5m] [--steps 8] [--json out.json]

Both sides train the same preset on the same random token batches (batch x context, vocab 4096) from the
same initial weights. The baseline is the textbook loop: `model(input_ids, labels=...)`, `.backward()`,
`torch.optim.AdamW(model.parameters())`. Fabulist's side is `fabulist.train.trainer`'s own pieces
(`batch_loss`, `make_optimizer`) with the variants listed, each timed after warm-up steps. Prints tokens/s
and the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from fabulist.train import presets
from fabulist.train.trainer import (
    TrainConfig,
    batch_loss,
    compiled_loss,
    lm_loss,
    make_optimizer,
    optimizer_step,
)

VOCAB = 4096
SPECIAL = {"eos": 0, "bos": 1, "story": 2, "pad": 3}


def model_for(preset: presets.Preset, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**preset.llama_config(VOCAB, SPECIAL), attn_implementation=attn)
    return LlamaForCausalLM(config)


def batches(n: int, batch: int, context: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, VOCAB, size=(batch, context + 1), dtype=np.int64) for _ in range(n)]


def time_steps(step, data: list[np.ndarray], warmup: int) -> float:
    """Seconds per step, median over the timed steps (after `warmup` untimed ones)."""
    times = []
    for i, b in enumerate(data):
        t0 = time.perf_counter()
        step(b)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def baseline_step(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(b):
        x = torch.from_numpy(b[:, :-1])
        loss = model(input_ids=x, labels=x).loss  # HF shifts the labels itself
        loss.backward()
        opt.step()
        opt.zero_grad()

    return step


def fabulist_step(model, compile_model: bool):
    cfg = TrainConfig(lr=1e-3, compile=compile_model)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    loss_fn = compiled_loss() if compile_model else lm_loss
    opt_step = optimizer_step(opt, cfg, torch.device("cpu"))

    def step(b):
        inputs_targets = (b[:, :-1], b[:, 1:])  # every position a target, as the baseline's labels
        loss = batch_loss(model, inputs_targets, torch.device("cpu"), autocast=False, loss_fn=loss_fn)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt_step()
        opt.zero_grad(set_to_none=True)

    return step


VARIANTS = {
    "baseline: eager HF loop, eager attention": lambda p: baseline_step(model_for(p, "eager")),
    "baseline: eager HF loop, sdpa attention": lambda p: baseline_step(model_for(p, "sdpa")),
    "fabulist: sdpa": lambda p: fabulist_step(model_for(p, "sdpa"), False),
    "fabulist: sdpa + torch.compile (loss and AdamW)": lambda p: fabulist_step(model_for(p, "sdpa"), True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="fable-5m")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}x{args.context}")
    for name in args.presets.split(","):
        preset = presets.get(name)
        data = batches(args.warmup + args.steps, args.batch, args.context)
        base = None
        for label, make in VARIANTS.items():
            seconds = time_steps(make(preset), data, args.warmup)
            rate = args.batch * args.context / seconds
            base = base or rate
            rows.append({"preset": name, "variant": label, "tokens_per_s": round(rate), "ratio": rate / base})
            print(f"{name:<10} {label:<50} {rate:>9,.0f} tok/s  {rate / base:5.2f}x")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
