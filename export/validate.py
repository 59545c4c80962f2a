"""What every exporter checks its artifact with: held-out text, PyTorch reference logits, and the
quantization metrics as llama.cpp's perplexity tool defines them.

    fabulist export runs/X --quant all        # prints the validation table at the end

For token positions i with a reference (full-precision) distribution P_i and a test distribution Q_i:
- max_abs_diff: max |logit_ref - logit_test| over all positions and vocabulary entries;
- kld: mean over positions of KL(P_i || Q_i) = sum_v P_i(v) (log P_i(v) - log Q_i(v));
- top1: share of positions where argmax P_i == argmax Q_i;
- ppl_ratio: exp(mean NLL_test) / exp(mean NLL_ref) of the actual next tokens.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Protocol

import numpy as np

from fabulist.logits import compare

GATES = {  # (min top-1, max KLD) per precision class; a miss warns, --strict fails
    "int8": (0.97, 0.01),
    "q8_0": (0.97, 0.01),
    "int4": (0.90, 0.05),
    "q4_0": (0.90, 0.05),
    "q4_k_m": (0.90, 0.05),
}
FP_TOLERANCE = 1e-3  # max abs logit difference allowed for fp32 artifacts
TOKENIZER_PROBES = (
    "The fox said, \u201cI\u2019ll share!\u201d",
    "Caf\u00e9 na\u00efve \u00fcber \u2014 \u00bfqu\u00e9? 12,345.67 and 3/4",
    "Emoji \U0001f98a\U0001f430 and \U0001f468\u200d\U0001f469\u200d\U0001f467 families",
    "  leading spaces, tabs\tand\nnew lines\n\n",
    "Moral: Slow and steady wins the race.",
    "<|prompt|>Character: Fox<|story|>Once upon a time",
)


HELDOUT = 12  # texts x up to 128 tokens (~1,500 positions): top-1 to about +-0.4 points at 97%


def heldout_texts(n: int = HELDOUT, seed: int = 1234) -> list[str]:
    """The first n training-format fables of held-out set `seed` (reserved evaluation-region combinations,
    never trained on), from the frozen file heldout.json beside this module: editing the story grammar
    never changes an export's validation numbers."""
    from importlib import resources

    text = (resources.files("fabulist.export") / "heldout.json").read_text(encoding="utf-8")
    sets = json.loads(text)["texts"]
    texts = sets.get(str(seed), [])
    if n > len(texts):
        raise ValueError(f"held-out set {seed} has {len(texts)} fables, not {n} (seeds: {', '.join(sets)})")
    return texts[:n]


def compare_logits(ref: np.ndarray, test: np.ndarray, targets: np.ndarray | None = None) -> dict:
    """Metrics of test logits (N, V) against reference logits (N, V); targets (N,) are the next tokens
    (fabulist.logits defines them, for held-out evaluation too)."""
    return compare(ref, test, targets)


def gate(quant: str, metrics: dict, fp_tolerance: float = FP_TOLERANCE) -> str | None:
    """None when the metrics pass the default gate for this quantization, else what missed; fp_tolerance:
    the fp32 limit, wider for an engine known to compute an op less exactly (export.arch)."""
    if quant in ("fp32", "f32", "fp16", "f16"):
        limit = fp_tolerance if quant in ("fp32", "f32") else 5e-2
        bad = metrics["max_abs_diff"] > limit
        return f"max abs logit difference {metrics['max_abs_diff']:.2e} > {limit:g}" if bad else None
    top1, kld = GATES[quant]
    misses = []
    if metrics["top1"] < top1:
        misses.append(f"top-1 {metrics['top1']:.1%} < {top1:.0%}")
    if metrics["kld"] > kld:
        misses.append(f"KLD {metrics['kld']:.4f} > {kld}")
    return "; ".join(misses) or None


@contextlib.contextmanager
def hf_quiet():
    """transformers' errors only: no advice about the sampling flags greedy decoding does not use."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_reference(model_dir: str | Path):
    """The PyTorch fp32 model, in the transformers class its config.json names (never remote code)."""
    import torch
    from transformers import AutoModelForCausalLM

    with hf_quiet():
        return AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32, trust_remote_code=False
        ).eval()


def _logits(model, token_ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([token_ids])).logits[0].numpy()


def _greedy(model, token_ids: list[int], n: int) -> list[int]:
    import torch

    with torch.no_grad(), hf_quiet():
        config = model.config
        out = model.generate(torch.tensor([token_ids]), max_new_tokens=n, do_sample=False,
                             eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id)  # fmt: skip
    return out[0, len(token_ids) :].tolist()


def torch_logits(model_dir: str | Path, token_ids: list[int]) -> np.ndarray:
    """PyTorch fp32 logits (T, V) of one token sequence: the reference every artifact is held to."""
    return _logits(load_reference(model_dir), token_ids)


def torch_greedy(model_dir: str | Path, token_ids: list[int], n: int = 64) -> list[int]:
    """PyTorch greedy continuation (new token ids only), stopping at end of text."""
    return _greedy(load_reference(model_dir), token_ids, n)


class Reference:
    """What every artifact of one export is held to, computed once (one PyTorch load) and shared by all
    exporters: the held-out texts as token ids, PyTorch's fp32 logits on them, a greedy continuation of
    the first 16 tokens, the tokenizer (for the probes) and the end-of-text ids."""

    def __init__(
        self, model_dir: str | Path, n_texts: int = HELDOUT, max_tokens: int = 128, greedy: int = 64
    ):
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        texts = heldout_texts(n_texts)
        self.seqs = [self.tokenizer.encode(t, add_special_tokens=False).ids[:max_tokens] for t in texts]
        model = load_reference(model_dir)
        self.logits = [_logits(model, ids) for ids in self.seqs]
        self.prompt = self.seqs[0][:16]
        self.greedy = _greedy(model, self.prompt, greedy)
        eos = model.config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.model = model  # kept: an exporter that needs PyTorch's activations (the imatrix) reuses it


class ArtifactLM(Protocol):
    """An exported artifact opened in the engine that runs it, as the validation pass needs it."""

    def logits(self, ids: list[int]) -> np.ndarray: ...  # (T, V) of one sequence from an empty cache

    def greedy(self, ids: list[int], n: int, eos: set[int]) -> list[int]: ...  # through the KV cache

    def tokenize(self, text: str) -> list[int] | None: ...  # None: the artifact carries no tokenizer


def validate(
    lm: ArtifactLM, quant: str, ref: Reference, greedy: bool = False, fp_tolerance: float = FP_TOLERANCE
) -> tuple[dict, str | None]:
    """The one validation pass of every artifact: logit metrics against PyTorch on positions that have a
    next token, the gate for its precision, tokenizer parity on the probes (where the artifact carries a
    tokenizer) and, with greedy, the KV-cache greedy continuation. Returns (metrics, what missed or None)."""
    ref_all = np.concatenate([r[:-1] for r in ref.logits])
    test_all = np.concatenate([lm.logits(ids)[:-1] for ids in ref.seqs])
    targets = np.concatenate([ids[1:] for ids in ref.seqs])
    metrics = compare_logits(ref_all, test_all, targets)
    metrics["positions"] = len(ref_all)
    misses = [gate(quant, metrics, fp_tolerance)]
    if lm.tokenize(TOKENIZER_PROBES[0]) is not None:
        want = {t: ref.tokenizer.encode(t, add_special_tokens=False).ids for t in TOKENIZER_PROBES}
        metrics["tokenizer_mismatches"] = [t for t in TOKENIZER_PROBES if lm.tokenize(t) != want[t]]
        if metrics["tokenizer_mismatches"]:
            misses.append(f"tokenizer differs on {len(metrics['tokenizer_mismatches'])} probes")
    if greedy:
        got = lm.greedy(ref.prompt, len(ref.greedy), ref.eos)
        metrics["greedy_match"] = got == ref.greedy
        metrics["greedy_tokens"] = len(ref.greedy)
        if got != ref.greedy:
            first = ([a == b for a, b in zip(got, ref.greedy, strict=False)] + [False]).index(False)
            misses.append(f"KV-cache greedy differs from PyTorch at token {first}")
    return metrics, "; ".join(m for m in misses if m) or None
