"""`fabulist export`: ONNX and GGUF, quantized, each validated against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from fabulist.artifacts import MANIFEST


@click.command("export")
@click.argument("model_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx", "gguf", "all"]), default="all", show_default=True)
@click.option(
    "--quant",
    type=click.Choice(["fp32", "fp16", "int8", "int4", "auto", "all"]),
    default="int4",
    show_default=True,
    help="int4: ONNX int4 + GGUF Q4_0/Q4_K_M; int8: ONNX int8 + GGUF Q8_0; all: the seven artifacts; "
    "auto: ONNX with 4- and 8-bit matrices, the smallest that meets --max-kld / --max-size.",
)
@click.option("--memory-budget", default="6GB", show_default=True, help="Device memory, e.g. 6GB, 4GiB.")
@click.option("--context", type=click.IntRange(min=1),
              help="Context length for the memory estimate, at least 1 (default: the model's).")  # fmt: skip
@click.option("--method", default=None,
              help="Quantization method. ONNX: int8 rtn (weight-only, default) | dynamic | fold (int8 "
              "weights run as fp32: the browser's graph, precision int8-fold); int4 gptq (default) | rtn "
              "| k_quant | hqq. GGUF 4-bit: rtn (default) | imatrix (importance matrix "
              "from --calib, written to gguf/imatrix.gguf).")  # fmt: skip
@click.option("--calib", type=click.Path(dir_okay=False),
              help="Calibration fables for int4 gptq and GGUF imatrix: the training data (.jsonl or "
              ".parquet) [default: frozen training-region fables, export/calib.json].")  # fmt: skip
@click.option("--max-kld", type=float, help="--quant auto: the largest KLD against fp32 allowed, e.g. 0.005.")
@click.option("--max-size", help="--quant auto: the largest file allowed, e.g. 9MB (lowest KLD that fits).")
@click.option("--strict", is_flag=True, help="Fail when a quantized artifact misses its validation gate.")
@click.option("--no-validate", is_flag=True, help="Skip validation against PyTorch.")
def export_cmd(
    model_dir, fmt, quant, memory_budget, context, method, calib, max_kld, max_size, strict, no_validate
) -> None:
    """Export a trained model folder to ONNX and/or GGUF, validate each artifact, check the budget."""
    import time

    from fabulist.export.errors import ExportError
    from fabulist.export.run import export_model, table

    start = time.perf_counter()
    artifacts = export_model(
        model_dir, fmt, quant, memory_budget, context, not no_validate, method=method, calib=calib,
        max_kld=max_kld, max_size=max_size,
    )  # fmt: skip
    click.echo(table(artifacts))
    manifest = Path(model_dir) / MANIFEST
    click.echo(f"exported in {time.perf_counter() - start:.1f} s; manifest: {manifest}")
    missed = [a for a in artifacts if a.get("gate")]
    for a in missed:
        click.echo(f"WARNING: {a['path']} missed its validation gate: {a['gate']}", err=True)
    if missed and strict:
        raise ExportError(f"{len(missed)} artifact(s) missed their validation gate (--strict)")
