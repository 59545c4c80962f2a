"""ONNX export: a Hugging Face Llama folder -> onnx/model.onnx (fp32), model_int8.onnx, model_q4.onnx.

    fabulist export runs/X --format onnx --quant all

The `onnx/` files are optimum-onnx's text-generation-with-past graph (inputs input_ids, attention_mask,
position_ids, past_key_values.{i}.key/value; outputs logits, present.{i}.key/value), in the layout
transformers.js reads unchanged. The quantized graphs are made from it by onnxruntime's quantizers, by the
method named for each precision (`METHODS`, the default first, chosen by `benchmarks/quant_methods.py`):
- int8 `rtn`: weight-only, 8-bit `MatMulNBits` (block 32, symmetric) on every MatMul with a weight, the LM
  head included; `dynamic`: `quantize_dynamic` (int8 weights per channel, activations quantized per tensor
  at run time), which misses the INT8 gate on the trained fable-5m and is kept for comparison; `fold`
  (written to model_int8_fold.onnx, beside the default): int8 weights per channel that onnxruntime turns
  back into fp32 at session creation (web.py), the browser's graph, whose wasm kernels are fastest in fp32;
- int4 `gptq`: GPTQ against the Hessian of each matrix's inputs on calibration text (gptq.py; calib.py:
  training-region fables, never the validation probes), symmetric blocks of 32; `rtn`: the same grid by
  round to nearest; `k_quant`: asymmetric blocks whose scale and minimum are searched per block (llama.cpp's
  k-quant rule, weights only); `hqq`: half-quadratic quantization (asymmetric, no data).
- auto (mixed.py): GPTQ 4-bit with the matrices that matter most at 8 bits, chosen against a quality
  target (--max-kld / --max-size) on measured graphs; the plan and a size-vs-KLD PNG beside it.
With fast=True the onnxruntime-genai model builder also writes
`onnx-genai/fp32/` and `onnx-genai/int4/` (GroupQueryAttention, fused QKV, SkipSimplifiedLayerNorm,
MatMulNBits): the same model, several times faster to decode on CPU, run by onnxruntime-genai or plain ORT.
`fable_format.json` beside them describes the prompt format, for readers without Python (transformers.js).
Every artifact is validated with onnxruntime against the PyTorch reference (see validate.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from fabulist import artifacts
from fabulist import fable_format as ff
from fabulist import model_folder as mf
from fabulist.export import arch as ar
from fabulist.export import validate as va
from fabulist.export.errors import ExportError
from fabulist.records import write_atomic

QUANTS = ("fp32", "int8", "int4", "auto")  # auto: mixed 4/8-bit against a quality target (mixed.py)


def optimum_path(quant: str, method: str | None = None) -> str:
    """Where optimum's graph of a quant lives in the model folder (fabulist/artifacts.json)."""
    return artifacts.get("onnx", quant, "optimum", method).path


FILES = {q: Path(optimum_path(q)).name for q in QUANTS}  # transformers.js names (model_q4.onnx, ...)
GENAI_QUANTS = ("fp32", "int4")
METHODS = {"int8": ("rtn", "dynamic", "fold"), "int4": ("gptq", "rtn", "k_quant", "hqq")}  # the default first
# 8-bit MatMulNBits with accuracy_level 4 runs MLAS's int8 kernels (activations quantized per block of 32
# at run time); any other level dequantizes the weights at every step, ~8x slower on fable-5m.
INT8_ACCURACY_LEVEL = 4
LM_HEAD = "/lm_head/MatMul"  # the LM head's node name in optimum's graph
_TWO_GB = 2**31 - 2**20  # protobuf's limit, with headroom for the graph itself


def export_onnx(
    model_dir: Path,
    quants: list[str],
    *,
    context: int | None = None,
    validate: bool = True,
    ref: va.Reference | None = None,
    block_size: int = 32,
    accuracy_level: int | None = None,
    lm_head_8bit: bool = False,
    quantize_embeddings: bool = False,
    progress: bool = True,
    fast: bool = True,
    method: str | None = None,
    calib: str | Path | None = None,
    max_kld: float | None = None,
    max_size: str | int | None = None,
) -> list[dict]:
    """Write the requested ONNX artifacts into model_dir; one result dict per artifact (see module doc).

    method names the quantization method of the quantized precisions requested that have it (see
    `methods`); calib is the calibration file of the methods that need one (None: calib.py's default);
    max_kld / max_size: the target of quant "auto" (mixed.py), whose plan joins its result dict."""
    model_dir = Path(model_dir)
    bad = [q for q in quants if q not in QUANTS]
    if bad or not quants:
        raise ExportError(f"unknown ONNX quant {bad or quants}: choose from {', '.join(QUANTS)}")
    chosen = methods(quants, method)
    config = check_model_dir(model_dir)
    context = _check_context(config, context)
    ref = (ref or va.Reference(model_dir)) if validate else None
    out_dir = model_dir / Path(optimum_path("fp32")).parent
    out_dir.mkdir(exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix=".tmp-onnx-", dir=out_dir) as tmp:
        tmp = Path(tmp)
        _log(progress, "exporting the fp32 graph with optimum")
        fp32 = _export_fp32(model_dir, tmp / "fp32", progress)
        built, plans = {}, {}
        opts = dict(block_size=block_size, accuracy_level=accuracy_level, lm_head_8bit=lm_head_8bit,
                    quantize_embeddings=quantize_embeddings, calib=calib, model_dir=model_dir)  # fmt: skip
        for q in quants:  # build everything from the fp32 graph first, then move it all into place
            notes = [f"dynamic shapes; context {context} recorded only (the KV cache grows as needed)"]
            if q == "fp32":
                built[q] = fp32, [*notes, "optimum graph as exported; ORT fuses at session load"]
                continue
            if q == "auto":  # mixed 4/8-bit, chosen against max_kld / max_size on measured graphs
                from fabulist.export import mixed

                _log(progress, "choosing a mixed 4/8-bit plan")
                (tmp / q).mkdir()
                try:
                    plans[q] = mixed.build(fp32, tmp / q / FILES[q], ref or va.Reference(model_dir), notes,
                                           max_kld=max_kld, max_size=max_size, calib=calib,
                                           model_dir=model_dir, accuracy_level=accuracy_level,
                                           progress=progress)  # fmt: skip
                except ExportError:
                    raise
                except Exception as e:
                    raise ExportError(f"mixed 4/8-bit quantization failed ({type(e).__name__}: {e})") from e
                built[q] = tmp / q / FILES[q], notes
                continue
            _log(progress, f"quantizing to {q} ({chosen[q]})")
            dest = tmp / q / Path(optimum_path(q, chosen[q])).name  # fold: its own file beside int8's
            dest.parent.mkdir(parents=True)
            try:
                built[q] = quantize_graph(fp32, dest, q, chosen[q], notes, **opts), notes
            except ExportError:
                raise
            except Exception as e:
                raise ExportError(f"{q} quantization of {fp32} failed ({type(e).__name__}: {e})") from e
        for q, (path, notes) in built.items():
            dest = commit(path, out_dir / path.name)
            results.append(_describe(model_dir, dest, q, "onnx", ref, notes, progress, chosen.get(q)))
            if q in plans:  # the plan and its size-vs-KLD curve (beside the graph) join the manifest entry
                results[-1].update(mixed.record(plans[q], model_dir, dest))
    if ar.is_fable_model(model_dir):  # other models have no fable prompt format to describe
        write_prompt_format(model_dir)
    genai_refusal = ar.refusal(config, "onnx-genai")
    if fast and genai_refusal:
        _log(progress, f"onnxruntime-genai graph not built: {genai_refusal}")
    if fast and not genai_refusal:
        opts = dict(block_size=block_size, accuracy_level=accuracy_level, lm_head_8bit=lm_head_8bit)
        for q in [q for q in GENAI_QUANTS if q in quants]:
            _log(progress, f"building the onnxruntime-genai {q} graph")
            dest, notes = build_genai(model_dir, q, context, progress=progress, **opts)
            method = "rtn" if q == "int4" else None  # the builder's own round-to-nearest
            results.append(_describe(model_dir, dest, q, "onnx-genai", ref, notes, progress, method))
    return results


def write_prompt_format(model_dir: Path) -> Path:
    """fable_format.json: the prompt format the model was trained with, as data (fable_format.describe),
    saying whether it was trained on list values only or free-text elements (its training.json)."""
    path = model_dir / ff.DESCRIPTION_FILE
    description = ff.describe(ff.trained_elements(model_dir))
    write_atomic(path, json.dumps(description, indent=1, ensure_ascii=False) + "\n")
    return path


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[onnx] {msg}", flush=True)


@contextlib.contextmanager
def _quiet():
    """Swallow the exporters' own chatter (tracer warnings, per-layer prints, progress bars): the export
    prints its own progress lines, and a failure surfaces as an ExportError with the exception's text."""
    import warnings

    # transformers' and optimum's log handlers hold the real stderr, which redirecting does not reach
    with (
        va.hf_quiet(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def check_model_dir(model_dir: Path) -> dict:
    """The folder's config.json, after checking it is a model folder of an architecture arch.py supports,
    with a tokenizer."""
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} is not a model folder (no config.json): pass a trained run folder")
    if not (model_dir / "tokenizer.json").is_file():
        raise ExportError(f"{model_dir} has no tokenizer.json: re-save the tokenizer with the model")
    config = mf.load_config(model_dir)  # a file, UTF-8, JSON, an object: or one line naming the file
    reason = ar.refusal(config, "onnx")
    if reason:
        raise ExportError(f"{model_dir}: {reason}; ONNX not written")
    mf.check_sizes(config, model_dir / "config.json")
    if not list(model_dir.glob("*.safetensors")):
        raise ExportError(f"{model_dir} has no *.safetensors weights")
    return config


def _check_context(config: dict, context: int | None) -> int:
    limit = config.get("max_position_embeddings", 2048)
    if context is None:
        return limit
    if not 0 < context <= limit:
        raise ExportError(f"context {context} must be in 1..{limit} (the model's max_position_embeddings)")
    return context


# ---------------------------------------------------------------- writing files


def external_files(path: Path) -> list[str]:
    """Names of the external-data files an .onnx file refers to (relative to its folder)."""
    import onnx

    model = load_proto(path, load_external_data=False)
    names = set()
    for t in onnx.external_data_helper._get_all_tensors(model):
        for entry in t.external_data:
            if entry.key == "location":
                names.add(entry.value)
    return sorted(names)


def commit(built: Path, dest: Path) -> Path:
    """Move a finished .onnx (and its external data, under the same names) into place, data first.

    `built` lies in a temporary folder inside dest's folder, so every move is a same-filesystem rename
    and `dest` appears only once complete; a stale companion data file of an older export is removed.
    """
    new = external_files(built)
    for name in new:
        os.replace(built.parent / name, dest.parent / name)
    for stale in (dest.name + "_data", dest.name + ".data"):
        if stale not in new:
            (dest.parent / stale).unlink(missing_ok=True)
    os.replace(built, dest)
    return dest


def load_proto(path: Path, load_external_data: bool = True):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as e:
        raise ExportError(f"cannot read ONNX file {path} ({type(e).__name__}: {e}); re-export it") from e


def _export_fp32(model_dir: Path, tmp: Path, progress: bool) -> Path:
    from optimum.exporters.onnx import main_export

    try:
        with _quiet():
            main_export(
                str(model_dir),
                output=str(tmp),
                task="text-generation-with-past",
                local_files_only=True,
                trust_remote_code=False,
                do_validation=False,
            )
    except Exception as e:
        raise ExportError(f"optimum could not export {model_dir} ({type(e).__name__}: {e})") from e
    return tmp / "model.onnx"


def methods(quants: list[str], method: str | None) -> dict[str, str]:
    """The method of each quantized precision in quants: `method` where the precision has it, else its
    default; a method that none of them has is an ExportError naming the valid ones."""
    quantized = [q for q in quants if q in METHODS]
    if method is not None and not any(method in METHODS[q] for q in quantized):
        valid = "; ".join(f"{q}: {', '.join(METHODS[q])}" for q in quantized) or "none for fp32"
        raise ExportError(f"unknown quantization method {method!r} for --quant {'/'.join(quants)} ({valid})")
    return {q: method if method in METHODS[q] else METHODS[q][0] for q in quantized}


def quantize_graph(
    src: Path, dest: Path, quant: str, method: str, notes: list, *, block_size: int = 32,
    accuracy_level: int | None = None, lm_head_8bit: bool = False, quantize_embeddings: bool = False,
    calib: str | Path | None = None, model_dir: Path | None = None,
) -> Path:  # fmt: skip
    """dest: the fp32 graph src quantized to quant (int8|int4) by method (METHODS); what was done is
    appended to notes. model_dir (its tokenizer) and calib serve the methods that read calibration text."""
    if quant == "int8" and method == "dynamic":
        return _quantize_dynamic(src, dest, quantize_embeddings, notes)
    if quant == "int8" and method == "fold":  # int8 on disk, fp32 MatMuls once loaded: for the browser
        from fabulist.export import web

        with tempfile.TemporaryDirectory(prefix=".tmp-fold-", dir=dest.parent) as tmp:
            return web.fold_int8(_fold_source(src, model_dir, Path(tmp), notes), dest, notes)
    if quant == "int8":  # weight-only: block 32 as llama.cpp's Q8_0, accuracy level 4 for speed
        return _quantize_nbits(src, dest, 8, 32, INT8_ACCURACY_LEVEL, "rtn", notes)
    return _quantize_nbits(src, dest, 4, block_size, accuracy_level, method, notes,
                           lm_head_8bit=lm_head_8bit, calib=calib, model_dir=model_dir)  # fmt: skip


def _fold_source(fp32: Path, model_dir: Path | None, tmp: Path, notes: list) -> Path:
    """The fp32 graph the browser's int8 fold starts from: onnxruntime-genai's builder graph where the
    builder takes the architecture, else optimum's (fp32). The builder's graph does the same arithmetic in
    fused onnxruntime ops (GroupQueryAttention, SkipSimplifiedLayerNormalization): on fable-5m 100 nodes
    against optimum's 2,079, so onnxruntime-web runs far fewer kernels per token (README, browser table);
    transformers.js feeds it as it feeds optimum's graph (it sends position_ids only to a graph that has
    them), and its weights are inlined into the one file the browser loads."""
    config = mf.read_config(model_dir) if model_dir is not None else None
    refused = ar.refusal(config, "onnx-genai") if config is not None else "no model folder given"
    if refused:
        notes.append(f"folded from optimum's fp32 graph (onnxruntime-genai's builder: {refused})")
        return fp32
    try:
        built = _run_builder(model_dir, "fp32", tmp / "builder", {})
    except ExportError as e:
        notes.append(f"folded from optimum's fp32 graph ({e})")
        return fp32
    notes.append("folded from onnxruntime-genai's fp32 builder graph (fused ops: fewer kernels per token)")
    return built


def _quantize_dynamic(src: Path, dest: Path, quantize_embeddings: bool, notes: list) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Gather"] if quantize_embeddings else ["MatMul"]
    # QInt8 weights: ORT's recommendation for dynamic quantization on CPU (U8 activations x S8 weights)
    quantize_dynamic(
        str(src),
        str(dest),
        op_types_to_quantize=ops,
        weight_type=QuantType.QInt8,
        per_channel=True,
        use_external_data_format=_big(src),
    )
    notes.append(
        f"quantize_dynamic: {'/'.join(ops)} weights QInt8 per output channel, activations UInt8 at run time"
    )
    return dest


def _quantize_nbits(
    src, dest, bits, block_size, accuracy_level, method, notes, lm_head_8bit=False, calib=None, model_dir=None
) -> Path:
    """MatMulNBits weights (bits 4 or 8) by one of onnxruntime's weight-only methods; embeddings stay fp32."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    if method == "gptq":
        return _quantize_gptq(src, dest, block_size, accuracy_level, notes, calib, model_dir, lm_head_8bit)
    if lm_head_8bit and method == "hqq":
        raise ExportError("an 8-bit LM head needs method gptq, rtn or k_quant, not hqq")
    symmetric = method == "rtn"
    head = {LM_HEAD: {"bits": 8}} if lm_head_8bit else None  # honoured by the RTN and k-quant configs only
    if method == "rtn" and head:
        algo = mnq.RTNWeightOnlyQuantConfig(customized_weight_config=head)
    elif method == "rtn":
        algo = mnq.DefaultWeightOnlyQuantConfig(
            block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level, bits=bits
        )
    elif method == "k_quant":
        algo = mnq.KQuantWeightOnlyQuantConfig(customized_weight_config=head)
    else:
        algo = mnq.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
    quant = mnq.MatMulNBitsQuantizer(
        load_proto(src),
        bits=bits,
        block_size=block_size,
        is_symmetric=symmetric,
        accuracy_level=accuracy_level,
        algo_config=algo,
    )
    with _quiet():  # the INC-based methods print a progress bar per matrix
        quant.process()
    quant.model.save_model_to_file(str(dest), use_external_data_format=_big(src))
    scheme = "symmetric" if symmetric else "asymmetric"
    level = f"accuracy_level {accuracy_level}"
    notes.append(f"MatMulNBits {bits}-bit, method {method}, block {block_size}, {scheme}, {level}")
    if bits == 8:
        notes.append("weight-only: every MatMul with a weight, the LM head included")
    if lm_head_8bit:
        notes.append("LM head kept at 8 bits (MatMulNBits bits=8)")
    notes.append("embeddings (Gather) stay fp32")
    return dest


def _quantize_gptq(src, dest, block_size, accuracy_level, notes, calib, model_dir, lm_head_8bit) -> Path:
    """4-bit MatMulNBits solved by GPTQ (gptq.py: onnxruntime's own GPTQ leaves RTN's codes unchanged);
    with lm_head_8bit the LM head is then rounded to 8 bits."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    from fabulist.export import gptq

    if block_size != gptq.BLOCK:
        raise ExportError(f"gptq writes blocks of {gptq.BLOCK}, not {block_size}")
    if _big(src):  # the Hessian pass opens the graph from bytes, which protobuf caps at 2 GB
        raise ExportError("gptq needs an fp32 graph under 2 GB (about 500M parameters): use --method rtn")
    feeds, note = _calibration(model_dir, calib, src)
    with _quiet():
        gptq.quantize(src, dest, feeds, accuracy_level, _big(src), (LM_HEAD,) if lm_head_8bit else ())
        if lm_head_8bit:  # the one MatMul with a float weight left
            config = mnq.DefaultWeightOnlyQuantConfig(
                block_size=32, is_symmetric=True, bits=8, accuracy_level=INT8_ACCURACY_LEVEL
            )
            head = mnq.MatMulNBitsQuantizer(load_proto(dest), algo_config=config)
            head.process()
            head.model.save_model_to_file(str(dest), use_external_data_format=_big(src))
    notes += [note, f"MatMulNBits 4-bit, method gptq (export/gptq.py), block {gptq.BLOCK}, symmetric, "
              f"accuracy_level {accuracy_level}", "embeddings (Gather) stay fp32"]  # fmt: skip
    if lm_head_8bit:
        notes.append(f"LM head at 8 bits (MatMulNBits bits=8, RTN, accuracy_level {INT8_ACCURACY_LEVEL})")
    return dest


def _calibration(model_dir: Path, calib, fp32: Path) -> tuple[list[dict], str]:
    """The calibration texts as the fp32 graph's inputs: one sequence each, from an empty KV cache."""
    from tokenizers import Tokenizer

    from fabulist.export import calib as cb

    texts, note = cb.calibration_texts(calib)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    lm = OnnxLM(fp32)
    seqs = [tokenizer.encode(t, add_special_tokens=False).ids[: cb.CALIB_TOKENS] for t in texts]
    feeds = [lm.feed(ids, None) for ids in seqs if ids]
    return feeds, f"{note}, {sum(map(len, seqs)):,} tokens"


def _big(path: Path) -> bool:
    return sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file()) > _TWO_GB


# ---------------------------------------------------------------- onnxruntime-genai model builder


def build_genai(
    model_dir: Path,
    quant: str,
    context: int,
    *,
    block_size: int = 32,
    accuracy_level: int | None = None,
    lm_head_8bit: bool = False,
    progress: bool = True,
) -> tuple[Path, list[str]]:
    """Build model_dir/onnx-genai/<quant>/ (model.onnx, model.onnx.data, genai_config.json).

    Returns (path of model.onnx, notes).
    """
    dest = model_dir / artifacts.get("onnx", quant, "genai").folder
    root = dest.parent
    root.mkdir(exist_ok=True)
    opts = {}
    if quant == "int4":
        opts.update(int4_block_size=str(block_size), int4_is_symmetric="true")
        opts.update({"int4_accuracy_level": str(accuracy_level)} if accuracy_level is not None else {})
        opts.update({"int4_algo_config": "rtn_last"} if lm_head_8bit else {})
    with tempfile.TemporaryDirectory(prefix=f".tmp-{quant}-", dir=root) as tmp:
        out = _run_builder(model_dir, quant, Path(tmp), opts).parent
        _set_genai_context(out / "genai_config.json", context)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)  # the whole folder appears at once
    notes = [
        "onnxruntime-genai builder: GroupQueryAttention, fused QKV MatMul, RotaryEmbedding in GQA, "
        "(Skip)SimplifiedLayerNormalization",
        f"genai_config context_length/max_length {context}",
    ]
    if quant == "int4":
        notes.append(
            f"MatMulNBits 4-bit, block {block_size}, symmetric, accuracy_level "
            f"{4 if accuracy_level is None else accuracy_level}"
            + (", LM head 8-bit (rtn_last)" if lm_head_8bit else "")
        )
    return dest / "model.onnx", notes


def _run_builder(model_dir: Path, quant: str, work: Path, opts: dict) -> Path:
    """onnxruntime-genai's builder on model_dir into work/out/ (its cache in work/cache/): local files
    only, no remote code. Returns work/out/model.onnx."""
    from onnxruntime_genai.models import builder

    opts = {"hf_remote": "false", "hf_token": "false", **opts}
    builder.check_extra_options(opts, "cpu")
    out, cache = work / "out", work / "cache"
    try:
        with _quiet():
            builder.create_model(None, str(model_dir), str(out), quant, "cpu", str(cache), **opts)
    except Exception as e:
        raise ExportError(
            f"onnxruntime-genai's builder rejected {model_dir} ({type(e).__name__}: {e})"
        ) from e
    return out / "model.onnx"


def _set_genai_context(path: Path, context: int) -> None:
    cfg = json.loads(path.read_text())
    cfg["model"]["context_length"] = context
    cfg["search"]["max_length"] = context
    path.write_text(json.dumps(cfg, indent=4))


# ---------------------------------------------------------------- running and validating


class OnnxLM:
    """One ONNX causal LM under onnxruntime (CPU): full-sequence logits and greedy decoding with the KV cache.

    Works for optimum's graph (with position_ids) and the genai builder's (without); past tensors start
    empty, (1, kv_heads, 0, head_dim), and each step feeds present.{i} back as past_key_values.{i}.
    """

    def __init__(self, path: Path, threads: int | None = None, accurate_int8: bool = True):
        import onnxruntime as ort

        from fabulist.ort_session import session_options

        opts = session_options(threads, accurate_int8=accurate_int8, quiet=True)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(
                f"onnxruntime cannot load {path} ({type(e).__name__}: {e}); re-export it"
            ) from e
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.past = [n for n in inputs if n.startswith("past_key_values.")]
        self.present = [n.replace("past_key_values.", "present.") for n in self.past]
        self.has_positions = "position_ids" in inputs
        if not self.past or "input_ids" not in inputs:
            raise ExportError(f"{path} is not a causal LM graph with a KV cache (inputs {sorted(inputs)})")
        shape = inputs[self.past[0]].shape  # (batch, kv_heads, past_len, head_dim)
        dtype = np.float16 if "float16" in inputs[self.past[0]].type else np.float32
        self.empty = np.zeros((1, shape[1], 0, shape[3]), dtype=dtype)

    def feed(self, ids: list[int], past: list[np.ndarray] | None) -> dict[str, np.ndarray]:
        """The graph's inputs for ids after a cache of past tensors (None: an empty cache)."""
        past = past or [self.empty] * len(self.past)
        start = past[0].shape[2]
        feed = {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, start + len(ids)), dtype=np.int64),
            **dict(zip(self.past, past, strict=True)),
        }
        if self.has_positions:
            feed["position_ids"] = np.arange(start, start + len(ids), dtype=np.int64)[None]
        return feed

    def step(self, ids: list[int], past: list[np.ndarray] | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits (T, V) of ids after a cache of past tensors; returns the new cache too."""
        out = self.session.run(["logits", *self.present], self.feed(ids, past))
        return out[0][0], out[1:]

    def logits(self, ids: list[int]) -> np.ndarray:
        return self.step(ids, None)[0].astype(np.float32)

    def tokenize(self, text: str) -> None:
        """The graph carries no tokenizer (tokenizer.json beside the model is the reference's own)."""
        return None

    def greedy(self, ids: list[int], n: int, eos: set[int] | None = None) -> list[int]:
        """n new tokens: one prefill, then one token per step through the KV cache; stops after an eos."""
        logits, past = self.step(ids, None)
        out = []
        for _ in range(n):
            out.append(int(logits[-1].argmax()))
            if eos and out[-1] in eos:
                break
            logits, past = self.step(out[-1:], past)
        return out


def validate_onnx(path: Path, quant: str, ref: va.Reference) -> tuple[dict, str | None]:
    """(metrics, gate verdict) of one ONNX artifact against the PyTorch reference (fp32: greedy too)."""
    gate = "int4" if quant == "auto" else quant  # a mixed graph is held to its 4-bit matrices' gate
    return va.validate(OnnxLM(path), gate, ref, greedy=quant == "fp32")


def _describe(model_dir, path: Path, quant, fmt, ref, notes, progress, method=None) -> dict:
    files = [path, *(path.parent / n for n in external_files(path))]
    if fmt == "onnx-genai":
        files.append(path.parent / "genai_config.json")
    result = {
        "format": fmt,
        "quant": quant,
        "path": path.relative_to(model_dir).as_posix(),
        "bytes": sum(f.stat().st_size for f in files),
        "files": [f.relative_to(model_dir).as_posix() for f in files],
        "validation": None,
        "gate": None,
        "notes": notes,
        **({"method": method} if method else {}),
    }
    if ref is not None:
        _log(progress, f"validating {result['path']}")
        result["validation"], result["gate"] = validate_onnx(path, quant, ref)
        if result["gate"]:
            _log(progress, f"{result['path']} misses its gate: {result['gate']}")
    return result
