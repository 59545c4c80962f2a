"""`fabulist export`: plan the artifacts, check the memory budget, run each exporter, write the manifest.

    fabulist export runs/X --quant int4                # ONNX int4 + GGUF Q4_0 and Q4_K_M
    fabulist export runs/X --format all --quant all    # the seven artifacts
    fabulist export runs/X --format onnx --quant int4 --method rtn   # ONNX quantization method (onnx.METHODS)
    fabulist export runs/X --format onnx --quant auto --max-kld 0.005  # mixed 4/8-bit to a target (mixed.py)

Exporters sit behind one explicit table (`EXPORTERS`), each an `Exporter`: it writes its files and
opens each artifact in its engine for the one validation pass (`export.validate.validate`) against one
PyTorch reference, built once per export and shared by all.
`export_manifest.json` beside the model records, for every artifact, its format, quantization, path,
bytes, sha256, parameter count, bits per weight, the source checkpoint's hash, tool versions, validation
results and the memory estimate against the budget.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Protocol

from fabulist.artifacts import MANIFEST
from fabulist.export import mixed
from fabulist.export import plan as pl
from fabulist.export import validate as va
from fabulist.export.errors import ExportError
from fabulist.records import file_sha256, write_atomic

TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-genai",
         "gguf", "llama-cpp-python")  # fmt: skip


class Exporter(Protocol):
    """Writes the artifacts of one format for these quants into model_dir and returns one result dict each,
    validated against ref (None: not validated); options are the request's quantization method and
    calibration file, for the exporters that have them."""

    def __call__(
        self, model_dir: Path, quants: list[str], context: int, ref: va.Reference | None, progress: bool,
        **options,
    ) -> list[dict]: ...  # fmt: skip


def _onnx(model_dir: Path, quants: list[str], context: int, ref: va.Reference | None, progress: bool,
          method: str | None = None, calib: str | Path | None = None, max_kld: float | None = None,
          max_size: str | None = None):  # fmt: skip
    from fabulist.export.onnx import export_onnx

    return export_onnx(
        model_dir, quants, context=context, validate=ref is not None, ref=ref, progress=progress,
        method=_onnx_method(method), calib=calib, max_kld=max_kld, max_size=max_size,
    )  # fmt: skip


def _onnx_method(method: str | None) -> str | None:
    """--method as the ONNX exporter takes it: None (each precision's default) for a GGUF-only method."""
    from fabulist.export.onnx import METHODS

    return method if any(method in names for names in METHODS.values()) else None


def _gguf(model_dir: Path, quants: list[str], context: int, ref: va.Reference | None, progress: bool,
          method: str | None = None, calib: str | Path | None = None, **_options):  # fmt: skip
    from fabulist.export.gguf import METHODS, export_gguf

    return export_gguf(model_dir, quants, validate=ref is not None, ref=ref, progress=progress,
                       method=method if method in METHODS else None, calib=calib)  # fmt: skip


EXPORTERS: dict[str, Exporter] = {"onnx": _onnx, "gguf": _gguf}


def tool_versions() -> dict[str, str]:
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def check_method(pairs: list[tuple[str, str]], method: str | None, calib: str | Path | None) -> None:
    """Refuse, before anything is built, a --method that no requested artifact has (ONNX int8/int4:
    onnx.METHODS; GGUF 4-bit: gguf.METHODS), and a --calib that no method would read."""
    from fabulist.export import gguf
    from fabulist.export.onnx import methods

    onnx = [q for f, q in pairs if f == "onnx"]
    gguf4 = any(f == "gguf" and q in gguf.WEIGHTED for f, q in pairs)
    if method is not None and not onnx and not (gguf4 and method in gguf.METHODS):
        raise ExportError(f"--method {method} applies to ONNX int8/int4 artifacts and GGUF 4-bit ones "
                          f"({'|'.join(gguf.METHODS)}); add --format onnx")  # fmt: skip
    if method is not None and onnx and not (gguf4 and method in gguf.METHODS):
        methods(onnx, method)  # a method no requested ONNX precision has: the error names the valid ones
    gptq = bool(onnx) and ("gptq" in methods(onnx, _onnx_method(method)).values() or "auto" in onnx)
    imatrix = gguf4 and (method if method in gguf.METHODS else gguf.METHODS[0]) == "imatrix"
    if calib is not None and not gptq and not imatrix:
        raise ExportError(f"--calib {calib} is read only by --method gptq (ONNX int4) and imatrix (GGUF "
                          "4-bit); the other methods need no data")  # fmt: skip


def check_budget(config: dict, pairs: list[tuple[str, str]], context: int, budget: int, text: str) -> None:
    """Refuse, before anything is written, a request with an artifact that would not fit."""
    for fmt, quant in pairs:
        est = pl.estimate(config, fmt, quant, context, budget)
        if not est["fits"]:
            raise ExportError(
                f"{fmt} {quant} would need about {est['total'] / 1e9:.2f} GB at context {context}, over the "
                f"{text} budget; {pl.what_fits(config, context, budget)}"
            )


def describe(result: dict, model_dir: Path, config: dict, context: int, budget: int, source: str) -> dict:
    """Complete an exporter's result with the manifest's bookkeeping."""
    path = model_dir / result["path"]
    files = [model_dir / f for f in result.get("files", [result["path"]])]  # a graph and its external data
    size = sum(p.stat().st_size for p in files)
    params = pl.parameters(config)
    mem_format = "onnx" if result["format"].startswith("onnx") else "gguf"
    return {
        **result,
        "bytes": size,
        "sha256": file_sha256(path)
        if len(files) == 1
        else {p.relative_to(model_dir).as_posix(): file_sha256(p) for p in files},
        "parameters": params,
        "bits_per_weight": round(size * 8 / params, 3),
        "source_sha256": source,
        "memory": pl.memory(config, mem_format, size, context, budget),
    }


def export_model(
    model_dir: str | Path,
    fmt: str = "all",
    quant: str = "int4",
    budget: str = "6GB",
    context: int | None = None,
    validate: bool = True,
    progress: bool = True,
    method: str | None = None,
    calib: str | Path | None = None,
    max_kld: float | None = None,
    max_size: str | None = None,
) -> list[dict]:
    """Write and validate the requested artifacts, record them in the manifest, and return them.

    method: the ONNX quantization method (export.onnx.METHODS; None: each precision's default); calib:
    the calibration fables of the methods that need them (None: export/calib.json); max_kld / max_size:
    the target of quant "auto" (export/mixed.py)."""
    model_dir = Path(model_dir)
    _quiet_libraries()
    config = pl.read_config(model_dir)
    pairs = pl.plan(fmt, quant)
    check_method(pairs, method, calib)
    mixed.check_request(pairs, max_kld, max_size)  # a target needs --quant auto, and auto a target
    pl.check_backends(model_dir, config, pairs)  # an architecture/format pair no backend can take
    limit = pl.parse_bytes(budget)
    context = config["max_position_embeddings"] if context is None else context
    if context < 1 or context > config["max_position_embeddings"]:
        raise ExportError(
            f"--context {context} is outside 1..{config['max_position_embeddings']} for this model"
        )
    check_budget(config, pairs, context, limit, budget)
    source = file_sha256(model_dir / "model.safetensors")
    ref = va.Reference(model_dir) if validate else None
    results = []
    for name, exporter in EXPORTERS.items():
        quants = [q for f, q in pairs if f == name]
        if quants:
            results += exporter(model_dir, quants, context, ref, progress, method=method, calib=calib,
                                max_kld=max_kld, max_size=max_size)  # fmt: skip
    artifacts = [describe(r, model_dir, config, context, limit, source) for r in results]
    write_manifest(model_dir, artifacts, context, budget)
    return artifacts


def _quiet_libraries() -> None:
    """ORT's quantizer configures the root logger at INFO on import and gguf-py logs every file it writes;
    their per-tensor lines drown the export's own progress, so only their warnings are shown."""
    import logging

    for name in ("onnxruntime.quantization", "gguf", "onnxruntime_genai", "optimum"):
        logging.getLogger(name).setLevel(logging.WARNING)


def write_manifest(model_dir: Path, artifacts: list[dict], context: int, budget: str) -> dict:
    """Merge these artifacts into export_manifest.json (artifacts of earlier exports are kept)."""
    path = model_dir / MANIFEST
    old = json.loads(path.read_text()).get("artifacts", []) if path.exists() else []
    fresh = {a["path"] for a in artifacts}
    manifest = {
        "model": str(model_dir),
        "updated": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "context": context,
        "memory_budget": budget,
        "tools": tool_versions(),
        "artifacts": [a for a in old if a["path"] not in fresh] + artifacts,
    }
    write_atomic(path, json.dumps(manifest, indent=1))
    return manifest


COLUMNS = (("max_abs_diff", "max|dlogit|", ".2e", 12), ("kld", "KLD", ".4f", 9), ("top1", "top-1", ".1%", 8),
           ("ppl_ratio", "ppl x", ".3f", 7))  # fmt: skip


def table(artifacts: list[dict]) -> str:
    """The validation table printed at the end of an export."""
    head = f"{'artifact':<30}{'size':>10}{'bits/w':>8}" + "".join(f"{c[1]:>{c[3]}}" for c in COLUMNS)
    head += "  fits  gate"
    lines = [head, "-" * len(head)]
    for a in artifacts:
        v = a.get("validation") or {}
        cells = "".join(f"{format(v[k], spec) if k in v else '-':>{width}}" for k, _, spec, width in COLUMNS)
        verdict = a.get("gate") or ("ok" if v else "not validated")
        fits = "yes" if a["memory"]["fits"] else "NO"
        size = f"{a['bytes'] / 1e6:>9.2f}M{a['bits_per_weight']:>8.2f}"
        lines.append(f"{a['path']:<30}{size}{cells}  {fits:<4}  {verdict}")
    return "\n".join(lines)
