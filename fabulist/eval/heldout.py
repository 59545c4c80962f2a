"""Held-out perplexity of a run's model, and its KL divergence and top-1 agreement against a reference.

    fabulist eval run --model runs/f5m --quant int4 --out runs/eval/int4 [--heldout split/valid.parquet]

Texts: the first `--heldout-texts` (default 64) fables of a validation split given with `--heldout`
(.parquet or .jsonl, as `fabulist data split` writes them), else the held-out fables export validation
uses (`fabulist.export.validate.heldout_texts`: 12 procedural fables for evaluation-region combinations,
never trained on). Each is the training text (`fable_format.training_text`) tokenized with the model's
tokenizer and cut to its context. Every position's logits come from the run's model exactly as it was
sampled (`--format torch`: the PyTorch checkpoint; onnx: the ONNX artifact under onnxruntime; gguf: the
GGUF under llama.cpp, its KV cache as the runtime sets it), and from the reference: the fp32 PyTorch
checkpoint in the same folder (none when the run samples that checkpoint itself).

- ppl: exp(mean NLL of the actual next token), over every position that has one; `ref_ppl` the same for
  the reference;
- kld: mean over positions of KL(P_ref || Q_model); top1: share of positions whose most likely token agrees
  (the definitions of export validation and llama.cpp's perplexity tool).

Computed per text and accumulated (no (positions x vocabulary) array for the whole set), written to
`RUN/heldout.json` with the settings that made it; `fabulist eval report` shows it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fabulist import artifacts
from fabulist.eval.generate import RUN, EvalRunError
from fabulist.logits import LogitStats
from fabulist.records import read_json, write_atomic

HELDOUT = "heldout.json"
DEFAULT_TEXTS = 64


def texts(source: str | Path | None, limit: int = DEFAULT_TEXTS) -> tuple[list[str], str]:
    """(training-format texts, a label of where they come from)."""
    if source is None:
        from fabulist.export.validate import HELDOUT as N
        from fabulist.export.validate import heldout_texts

        return heldout_texts(N), f"export validation's {N} held-out fables"
    from fabulist import fable_format as ff
    from fabulist.train import data as td

    records = td.read_records(source)[:limit]
    if not records:
        raise EvalRunError(f"{source}: no fables in it")
    return [ff.training_text(r) for r in records], f"{Path(source).name} (first {len(records)} fables)"


def _torch_logits(model_dir: Path, threads: int | None) -> Callable[[list[int]], np.ndarray]:
    import torch

    from fabulist.export.validate import load_reference

    if threads:
        torch.set_num_threads(threads)
    model = load_reference(model_dir)

    def run(ids: list[int]) -> np.ndarray:
        with torch.inference_mode():
            return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()

    return run


def _gguf_logits(path: Path, context: int, threads: int | None) -> Callable[[list[int]], np.ndarray]:
    import llama_cpp

    exact = {"type_k": 0, "type_v": 0} if artifacts.is_exact_gguf(path) else {}  # as the runtime does
    llm = llama_cpp.Llama(str(path), n_ctx=context, logits_all=True, verbose=False, seed=0,
                          n_threads=threads or None, **exact)  # fmt: skip

    def run(ids: list[int]) -> np.ndarray:
        llm.reset()
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)

    return run


def logits_of(model_dir: Path, fmt: str, quant: str | None, threads: int | None = None):
    """A function token ids -> logits (T, V) for the model a run sampled."""
    if fmt == "torch":
        return _torch_logits(model_dir, threads)
    from fabulist.runtime.backends import read_config
    from fabulist.runtime.load import artifact

    path = artifact(model_dir, fmt, quant)
    if fmt == "gguf":
        return _gguf_logits(path, read_config(model_dir)["max_position_embeddings"], threads)
    from fabulist.export.onnx import OnnxLM

    return OnnxLM(path, threads).logits


def compute(model_dir: str | Path, fmt: str, quant: str | None, source: str | Path | None = None,
            limit: int = DEFAULT_TEXTS, threads: int | None = None) -> dict:  # fmt: skip
    """Held-out metrics of (model_dir, fmt, quant) on the texts of `source` (see the module doc)."""
    from tokenizers import Tokenizer

    from fabulist.runtime.backends import read_config

    model_dir = Path(model_dir)
    context = read_config(model_dir)["max_position_embeddings"]
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    docs, label = texts(source, limit)
    seqs = [
        ids for ids in (tok.encode(t, add_special_tokens=False).ids[:context] for t in docs) if len(ids) > 1
    ]
    test = logits_of(model_dir, fmt, quant, threads)
    has_ref = fmt != "torch" and (model_dir / "model.safetensors").is_file()
    ref = _torch_logits(model_dir, threads) if has_ref else None
    sums = LogitStats()
    for ids in seqs:
        sums.add(test(ids), ref(ids) if ref else None, np.array(ids[1:]))
    metrics = sums.result()
    return {
        **{k: metrics[k] for k in ("ppl", "ref_ppl", "kld", "top1")},
        "texts": len(seqs),
        "positions": metrics["positions"],
        "source": label,
        "reference": "PyTorch fp32 checkpoint" if has_ref else None,
    }


def settings_of(run_dir: Path, source: str | Path | None, limit: int) -> dict | None:
    """What the held-out metrics of a run depend on, or None when the run has no run.json."""
    path = run_dir / RUN
    if not path.exists():
        return None
    s = read_json(path).get("settings")
    keys = ("model", "format", "quant")
    if not isinstance(s, dict) or not all(k in s and isinstance(s[k], str | None) for k in keys):
        raise EvalRunError(f"{path}: no settings with model, format and quant (not written by `eval run`?)")
    return {"model": s["model"], "format": s["format"], "quant": s["quant"],
            "heldout": str(source) if source else None, "limit": limit if source else None}  # fmt: skip


def ensure(run_dir: str | Path, source: str | Path | None = None, limit: int = DEFAULT_TEXTS,
           threads: int | None = None) -> dict | None:  # fmt: skip
    """The run's held-out metrics: from RUN/heldout.json when it was made with these settings, else
    computed and written there. None when they cannot be computed (no run.json or the model folder is
    gone), with the reason in 'unavailable'."""
    run_dir = Path(run_dir)
    settings = settings_of(run_dir, source, limit)
    if settings is None:
        return None
    path = run_dir / HELDOUT
    if path.exists():
        done = read_json(path)
        if done.get("settings") == settings:
            return done
    if not (Path(settings["model"]) / "config.json").is_file():
        return {"unavailable": f"model folder {settings['model']} not found", "settings": settings}
    result = {**compute(settings["model"], settings["format"], settings["quant"], source, limit, threads),
              "settings": settings}  # fmt: skip
    write_atomic(path, json.dumps(result, indent=1))
    return result


def load(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / HELDOUT
    return read_json(path) if path.exists() else None
