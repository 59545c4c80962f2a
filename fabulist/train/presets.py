"""Model presets as data (`presets.json`): Llama shapes from about 1M to about 350M parameters.

    fabulist train --list-presets

A preset fixes the shape; the vocabulary comes from the tokenizer. Everything here is plain Python, so
listing presets and counting parameters needs no torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources

from fabulist.errors import FabulistError


class PresetError(FabulistError, ValueError):
    """An unknown or malformed preset."""


@dataclass(frozen=True)
class Preset:
    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    context: int
    lr: float  # default peak learning rate: smaller models take larger steps

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def parameters(self, vocab_size: int) -> int:
        """Parameter count of the LlamaForCausalLM this preset builds (tied embeddings, no biases)."""
        from fabulist.model_folder import parameters

        return parameters({**asdict(self), "vocab_size": vocab_size, "tie_word_embeddings": True})

    def llama_config(self, vocab_size: int, special: dict[str, int]) -> dict:
        """Keyword arguments for transformers.LlamaConfig."""
        shape = {k: v for k, v in asdict(self).items() if k not in ("name", "context", "lr")}
        return {
            **shape,
            "vocab_size": vocab_size,
            "max_position_embeddings": self.context,
            "head_dim": self.head_dim,
            "tie_word_embeddings": True,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "bos_token_id": special["bos"],
            "eos_token_id": special["eos"],
            "pad_token_id": special["pad"],
        }


def _check(p: Preset) -> None:
    if p.hidden_size % p.num_attention_heads or p.num_attention_heads % p.num_key_value_heads:
        raise PresetError(f"preset {p.name}: heads must divide hidden_size and kv heads must divide heads")
    if p.hidden_size % 32 or p.intermediate_size % 32:
        raise PresetError(f"preset {p.name}: hidden and FFN sizes must be multiples of 32")


@cache
def load() -> dict[str, Preset]:
    text = (resources.files("fabulist.train") / "presets.json").read_text(encoding="utf-8")
    presets = {}
    for name, shape in json.loads(text).items():
        if not name.startswith("_"):
            presets[name] = Preset(name=name, **shape)
            _check(presets[name])
    return presets


def get(name: str) -> Preset:
    presets = load()
    if name not in presets:
        raise PresetError(f"unknown preset {name!r}; choose from {', '.join(presets)}")
    return presets[name]


SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size")  # fmt: skip


def custom(name: str, shape: dict, context: int = 512, lr: float = 1e-3) -> Preset:
    """A Preset from a shape given as data (the five SHAPE_KEYS; `context` and `lr` optional), checked
    like the shipped ones. `fabulist train --shape` and `fabulist ladder` rungs use it."""
    unknown = sorted(set(shape) - {*SHAPE_KEYS, "context", "lr"})
    missing = [k for k in SHAPE_KEYS if k not in shape]
    if unknown or missing:
        what = f"unknown keys {unknown}" if unknown else f"missing {missing}"
        raise PresetError(f"shape {name}: {what}; a shape has {', '.join(SHAPE_KEYS)} (and context, lr)")
    values = {"context": context, "lr": lr, **shape}
    ints = [k for k in (*SHAPE_KEYS, "context") if not isinstance(values[k], int) or values[k] < 1]
    if ints or not isinstance(values["lr"], int | float) or values["lr"] <= 0:
        raise PresetError(
            f"shape {name}: {', '.join(ints) or 'lr'} must be positive numbers (whole for sizes)"
        )
    preset = Preset(name=name, **values)
    _check(preset)
    return preset


def parse_shape(text: str) -> dict:
    """'128,4,4,2,256' (hidden, layers, heads, kv heads, ffn) -> a shape dict for `custom`."""
    parts = text.split(",")
    if len(parts) != len(SHAPE_KEYS) or not all(p.strip().isdigit() for p in parts):
        raise PresetError(f"--shape {text!r}: expected hidden,layers,heads,kv_heads,ffn, e.g. 128,4,4,2,256")
    return dict(zip(SHAPE_KEYS, (int(p) for p in parts), strict=True))


def resolve(name: str, shape: dict | None = None) -> Preset:
    """The named preset, or (with a shape) a custom one named `name` whose missing context/lr come from
    the preset of that name when there is one."""
    if shape is None:
        return get(name)
    base = load().get(name)
    return custom(name, shape, base.context if base else 512, base.lr if base else 1e-3)
