"""A model folder's config.json, read and checked in one place: every stage reads a model through this.

    from fabulist.model_folder import read_config
    config = read_config("runs/f5m")   # a dict with whole-number sizes, or a ModelFolderError

A folder is the Hugging Face format (config.json, model.safetensors, tokenizer.json); a config.json that is
missing, a folder, unreadable, not UTF-8, not JSON, not an object, or without the Llama sizes as whole
numbers >= 1 is refused with one line that names the file, before any stage computes with it.
"""

from __future__ import annotations

import json
from pathlib import Path

from fabulist.errors import FabulistError

# The sizes every stage computes with (parameters, memory, context), each a whole number >= 1.
SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings")  # fmt: skip
OPTIONAL_SIZES = ("num_key_value_heads", "head_dim")


class ModelFolderError(FabulistError):
    """A model folder whose config.json cannot be used."""


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _load(path: Path):
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise ModelFolderError(f"{path} is {what}: a model folder's config.json must be a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelFolderError(f"{path} is not UTF-8 text (a binary or corrupt file)") from None
    except (ValueError, RecursionError) as exc:
        raise ModelFolderError(f"{path} is not valid JSON ({str(exc)[:80]})") from None
    except OSError as exc:
        raise ModelFolderError(f"{path} cannot be read ({exc.strerror})") from None


def load_config(model_dir: str | Path) -> dict:
    """config.json of `model_dir` as a JSON object (sizes not yet checked); ModelFolderError otherwise."""
    path = Path(model_dir) / "config.json"
    if not path.exists() and not path.is_symlink():
        raise ModelFolderError(
            f"{model_dir} is not a model folder (no config.json); train one with `fabulist train`"
        )
    config = _load(path)
    if not isinstance(config, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("model_type", ""), str):
        raise ModelFolderError(f"{path}: model_type must be text, got {config['model_type']!r}")
    return config


def check_sizes(config: dict, path: str | Path) -> dict:
    """`config` when its sizes are whole numbers >= 1 (SIZES, and OPTIONAL_SIZES when given)."""
    for key in SIZES:
        if not _whole(config.get(key)):
            raise ModelFolderError(f"{path}: {key} must be a whole number >= 1, got {config.get(key)!r}")
    for key in OPTIONAL_SIZES:
        if config.get(key) is not None and not _whole(config[key]):
            raise ModelFolderError(f"{path}: {key} must be a whole number >= 1, got {config[key]!r}")
    return config


def read_config(model_dir: str | Path) -> dict:
    """config.json of `model_dir`, checked (see the module docstring); ModelFolderError otherwise."""
    return check_sizes(load_config(model_dir), Path(model_dir) / "config.json")


def parameters(config: dict, norms_per_layer: int = 2, qkv_bias: bool = False, qk_norm: bool = False) -> int:
    """Parameter count of a decoder-only transformer from its config (the one formula: presets, the export
    plan and the fit planner all count with it). The architecture's facts (export/arch.py: norms per
    layer, q/k/v biases, q/k norms) are arguments, so this layer knows no architecture table."""
    d, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or d // heads
    q, kv = heads * head_dim, (config.get("num_key_value_heads") or heads) * head_dim
    tied = config.get("tie_word_embeddings", True)
    per_layer = 2 * d * q + 2 * d * kv + 3 * d * ffn + norms_per_layer * d
    if qkv_bias or config.get("attention_bias"):
        per_layer += q + 2 * kv + (0 if qkv_bias else d)  # Llama's attention_bias covers o_proj too
    per_layer += 2 * head_dim if qk_norm else 0
    return config["vocab_size"] * d * (1 if tied else 2) + layers * per_layer + d
