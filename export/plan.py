"""Which artifacts an export request means, and whether each fits a device's memory budget.

    fabulist export runs/X --quant int4 --memory-budget 6GB

A request is a set of formats and a precision; `plan` turns it into (format, quant) pairs through one
explicit table. The memory estimate of an artifact is its weights, plus the KV cache at the context
length, plus a fixed runtime overhead:

    weights  = file size (before writing: parameters x bits per weight / 8)
    kv_cache = 2 (K and V) x layers x kv_heads x head_dim x context x bytes per element
               (4 for ONNX Runtime's fp32 cache, 2 for llama.cpp's default f16 cache); a sliding-window
               layer (Gemma 3) counts the whole context too: optimum's graph keeps every position and
               llama.cpp's default context (swa_full) keeps a full-size cache for those layers
    overhead = 128 MiB (runtime, activations, logits, tokenizer) + 10% of the weights
"""

from __future__ import annotations

import re
from pathlib import Path

from fabulist import model_folder as mf
from fabulist.errors import FabulistError
from fabulist.export import arch as ar


class PlanError(FabulistError, ValueError):
    """An export request that cannot be planned: bad format, quantization, budget or model folder."""


FORMATS = ("onnx", "gguf")
QUANTS = ("fp32", "fp16", "int8", "int4", "auto", "all")
PLAN = {  # requested precision -> artifacts per format
    "fp32": {"onnx": ["fp32"], "gguf": ["f32"]},
    "fp16": {"onnx": [], "gguf": ["f16"]},
    "int8": {"onnx": ["int8"], "gguf": ["q8_0"]},
    "int4": {"onnx": ["int4"], "gguf": ["q4_0", "q4_k_m"]},
    "auto": {"onnx": ["auto"], "gguf": []},  # mixed 4/8-bit ONNX against --max-kld/--max-size (mixed.py)
    "all": {"onnx": ["fp32", "int8", "int4"], "gguf": ["f16", "q8_0", "q4_0", "q4_k_m"]},
}
BITS_PER_WEIGHT = {  # for the size estimate before an artifact exists
    "fp32": 32.0, "f32": 32.0, "f16": 16.0, "int8": 8.5, "q8_0": 8.5,
    "int4": 4.5, "q4_0": 4.5, "q4_k_m": 4.85, "auto": 8.5,  # auto: at most every matrix at 8 bits
}  # fmt: skip
KV_BYTES = {"onnx": 4, "gguf": 2}
OVERHEAD_BYTES = 128 * 2**20
_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def plan(fmt: str, quant: str) -> list[tuple[str, str]]:
    """(format, quant) pairs for `--format` (onnx|gguf|all) and `--quant` (fp32|fp16|int8|int4|all)."""
    if fmt not in (*FORMATS, "all"):
        raise PlanError(f"unknown format {fmt!r}; choose from onnx, gguf, all")
    if quant not in QUANTS:
        raise PlanError(f"unknown quantization {quant!r}; choose from {', '.join(QUANTS)}")
    formats = FORMATS if fmt == "all" else (fmt,)
    pairs = [(f, q) for f in formats for q in PLAN[quant][f]]
    if not pairs:
        why, other = ("auto is ONNX only", "onnx") if quant == "auto" else ("fp16 is GGUF only", "gguf")
        raise PlanError(f"--quant {quant} has no {fmt} artifact ({why}); try --format {other}")
    return pairs


def check_backends(model_dir: Path, config: dict, pairs: list[tuple[str, str]]) -> None:
    """Refuse, before any format is written, a requested format that this architecture or tokenizer cannot
    take (arch.refusal; GGUF: a tokenizer llama.cpp would not reproduce), naming the formats that can."""
    import json

    from fabulist.export import gguf_vocab as gv
    from fabulist.export.errors import ExportError

    formats = list(dict.fromkeys(f for f, _ in pairs))
    for fmt in formats:
        reason = ar.refusal(config, fmt)
        if reason is None and fmt == "gguf":
            try:
                gv.tokenizer_kind(json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")))
            except (ExportError, OSError, ValueError) as e:
                reason = str(e)
        if reason:
            others = [f for f in FORMATS if f != fmt and ar.refusal(config, f) is None]
            hint = f"; --format {others[0]} can be exported" if others else ""
            raise PlanError(f"{model_dir}: {fmt}: {reason}; nothing written{hint}")


def parse_bytes(text: str) -> int:
    """'6GB' -> 6_000_000_000; units B, KB, MB, GB (powers of 1000) and KiB, MiB, GiB."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise PlanError(f"bad memory budget {text!r}: expected e.g. 6GB, 512MiB")
    budget = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if budget < 1:
        raise PlanError(f"bad memory budget {text!r}: it must be more than 0 bytes, e.g. 6GB")
    return budget


def read_config(model_dir: Path) -> dict:
    """config.json of a Llama model folder that has a tokenizer, or a PlanError saying what is missing."""
    config_path = model_dir / "config.json"
    if not model_dir.is_dir() or not config_path.exists():
        raise PlanError(
            f"{model_dir} is not a model folder (no config.json); train one with `fabulist train`"
        )
    config = mf.load_config(model_dir)  # a file, UTF-8, JSON, an object: or one line naming the file
    reason = ar.refusal(config)
    if reason:
        raise PlanError(f"{model_dir}: {reason}")
    mf.check_sizes(config, config_path)
    if not (model_dir / "tokenizer.json").exists():
        raise PlanError(f"{model_dir}: tokenizer.json is missing")
    if not (model_dir / "model.safetensors").exists():
        raise PlanError(f"{model_dir}: model.safetensors is missing")
    return config


def parameters(config: dict) -> int:
    """Parameter count of a decoder from its config, with its architecture's facts (arch.py)."""
    facts = ar.ARCHES.get(config.get("model_type"), ar.ARCHES["llama"])
    return mf.parameters(config, facts.norms_per_layer, facts.qkv_bias, facts.qk_norm)


def memory(config: dict, fmt: str, weight_bytes: int, context: int, budget: int) -> dict:
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    kv = 2 * config["num_hidden_layers"] * kv_heads * head_dim * context * KV_BYTES[fmt]
    overhead = OVERHEAD_BYTES + weight_bytes // 10
    total = weight_bytes + kv + overhead
    return {"weights": weight_bytes, "kv_cache": kv, "overhead": overhead, "total": total, "context": context,
            "budget": budget, "fits": total <= budget}  # fmt: skip


def estimate(config: dict, fmt: str, quant: str, context: int, budget: int) -> dict:
    """The memory estimate of an artifact before it is written."""
    weight_bytes = int(parameters(config) * BITS_PER_WEIGHT[quant] / 8)
    return memory(config, fmt, weight_bytes, context, budget)


def what_fits(config: dict, context: int, budget: int) -> str:
    """A sentence naming the artifacts (and, failing that, the context) that fit the budget."""
    fits = [
        f"{f} {q}" for f in FORMATS for q in PLAN["all"][f] if estimate(config, f, q, context, budget)["fits"]
    ]
    if fits:
        return f"at context {context} these fit {budget / 1e9:.1f} GB: {', '.join(fits)}"
    for ctx in (context // 2, context // 4, 512, 256):
        if ctx > 0 and estimate(config, "gguf", "q4_0", ctx, budget)["fits"]:
            return f"nothing fits at context {context}; gguf q4_0 fits at context {ctx}"
    return "nothing fits this budget, even at 4 bits and context 256"
