"""The `fabulist` command: one module per pipeline stage under fabulist/cli/, each defining its command or
group with click's decorators; this module holds the top-level group, its one handling of bad input, and
the list that registers every stage.

    data.py      fabulist data ...            export.py    fabulist export
    train.py     fabulist train               runtime.py   fabulist generate, fabulist serve
    models.py    fabulist models [pack]       evaluate.py  fabulist eval ...
    bench.py     fabulist bench ...           ladder.py    fabulist ladder ...
    common.py    options several stages share (threads, sampling, model choice, the judge)
"""

from __future__ import annotations

import sys

import click

from fabulist import __version__
from fabulist.errors import FabulistError, one_line


class Group(click.Group):
    """A click group that turns bad input into one line on stderr: a FabulistError or a documented bad
    environment (a missing, unreadable, read-only or full path; text that is not UTF-8; see
    `errors.one_line`) exits 1, a bad option (click's UsageError) or an argument that is not UTF-8 exits 2.
    Any other exception is a bug and keeps its traceback."""

    def main(self, args=None, *rest, **kwargs):
        args = sys.argv[1:] if args is None else list(args)
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:  # bytes the OS passed that are not UTF-8 (surrogate-escaped)
                raw = arg.encode("utf-8", "surrogateescape")
                click.echo(f"error: argument {raw!r} is not valid UTF-8 text", err=True)
                sys.exit(2)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FabulistError, OSError, UnicodeError, MemoryError) as exc:
            message = one_line(exc)
            if message is None:
                raise  # not a documented kind of bad input: a bug, shown with its traceback
            click.echo(f"error: {message}", err=True)
            sys.exit(1)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group called without a subcommand shows its help
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: what was written so far is kept; run the same command to resume", err=True
            )
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fabulist")
def main() -> None:
    """Fabulist: moral fables from synthetic data to small on-device language models.

    \b
    data      element lists -> prompts -> fables from a teacher -> stats and splits
    train     tokenizer and a Llama model (CPU or GPU, resumable, torchrun)
    export    ONNX and GGUF, quantized, each validated against PyTorch
    generate  fables offline with the torch-free runtime (default: the embedded fable-5m)
    serve     the same behind an OpenAI-compatible API
    eval      quality checks, the LLM judge, held-out perplexity
    bench     speed and memory against peers; ladder: sizes and shapes
    """


def _register() -> None:
    from fabulist.cli import bench, data, evaluate, export, ladder, models, runtime, train

    for command in (data.data, train.train_cmd, export.export_cmd, runtime.generate_cmd, runtime.serve_cmd,
                    models.models_group, evaluate.eval_group, bench.bench_group, ladder.ladder):  # fmt: skip
        main.add_command(command)


_register()
