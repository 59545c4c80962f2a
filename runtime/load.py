"""Find an exported artifact in a model folder and build a Generator for it.

    fabulist generate --model runs/f5m --format onnx --quant int4

ONNX fp32 and int4 exist as two graphs: onnxruntime-genai's builder graph (`onnx-genai/<quant>/`,
GroupQueryAttention and fused ops, several times faster to decode on CPU) and optimum's graph
(`onnx/model*.onnx`, the one transformers.js reads). `graph="auto"` takes the fast one when it is there.
"""

from __future__ import annotations

import time
from pathlib import Path

from fabulist import artifacts
from fabulist.runtime.backends import BackendError, GenaiBackend, LlamaCppBackend, OnnxBackend, read_config
from fabulist.runtime.engine import Generator
from fabulist.runtime.plain import PlainFormat, is_fable_tokenizer

FORMATS = artifacts.FORMATS
GRAPHS = ("auto", "genai", "optimum")
DEFAULT_QUANT = {"onnx": "int4", "gguf": "q4_k_m"}


def candidates(fmt: str, quant: str, graph: str = "auto") -> list[str]:
    """Relative artifact paths for (format, quant), in order of preference (fabulist/artifacts.json)."""
    return [a.path for a in artifacts.candidates(fmt, quant, "auto" if fmt == "gguf" else graph)]


def available(model_dir: Path) -> list[str]:
    """'format quant' of every artifact present in the folder."""
    found = [f"{a.format} {a.precision}" for a in artifacts.ARTIFACTS if (model_dir / a.path).is_file()]
    return list(dict.fromkeys(found))


def artifact(model_dir: Path, fmt: str, quant: str | None, graph: str = "auto") -> Path:
    if fmt not in FORMATS:
        raise BackendError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if graph not in GRAPHS:
        raise BackendError(f"unknown graph {graph!r}; choose from {', '.join(GRAPHS)}")
    quant = quant or DEFAULT_QUANT[fmt]
    known = artifacts.quants(fmt)
    if quant not in known:
        raise BackendError(f"{fmt} has no quantization {quant!r}; choose from {', '.join(known)}")
    paths = candidates(fmt, quant, graph)
    for rel in paths:
        if (model_dir / rel).is_file():
            return model_dir / rel
    present = ", ".join(available(model_dir)) or "none"
    want = f"{fmt} {quant}" + ("" if graph == "auto" else f" ({graph} graph)")
    raise BackendError(
        f"{model_dir} has no {want} artifact (present: {present}); "
        f"make it with `fabulist export {model_dir} --format {fmt} --quant {quant}`"
    )


def load_generator(model_dir: str | Path, fmt: str = "onnx", quant: str | None = None,
                   threads: int | None = None, graph: str = "auto") -> Generator:  # fmt: skip
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    path = artifact(model_dir, fmt, quant, graph)
    tok_path = model_dir / "tokenizer.json"
    if not tok_path.is_file():
        raise BackendError(f"{model_dir}: tokenizer.json is missing")
    try:
        tokenizer = Tokenizer.from_file(str(tok_path))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise BackendError(f"{tok_path}: not a valid tokenizer ({str(exc).splitlines()[0][:120]})") from None
    if tokenizer.get_vocab_size() > config["vocab_size"]:
        raise BackendError(
            f"{tok_path} has {tokenizer.get_vocab_size()} tokens but the model has {config['vocab_size']}: "
            "the tokenizer belongs to another model"
        )
    start = time.perf_counter()
    if fmt == "onnx" and (path.parent / "genai_config.json").is_file():
        backend = GenaiBackend(path, config, threads)
    elif fmt == "onnx":
        backend = OnnxBackend(path, config, threads)
    else:
        backend = LlamaCppBackend(path, config["max_position_embeddings"], threads)
    backend.check_vocab(config["vocab_size"])
    plain = None if is_fable_tokenizer(tokenizer) else PlainFormat.from_folder(model_dir, tokenizer)
    return Generator(backend, tokenizer, load_seconds=time.perf_counter() - start, artifact=path, plain=plain)
