"""The PyTorch checkpoint as a runtime backend, so `fabulist eval run --format torch` samples with the very
same sampler, stop rules and seeds as the exported artifacts (only the logits come from PyTorch).

    fabulist eval run --model runs/f5m --format torch --out runs/eval/f5m-torch

Evaluation may import torch; the runtime never does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TorchBackend:
    """fp32 `LlamaForCausalLM` with a KV cache: n rows of the same prompt, decoded together."""

    batched = True

    def __init__(self, model_dir: str | Path, threads: int | None = None):
        import torch

        from fabulist.export.validate import load_reference

        if threads:
            torch.set_num_threads(threads)
        self._wrap(load_reference(model_dir), None)

    @classmethod
    def from_model(cls, model, context: int | None = None) -> TorchBackend:
        """Over a model already in memory (the one being trained, on its device), without copying it."""
        backend = cls.__new__(cls)
        backend._wrap(model, context)
        return backend

    def _wrap(self, model, context: int | None) -> None:
        import torch

        self.torch, self.model, self.past = torch, model, None
        self.device = next(model.parameters()).device
        self.context = context or model.config.max_position_embeddings

    def check_vocab(self, vocab: int) -> None:  # the checkpoint defines config.json: nothing to check
        pass

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        with self.torch.inference_mode():
            ids = self.torch.tensor(ids, device=self.device)
            out = self.model(ids, past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1, :].float().cpu().numpy()  # (n, V)

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray:
        self.past = None
        return self._forward([list(prompt_ids)] * n)

    def advance(self, tokens: list[int]) -> np.ndarray:
        return self._forward([[t] for t in tokens])


def load_torch_generator(model_dir: str | Path, threads: int | None = None):
    """A runtime `Generator` over the PyTorch checkpoint in model_dir (a Hugging Face folder)."""
    import time

    from tokenizers import Tokenizer

    from fabulist.runtime.backends import BackendError
    from fabulist.runtime.engine import Generator

    model_dir = Path(model_dir)
    if not (model_dir / "model.safetensors").is_file() or not (model_dir / "tokenizer.json").is_file():
        raise BackendError(
            f"{model_dir}: no model.safetensors and tokenizer.json (not a trained model folder)"
        )
    start = time.perf_counter()
    backend = TorchBackend(model_dir, threads)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return Generator(
        backend, tokenizer, time.perf_counter() - start, artifact=model_dir / "model.safetensors"
    )
