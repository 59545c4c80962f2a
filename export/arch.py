"""The Hugging Face architectures `fabulist export` takes, and what each one needs from each backend.

    fabulist export path/to/SmolLM2-135M --format all     # llama, qwen2, qwen3, gemma3_text folders

Everything that differs between architectures lives here as data, so the exporters stay one code path:
- `ARCHES`: config.json's model_type -> the GGUF architecture name and the weight transformations
  llama.cpp expects (Llama's q/k row permutation, Gemma's RMSNorm `1 + w` folded into the weights);
- `refusal`: the one-line reason a backend cannot take a folder (a feature its runtime would silently
  ignore, so the artifact would differ from PyTorch), checked before anything is written;
- `gguf_tensor_name`: HF tensor names -> llama.cpp's, from gguf-py's own per-architecture tables.
Which llama.cpp tokenizer reproduces a tokenizer.json is gguf_vocab.py's question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Arch:
    """What one Hugging Face architecture needs beyond the shared Llama-style decoder."""

    gguf_name: str  # general.architecture, and gguf-py's MODEL_ARCH name
    permute_qk: bool  # llama.cpp's llama uses interleaved (NORM) RoPE: HF rotate-half q/k rows are permuted
    norm_shift: float  # Gemma's RMSNorm scales by (1 + w); llama.cpp's by w, so w + 1 is written
    qkv_bias: bool  # biases on q/k/v always (Qwen2), not only when config.attention_bias says so
    qk_norm: bool  # RMSNorm on each head's queries and keys (Qwen3, Gemma 3)
    norms_per_layer: int  # 2 pre-norms; Gemma 3 adds a post-norm after attention and after the MLP
    gguf_fp_tolerance: float = 1e-3  # max |dlogit| of an f32 GGUF (validate.FP_TOLERANCE unless noted)


ARCHES = {  # config.json model_type -> facts
    "llama": Arch("llama", permute_qk=True, norm_shift=0.0, qkv_bias=False, qk_norm=False, norms_per_layer=2),
    "qwen2": Arch("qwen2", permute_qk=False, norm_shift=0.0, qkv_bias=True, qk_norm=False, norms_per_layer=2),
    "qwen3": Arch("qwen3", permute_qk=False, norm_shift=0.0, qkv_bias=False, qk_norm=True, norms_per_layer=2),
    # f32 GGUF logits land ~2e-3 off PyTorch's on Gemma alone (top-1 and greedy equal, KLD 3e-8): the GELU,
    # which ggml's CPU backend reads from a float16 table, is the one op only Gemma has
    "gemma3_text": Arch("gemma3", permute_qk=False, norm_shift=1.0, qkv_bias=False, qk_norm=True,
                        norms_per_layer=4, gguf_fp_tolerance=5e-3),
}  # fmt: skip
BACKENDS = ("onnx", "onnx-genai", "gguf")


def arch(config: dict) -> Arch:
    """The facts of a config whose architecture `refusal` accepted."""
    return ARCHES[config.get("model_type")]


def refusal(config: dict, backend: str | None = None) -> str | None:
    """Why `backend` (BACKENDS; None: any) cannot export this config, in one line; None when it can."""
    model_type = config.get("model_type")
    if model_type == "gemma3":
        return "model_type 'gemma3' is the vision-language Gemma 3; export its text model (gemma3_text)"
    if model_type not in ARCHES:
        return f"model_type {model_type!r} is not supported; supported: {', '.join(ARCHES)}"
    if backend == "gguf":
        return _gguf_refusal(config, model_type)
    if backend == "onnx-genai" and model_type == "gemma3_text":
        layers = config.get("num_hidden_layers", 0)
        every_sixth = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers)]
        if config.get("layer_types", every_sixth) != every_sixth:
            return "Gemma 3 layer_types other than every sixth layer global (the genai builder's pattern)"
    return None


def _gguf_refusal(config: dict, model_type: str) -> str | None:
    """Features llama.cpp would not apply: the GGUF would load and then differ from PyTorch."""
    if config.get("mlp_bias"):
        return "mlp_bias: llama.cpp's Llama-family graphs have no MLP biases"
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind != "default":
        return f"rope_scaling {kind!r} is not written to GGUF yet (llama.cpp would run unscaled positions)"
    if model_type == "qwen2" and config.get("use_sliding_window"):
        return "Qwen2 use_sliding_window: llama.cpp's qwen2 attends over the whole context"
    if model_type == "gemma3_text":
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if config.get(key) is not None:
                return f"Gemma 3 {key} {config[key]}: llama.cpp's gemma3 applies no soft-capping"
        head_dim = config.get("head_dim", 256)
        scalar = config.get("query_pre_attn_scalar", head_dim)
        if scalar != head_dim:
            return (f"Gemma 3 query_pre_attn_scalar {scalar} != head_dim {head_dim}: llama.cpp's gemma3 "
                    "scales attention by 1/sqrt(head_dim)")  # fmt: skip
    return None


def is_fable_model(model_dir: Path) -> bool:
    """Whether the folder's tokenizer has Fabulist's fable-format special tokens (a model trained by
    `fabulist train`), so fable_format.json describes how to prompt it."""
    from fabulist import fable_format as ff

    try:
        tj = json.loads((Path(model_dir) / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    added = {t.get("content") for t in tj.get("added_tokens", [])}
    return set(ff.SPECIAL_TOKENS) <= added


# ---------------------------------------------------------------- GGUF


def gguf_tensor_name(config: dict, hf_name: str) -> str | None:
    """llama.cpp's name for an HF tensor (None: a buffer llama.cpp recomputes, such as RoPE frequencies),
    from gguf-py's table for this architecture; a tensor with no place there is refused."""
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    table = _name_map(config["model_type"], config["num_hidden_layers"])
    name = table.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise ValueError(f"tensor {hf_name} has no place in llama.cpp's {arch(config).gguf_name}")
    return name


_MAPS: dict = {}


def _name_map(model_type: str, layers: int):
    import gguf

    key = (model_type, layers)
    if key not in _MAPS:
        model_arch = getattr(gguf.MODEL_ARCH, ARCHES[model_type].gguf_name.upper())
        _MAPS[key] = gguf.get_tensor_name_map(model_arch, layers)
    return _MAPS[key]
