"""`fabulist models`: the embedded models, and `models pack` to make one from a trained run."""

from __future__ import annotations

import click


@click.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def models_group(ctx, as_json) -> None:
    """The models that ship in the package: name, size, artifacts, provenance (and `pack` to add one)."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from fabulist.runtime.embedded import MODELS, describe, embedded

    rows = [describe(p) for p in embedded().values()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no embedded models in {MODELS}")
    for r in rows:
        mark = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{mark}: {r['bytes'] / 1e6:.1f} MB in {r['path']}")
        if r["parameters"]:
            size = f"{r['parameters'] / 1e6:.2f}M parameters, {r['tokens_seen']:,} tokens"
            click.echo(
                f"  {r['preset']}, {size}, valid ppl {r['valid_ppl']:.2f}, data {r['data_sha256'][:12]}"
            )
        for a in r["artifacts"]:
            click.echo(f"  {a}")
        if r["card"]:
            click.echo(f"  model card: {r['card']}")


@models_group.command("pack")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="Folder name under the destination, e.g. fable-5m.")
@click.option("--quality", "quality_path", required=True, type=click.Path(dir_okay=False),
              help="`fabulist eval quality --quant int4,fp32 --json` output for this run.")  # fmt: skip
@click.option("--reproduce", "reproduce_path", required=True, type=click.Path(dir_okay=False),
              help="The script of commands that made the model (copied in, quoted in the card).")  # fmt: skip
@click.option("--browser", "browser_path", type=click.Path(dir_okay=False),
              help="benchmarks/web_precision.py's JSON for this run: the card's browser table.")  # fmt: skip
@click.option("--dest", type=click.Path(file_okay=False), help="Default: the runtime package's models/.")
def models_pack(run, name, quality_path, reproduce_path, browser_path, dest) -> None:
    """Copy an exported run's INT4 ONNX (both graphs) and 4-bit GGUF into a shippable folder with a card."""
    from fabulist.export.pack import pack
    from fabulist.runtime.embedded import MODELS

    final = pack(run, name, dest or MODELS, quality_path, reproduce_path, browser_path=browser_path)
    click.echo(f"packed {name} into {final} (model card: {final / 'README.md'})")
