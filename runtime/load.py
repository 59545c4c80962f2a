"""Find an exported artifact in a model folder and build a Generator for it.

fabulist generate --model runs/f5m --format onnx --quant int4
"""

from __future__ import annotations

import time
from pathlib import Path

from fabulist.runtime.backends import BackendError, LlamaCppBackend, OnnxBackend, read_config
from fabulist.runtime.engine import Generator

ARTIFACTS = {
    "onnx": {"fp32": "onnx/model.onnx", "int8": "onnx/model_int8.onnx", "int4": "onnx/model_q4.onnx"},
    "gguf": {q: f"gguf/model-{q}.gguf" for q in ("f32", "f16", "q8_0", "q4_0", "q4_k_m")},
}
DEFAULT_QUANT = {"onnx": "int4", "gguf": "q4_k_m"}


def artifact(model_dir: Path, fmt: str, quant: str | None) -> Path:
    if fmt not in ARTIFACTS:
        raise BackendError(f"unknown format {fmt!r}; choose from {', '.join(ARTIFACTS)}")
    quant = quant or DEFAULT_QUANT[fmt]
    if quant not in ARTIFACTS[fmt]:
        raise BackendError(f"{fmt} has no quantization {quant!r}; choose from {', '.join(ARTIFACTS[fmt])}")
    path = model_dir / ARTIFACTS[fmt][quant]
    if not path.exists():
        raise BackendError(
            f"{path} does not exist; make it with `fabulist export {model_dir} --format {fmt}`"
        )
    return path


def load_generator(model_dir: str | Path, fmt: str = "onnx", quant: str | None = None,
                   threads: int | None = None) -> Generator:  # fmt: skip
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    path = artifact(model_dir, fmt, quant)
    start = time.perf_counter()
    if fmt == "onnx":
        backend = OnnxBackend(path, config, threads)
    else:
        backend = LlamaCppBackend(path, config["max_position_embeddings"], threads)
    tok_path = model_dir / "tokenizer.json"
    if not tok_path.exists():
        raise BackendError(f"{model_dir}: tokenizer.json is missing")
    tokenizer = Tokenizer.from_file(str(tok_path))
    return Generator(backend, tokenizer, load_seconds=time.perf_counter() - start)
