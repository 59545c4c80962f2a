"""Judge-free quality while a model trains, sampled the way `fabulist eval quality` samples it.

    fabulist train ... --eval-fables 8      # every evaluation: 8 fables, quality.png beside loss.png

The trainer (a stage) does not know how fables are scored; `fabulist train` and the ladder hand it a
`QualityProbe`, which samples the model being trained through the runtime `Generator` (the sampler, stop
rules and per-prompt seeds of `eval quality`, `TorchBackend` for the logits) and scores the fables with the
quality bar's rules. So a training curve, a ladder curve and `fabulist eval quality` of the exported model
measure the same thing, and sampling draws no number from torch's generator: the training RNG is never
touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from fabulist.eval import quality
from fabulist.eval.torch_backend import TorchBackend
from fabulist.runtime.sampling import preset
from fabulist.thresholds import CHECKS

KEYS = (*CHECKS, "distinct_2", "repetition_4gram")
SMALL_MODEL = 50_000_000  # parameters under which CPU decoding uses one thread: threads only contend


def probe_for(cfg) -> QualityProbe | None:
    """The probe a `TrainConfig` asks for (`eval_fables` fables of at most `eval_max_tokens`), or None."""
    return QualityProbe(cfg.eval_fables, cfg.eval_max_tokens) if cfg.eval_fables > 0 else None


@dataclass(frozen=True)
class QualityProbe:
    """n fables from fixed evaluation-region prompts (never trained on) at temperature 0.8, seed 0: the
    same prompts and draws at every evaluation of every run."""

    fables: int
    max_new_tokens: int
    temperature: float = 0.8
    seed: int = 0

    def __call__(self, model, tokenizer, context: int) -> dict | None:
        """The metrics row of one evaluation, or None when no fable fits in the context."""
        import torch

        from fabulist.runtime.engine import Generator

        if self.fables < 1:
            return None
        prompts = quality.eval_prompts(self.fables, self.seed)
        longest = max(len(tokenizer.encode(p["prompt"], add_special_tokens=False).ids) for p in prompts)
        new = min(self.max_new_tokens, context - longest)
        if new < 1:
            return None
        gen = Generator(TorchBackend.from_model(model, context), tokenizer)
        threads = torch.get_num_threads()
        cpu = next(model.parameters()).device.type == "cpu"
        if cpu and sum(p.numel() for p in model.parameters()) < SMALL_MODEL:
            torch.set_num_threads(1)
        was_training = model.training
        model.eval()
        try:
            params = preset("quality", temperature=self.temperature, seed=self.seed, max_new_tokens=new)
            got = quality.run(gen, params=params, progress=False, prompts=prompts)
        finally:
            torch.set_num_threads(threads)
            model.train(was_training)
        summary = got["summary"]
        return {
            **{k: round(float(summary[k]), 4) for k in KEYS},
            "fables": self.fables,
            "max_new_tokens": new,
        }
