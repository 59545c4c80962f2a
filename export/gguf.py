"""GGUF export: a Hugging Face folder -> gguf/model-<quant>.gguf (f32, f16, q8_0, q4_0, q4_k_m, iq4_nl).

    fabulist export runs/X --format gguf --quant all
    fabulist export runs/X --format gguf --quant int4 --method imatrix   # importance-weighted 4-bit

f32/f16 are written here with gguf-py's GGUFWriter (llama.cpp's HF converter rejects our custom BPE
tokenizer); quantized files are made from the f32 file by llama.cpp itself (llama_model_quantize).
The 4-bit quants have two methods (`METHODS`): `rtn`, llama.cpp's quantizer on the weights alone, and
`imatrix`, the same quantizer handed an importance matrix collected in PyTorch on calibration text
(imatrix.py; written to gguf/imatrix.gguf for `llama-quantize --imatrix`).
Llama, Qwen2, Qwen3 and Gemma 3 folders are written with their architecture's metadata and tensor names
(arch.py) and tokenizer (gguf_vocab.py).
Every artifact is validated with real llama.cpp against the PyTorch reference (see validate.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from fabulist import artifacts
from fabulist import model_folder as mf
from fabulist.export import arch as ar
from fabulist.export import gguf_vocab as gv
from fabulist.export import imatrix as im
from fabulist.export import validate as va
from fabulist.export.errors import ExportError

QUANTS = ("f32", "f16", "q8_0", "q4_0", "q4_k_m", "iq4_nl")
_LLAMA_FTYPE = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
                "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "iq4_nl": "LLAMA_FTYPE_MOSTLY_IQ4_NL"}  # fmt: skip
# Of the 4-bit quants; the default first: on fable-5m v2.2 an importance matrix lowers KLD by 15.7% (Q4_0) and
# 7.2% (Q4_K_M) against llama.cpp's plain rounding (benchmarks/gguf_imatrix.py, results/gguf_imatrix.md).
METHODS = ("imatrix", "rtn")
WEIGHTED = ("q4_0", "q4_k_m", "iq4_nl")  # the quants an importance matrix is handed to
_GATE_CLASS = {"iq4_nl": "q4_0"}  # validation gate of a quant validate.GATES does not name


def export_gguf(
    model_dir: Path,
    quants: list[str],
    *,
    validate: bool = True,
    ref: va.Reference | None = None,
    progress: bool = True,
    method: str | None = None,
    calib: str | Path | None = None,
    imatrix: str | Path | None = None,
) -> list[dict]:
    """Write model_dir/gguf/model-<quant>.gguf for each quant; one result dict per artifact.

    method: `rtn` or `imatrix` for the 4-bit quants (None: METHODS[0]); calib: the calibration fables of
    the imatrix (None: export/calib.json); imatrix: an existing imatrix file to use instead (llama.cpp's
    GGUF format, e.g. from llama-imatrix), checked against this model."""
    model_dir = Path(model_dir)
    bad = [q for q in quants if q not in QUANTS]
    if bad:
        raise ExportError(f"unknown GGUF quant {bad}: choose from {', '.join(QUANTS)}")
    method = method or METHODS[0]
    if method not in METHODS:
        raise ExportError(f"unknown GGUF quantization method {method!r}: choose from {', '.join(METHODS)}")
    if imatrix is not None and method != "imatrix":
        raise ExportError(f"an imatrix file ({imatrix}) is read only by method imatrix, not {method}")
    config = _check_model_dir(model_dir)
    out_dir = (model_dir / artifacts.get("gguf", "f32").path).parent
    out_dir.mkdir(exist_ok=True)
    ref = (ref or va.Reference(model_dir)) if validate else None
    # the f32 file every llama.cpp quantization starts from: the artifact when asked for, else a temp file
    # (an existing model-f32.gguf from an earlier export is never overwritten nor deleted)
    f32 = model_dir / artifacts.get("gguf", "f32").path
    f32 = f32 if "f32" in quants else f32.with_name(f".{f32.stem}.{os.getpid()}.tmp{f32.suffix}")
    results = []
    try:
        if "f32" in quants or any(q in _LLAMA_FTYPE for q in quants):
            _log(progress, "writing f32 GGUF")
            write_gguf(model_dir, config, f32, "f32")
        importance, im_note = {}, ""
        if method == "imatrix" and any(q in WEIGHTED for q in quants):
            importance, im_note = _importance(model_dir, out_dir, calib, imatrix, progress, ref)
            im.check_fits(importance, _widths(f32), f"imatrix {imatrix or out_dir / im.FILE}")
        for q in quants:
            path = model_dir / artifacts.get("gguf", q).path
            if q == "f16":
                _log(progress, "writing f16 GGUF")
                write_gguf(model_dir, config, path, "f16")
            elif q in _LLAMA_FTYPE:
                _log(progress, f"quantizing to {q}")
                quantize(f32, path, q, importance if q in WEIGHTED else None)
            results.append(_describe(model_dir, path, q, ref, progress))
            if q in WEIGHTED:
                results[-1]["method"] = method
                results[-1]["notes"] += [im_note] if importance else []
    finally:
        if "f32" not in quants:
            f32.unlink(missing_ok=True)
    return results


def _importance(model_dir: Path, out_dir: Path, calib, imatrix, progress: bool, ref=None) -> tuple[dict, str]:
    """(llama.cpp matrix name -> mean squared input, a note for the manifest): read from the imatrix file
    given, else collected on the calibration fables and written to gguf/imatrix.gguf."""
    from fabulist.export import calib as cb

    if imatrix is not None:
        found = im.read(Path(imatrix))
        note = f"imatrix: {Path(imatrix).name} ({found.chunk_count} chunks of {found.chunk_size} tokens)"
    else:
        _log(progress, "collecting the importance matrix in PyTorch")
        texts, note = cb.calibration_texts(calib)
        dataset = Path(calib).name if calib else cb.FROZEN
        model = ref.model if ref is not None else None  # the validation reference's, not a second load
        found = im.collect(model_dir, texts, cb.CALIB_TOKENS, dataset=dataset, model=model)
        im.write(out_dir / im.FILE, found)
        tokens = int(max(found.counts.values()))
        note = f"imatrix: gguf/{im.FILE} from {note.removeprefix('calibration: ')}, {tokens:,} tokens"
    return found.importance(), note


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[gguf] {msg}", flush=True)


def _check_model_dir(model_dir: Path) -> dict:
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} is not a model folder (no config.json): pass a trained run folder")
    if not (model_dir / "tokenizer.json").is_file():
        raise ExportError(f"{model_dir} has no tokenizer.json: re-save the tokenizer with the model")
    if not list(model_dir.glob("*.safetensors")):
        raise ExportError(f"{model_dir} has no *.safetensors weights")
    config = mf.load_config(model_dir)  # a file, UTF-8, JSON, an object: or one line naming the file
    reason = ar.refusal(config, "gguf")
    if reason:
        raise ExportError(f"{model_dir}: {reason}; GGUF not written")
    mf.check_sizes(config, model_dir / "config.json")
    try:
        gv.tokenizer_kind(json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise ExportError(f"{model_dir}/tokenizer.json cannot be read ({e})") from None
    return config


# ---------------------------------------------------------------- conversion


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half Q/K rows -> llama.cpp interleaved rows (as convert_hf_to_gguf.py LlamaModel.permute)."""
    out_dim = w.shape[0]
    return w.reshape(n_head, 2, out_dim // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor as float32 numpy; through torch, since numpy has no bfloat16 (published checkpoints'
    dtype)."""
    import torch
    from safetensors.torch import load_file

    weights = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        weights.update({k: v.to(torch.float32).numpy() for k, v in load_file(f).items()})
    return weights


def _order(name: str) -> tuple[int, str]:
    """Embeddings first, then the blocks in order, then the final norm and head (convert_hf_to_gguf's)."""
    if name.startswith("token_embd"):
        return -1, name
    return (int(name.split(".")[1]), name) if name.startswith("blk.") else (1 << 30, name)


def gguf_tensors(model_dir: Path, config: dict):
    """(llama.cpp name, f32 array) in file order, transformed as llama.cpp's architecture expects."""
    w, facts = _load_weights(model_dir), ar.arch(config)
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    tied = config.get("tie_word_embeddings", False)  # tied: a saved lm_head is a copy of the embedding
    out = []
    for hf, t in w.items():
        try:
            name = ar.gguf_tensor_name(config, hf)
        except ValueError as e:
            raise ExportError(f"{model_dir}: {e}") from None
        if name is None or (name == "output.weight" and tied):
            continue
        if facts.permute_qk and name.endswith(("attn_q.weight", "attn_q.bias")):
            t = permute(t, n_head)
        elif facts.permute_qk and name.endswith(("attn_k.weight", "attn_k.bias")):
            t = permute(t, n_kv)
        if facts.norm_shift and name.endswith("norm.weight"):
            t = t + np.float32(facts.norm_shift)
        out.append((name, t))
    yield from sorted(out, key=lambda nt: _order(nt[0]))


def _add_metadata(writer, model_dir: Path, config: dict, dtype: str) -> None:
    import gguf

    n_head = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads", n_head))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // n_head:  # Qwen3, Gemma 3: wider heads than hidden / heads
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if ar.arch(config).gguf_name == "gemma3":
        _add_gemma3(writer, config)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    gv.add_vocab(writer, model_dir, config)


def _add_gemma3(writer, config: dict) -> None:
    """Gemma 3's local layers: their window, which layers they are (the config's layer_types; else
    Gemma's every sixth layer global) and their own RoPE base."""
    layers = config["num_hidden_layers"]
    types = config.get("layer_types") or [
        "full_attention" if (i + 1) % config.get("sliding_window_pattern", 6) == 0 else "sliding_attention"
        for i in range(layers)
    ]
    writer.add_sliding_window(int(config.get("sliding_window") or config["max_position_embeddings"]))
    writer.add_sliding_window_pattern([t == "sliding_attention" for t in types])
    writer.add_rope_freq_base_swa(float(config.get("rope_local_base_freq", 10000.0)))


def write_gguf(model_dir: Path, config: dict, path: Path, dtype: str) -> None:
    """An f32 or f16 GGUF at path, written under a temporary name and renamed when complete."""
    import gguf

    tmp = path.with_name(path.name + ".tmp")
    try:
        writer = gguf.GGUFWriter(tmp, ar.arch(config).gguf_name)
        _add_metadata(writer, model_dir, config, dtype)
        for name, t in gguf_tensors(model_dir, config):
            t = t.astype(np.float16 if dtype == "f16" and t.ndim == 2 else np.float32)
            writer.add_tensor(name, t)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"writing {path.name} failed: {type(e).__name__}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def quantize(src: Path, path: Path, quant: str, importance: dict[str, np.ndarray] | None = None) -> None:
    """llama.cpp's own quantizer: src (f32 GGUF) -> path, via a temporary name; importance (llama.cpp
    matrix name -> mean squared input per column) is handed to it through llama_model_quantize_params."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, _LLAMA_FTYPE[quant])
    params.nthread = 2
    if importance:
        im.check_fits(importance, _widths(src), "the importance matrix")
        array, _keep = im.c_array(importance)  # _keep: what the array points into, alive until return
        params.imatrix = array
    tmp = path.with_name(path.name + ".tmp")
    try:
        with _c_stderr_captured() as log:  # llama.cpp prints one line per tensor; fallbacks are reported
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            last = (log[0].strip().splitlines() or ["no message"])[-1]
            raise ExportError(f"llama.cpp could not quantize {src.name} to {quant} (code {rc}: {last})")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _c_stderr_captured():
    """Send file descriptor 2 (where C libraries write) to a temporary file; yields a list that holds
    the captured text once the block ends."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved, captured = os.dup(2), []
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            captured.append(f.read().decode(errors="replace"))


# ---------------------------------------------------------------- inspection and validation


def _widths(path: Path) -> dict[str, int]:
    """Matrix name -> input columns (ggml's ne[0]) of every 2-D tensor in a GGUF file."""
    import gguf

    return {t.name: int(t.shape[0]) for t in gguf.GGUFReader(path).tensors if len(t.shape) == 2}


def tensor_types(path: Path) -> dict[str, str]:
    """Tensor name -> GGML type name, read back from the file."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:
        raise ExportError(
            f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); re-export it"
        ) from e
    return {t.name: t.tensor_type.name for t in reader.tensors}


def _fallbacks(path: Path, quant: str, config: dict) -> tuple[dict[str, int], list[str]]:
    types = tensor_types(path)
    counts = dict(Counter(types.values()))
    notes = []
    rows = sorted({config["hidden_size"], config["intermediate_size"]} - {0})
    if quant == "q4_k_m":
        odd = {n: t for n, t in types.items() if not t.endswith("_K") and t not in ("F32",)}
        if odd:
            kinds = "/".join(sorted(set(odd.values())))
            notes.append(f"Q4_K_M: {len(odd)} tensors fell back to {kinds} because rows of "
                         f"{'/'.join(map(str, rows))} are not all a multiple of 256")  # fmt: skip
    if quant == "iq4_nl" and any(r % 32 for r in rows):
        odd = sorted({t for t in types.values() if t not in ("IQ4_NL", "F32", "Q6_K", "Q8_0")})
        notes.append(f"IQ4_NL: rows of {'/'.join(map(str, rows))} are not all a multiple of 32; those "
                     f"tensors fell back to {'/'.join(odd) or 'llama.cpp fallbacks'}")  # fmt: skip
    return counts, notes


def _describe(model_dir: Path, path: Path, quant: str, ref, progress: bool) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    fallbacks, notes = _fallbacks(path, quant, config)
    result = {"format": "gguf", "quant": quant, "path": str(path.relative_to(model_dir)),
              "bytes": path.stat().st_size, "validation": None, "gate": None, "notes": notes,
              "fallbacks": fallbacks}  # fmt: skip
    if ref is not None:
        _log(progress, f"validating {path.name} with llama.cpp")
        tolerance = ar.arch(config).gguf_fp_tolerance
        result["validation"], result["gate"] = validate_gguf(path, quant, ref, tolerance)
    return result


def _load_llama(path: Path):
    import llama_cpp

    try:
        return llama_cpp.Llama(
            str(path), n_ctx=512, logits_all=True, verbose=False, n_threads=2, seed=0, type_k=0, type_v=0
        )  # f32 KV cache: f16 would cost ~1e-3 in logits
    except Exception as e:
        raise ExportError(f"llama.cpp cannot load {path} ({type(e).__name__}: {e}); re-export it") from e


class LlamaLM:
    """One GGUF file under llama.cpp, opened as the validation pass needs it (export.validate.ArtifactLM)."""

    def __init__(self, path: Path):
        self.llm = _load_llama(path)

    def logits(self, ids: list[int]) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def greedy(self, ids: list[int], n: int, eos: set[int]) -> list[int]:
        self.llm.reset()
        self.llm.eval(ids)
        out = []
        for _ in range(n):
            out.append(int(np.argmax(self.llm.scores[self.llm.n_tokens - 1])))
            if out[-1] in eos:
                break
            self.llm.eval(out[-1:])
        return out

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


def validate_gguf(
    path: Path, quant: str, ref: va.Reference, fp_tolerance: float = va.FP_TOLERANCE
) -> tuple[dict, str | None]:
    """(metrics, gate verdict) of one GGUF file against the PyTorch reference, run in llama.cpp: logit
    metrics, tokenizer parity on the probes, and (f32) the greedy continuation."""
    lm = LlamaLM(path)
    try:
        gate = _GATE_CLASS.get(quant, quant)
        return va.validate(lm, gate, ref, greedy=quant == "f32", fp_tolerance=fp_tolerance)
    finally:
        lm.close()
