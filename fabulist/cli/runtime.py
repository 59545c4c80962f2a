"""`fabulist generate` and `fabulist serve`: the torch-free runtime, from the command line or behind an
OpenAI-compatible API."""

from __future__ import annotations

from pathlib import Path

import click

from fabulist.cli.common import THREADS_HELP, model_options, sampling, threads_option
from fabulist.cli_types import SEED


def _elements_for(given: dict[str, str | None], random_fill: bool,
                  seed: int | None) -> tuple[dict[str, str], list[str]]:  # fmt: skip
    """Scaffold labels: each given element by id or label, else as free text (one line, at most
    fable_format.MAX_ELEMENT_CHARS characters: a ValueError otherwise), the rest drawn at random; and the
    kinds given as free text."""
    import random

    from fabulist import elements
    from fabulist import fable_format as ff

    rng = random.Random(seed)
    labels, free = {}, []
    for kind in elements.KINDS:
        value = given.get(kind)
        if value is None and not random_fill:
            continue
        if value is None:
            labels[kind] = elements.label(kind, rng.choice(elements.load(kind)))
            continue
        labels[kind], is_free = ff.element_label(kind, value)
        free += [kind] if is_free else []
    return labels, free


_FROM_FOLDER = "Default: the model folder's generation_config.json"
_FREE_HELP = "A list element's id or label, or any one-line text of at most 80 characters."


@click.command("generate")
@click.option("--character", help=_FREE_HELP)
@click.option("--trait", help=_FREE_HELP)
@click.option("--setting", help=_FREE_HELP)
@click.option("--conflict", help=_FREE_HELP)
@click.option("--resolution", help=_FREE_HELP)
@click.option("--moral", help=_FREE_HELP)
@click.option("--prompt", "beginning", help="A story beginning to continue (for a model that is not a "
              "fable model: the whole prompt).")  # fmt: skip
@click.option("--chat", is_flag=True, help="A model that is not a fable model: wrap --prompt in its chat "
              "template (tokenizer_config.json) as one user message.")  # fmt: skip
@model_options
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Completions of the same prompt (>= 1).")  # fmt: skip
@click.option("--temperature", type=float, help=f"{_FROM_FOLDER} (else 0.8; 0: greedy).")
@click.option("--top-p", type=float, help=f"{_FROM_FOLDER} (else 0.95).")
@click.option("--top-k", type=int, help=f"{_FROM_FOLDER} (else 0: no limit).")
@click.option("--repetition-penalty", type=float, help=f"{_FROM_FOLDER} (else 1.0: none).")
@click.option("--seed", type=SEED, help="Same seed, same text (on the same backend).")
@click.option("--max-new-tokens", type=int, help=f"{_FROM_FOLDER} (else 400).")
@click.option("--stop", multiple=True, help="Stop when this text appears (repeatable; not empty).")
@click.option("--threads", type=int, callback=threads_option, help=THREADS_HELP)
@click.option("--stream/--no-stream", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print prompt, elements and completions as JSON.")
@click.option("--stats", is_flag=True, help="Print load time, time to first token and tokens/s.")
@click.option("--guide", is_flag=True, help="Force the requested moral as the last line and keep the "
              "character's name (token-level constraints; see runtime/guide.py).")  # fmt: skip
@click.option("--draft", "draft_dir", help="Speculative decoding: a smaller model folder (or embedded name) "
              "with the same tokenizer drafts tokens the model checks; same distribution.")  # fmt: skip
def generate_cmd(
    beginning,
    model_dir,
    fmt,
    quant,
    graph,
    count,
    temperature,
    top_p,
    top_k,
    repetition_penalty,
    seed,
    max_new_tokens,
    stop,
    threads,
    stream,
    as_json,
    stats,
    guide,
    draft_dir,
    chat,
    **given,
) -> None:
    """Write fables with an exported model, offline (ONNX Runtime or llama.cpp; no torch). Any other
    exported model (SmolLM2, Qwen, Gemma) continues --prompt as is, or answers it with --chat."""
    import json

    from fabulist import fable_format as ff
    from fabulist.runtime.embedded import resolve
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.plain import is_fable_folder
    from fabulist.runtime.sampling import PRESETS, generation_defaults

    given_sampling = {k: v for k, v in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                      ("repetition_penalty", repetition_penalty), ("max_new_tokens", max_new_tokens))
                      if v is not None}  # fmt: skip
    sampling(**{**PRESETS["fable"], **given_sampling}, seed=seed, stop=tuple(stop))  # bad values: refused now
    try:  # bad element text is refused before any model folder is looked at or loaded
        for kind, text in given.items():
            if text is not None:
                ff.check_element(kind, text)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    model_dir = resolve(model_dir)
    plain = not is_fable_folder(model_dir)
    if plain:
        _check_plain_options(given, beginning, guide, draft_dir)
        labels, free = {}, []
    elif chat:
        raise click.UsageError("--chat is for models with a chat template; a fable model takes --character, "
                               "--moral and the other elements")  # fmt: skip
    else:
        try:  # user text never becomes format structure (a header line, a special token)
            labels, free = _elements_for(given, random_fill=beginning is None, seed=seed)
            prompt = ff.prompt(labels, beginning)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    # what the user gave, else what the folder's generation_config.json asks for, else the fable preset
    params = sampling(**{**generation_defaults(model_dir), **given_sampling}, seed=seed, stop=tuple(stop))
    gen = load_generator(model_dir, fmt, quant, threads, graph)
    if plain:
        prompt = _plain_prompt(gen, beginning, chat)
    shown = "" if chat else beginning or ""  # what the output starts with before the completion
    gen.preflight(prompt, params, count)  # a batch that cannot fit is one line, before any output
    guide = _guide_for(gen, prompt, params) if guide else None
    if draft_dir and guide:
        raise click.UsageError("--draft and --guide do not combine yet; use one of them")
    stream = stream and not draft_dir  # drafted text is printed when complete
    if free and ff.trained_elements(model_dir) == ff.LISTS:
        click.echo(f"note: {Path(model_dir).name} was trained on list values only; the free-text "
                   f"{', '.join(free)} may be ignored (models trained on imported fables take any text)",
                   err=True)  # fmt: skip
    if not as_json:
        for kind, label in labels.items():
            click.echo(f"{kind.capitalize()}: {label}", err=True)
    if draft_dir:
        from fabulist.runtime.speculative import generate_drafted

        completions = generate_drafted(gen, model_dir, resolve(draft_dir), fmt, quant, prompt, params, count,
                                       threads)  # fmt: skip
    elif stream and count == 1 and not as_json:
        click.echo(shown, nl=False)
        steps = gen.stream(prompt, params, guide=guide)
        try:
            while True:
                click.echo(next(steps), nl=False)
        except StopIteration as done:
            completions = [done.value]
        click.echo()
    else:
        completions = gen.generate(prompt, params, count, guide=guide)
    if as_json:
        out = {"prompt": prompt, "elements": labels, "beginning": beginning,
               "completions": [{"text": shown + c.text, "finish_reason": c.finish_reason,
                                "new_tokens": len(c.tokens), "clipped_to": c.clipped_to, "stats": c.stats}
                               for c in completions]}  # fmt: skip
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
    elif not (stream and count == 1):
        for i, c in enumerate(completions, 1):
            click.echo(f"--- {i}/{len(completions)} ---\n{shown}{c.text}")
    for c in completions:
        if c.clipped_to is not None and not as_json:
            click.echo(f"note: max new tokens clipped to {c.clipped_to} by the model's context", err=True)
        if stats and not as_json:
            s = c.stats
            timing = f"{gen.artifact}: load {s['load_s']:.3f} s, first token {s['ttft_s'] * 1000:.0f} ms"
            click.echo(f"{timing}, {s['new_tokens']} tokens at {s['tokens_per_s']:,.0f} tok/s", err=True)


def _check_plain_options(given: dict, beginning: str | None, guide: bool, draft_dir: str | None) -> None:
    """A model that is not a fable model takes a plain --prompt and none of the fable options."""
    fable = [f"--{k}" for k, v in given.items() if v is not None] + ["--guide"] * guide
    fable += ["--draft"] * bool(draft_dir)
    if fable:
        raise click.UsageError(f"{fable[0]} needs a fable model; this one is not: give --prompt TEXT only")
    if beginning is None:
        raise click.UsageError("this model is not a fable model: give --prompt TEXT (and --chat to use its "
                               "chat template)")  # fmt: skip


def _plain_prompt(gen, beginning: str, chat: bool) -> str:
    """The text a plain model is given: the prompt as is, or rendered by its chat template."""
    import dataclasses

    if not chat:
        return beginning
    gen.plain = dataclasses.replace(gen.plain, chat=True)
    return gen.plain.render_chat(beginning)


@click.command("serve")
@model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default is this machine only (0.0.0.0: all).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: a free one.")
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Completions decoded together (and the most one request may ask for with n).")  # fmt: skip
@click.option("--max-requests", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests queued or decoding; more are refused with HTTP 429.")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=1 << 20, show_default=True,
              help="Larger request bodies are refused with HTTP 413.")  # fmt: skip
@click.option("--api-key-env", metavar="VAR",
              help="Require `Authorization: Bearer KEY`, KEY from this environment variable.")  # fmt: skip
@click.option("--threads", type=int, callback=threads_option, help=THREADS_HELP)
def serve_cmd(model_dir, fmt, quant, graph, host, port, max_batch, max_requests, max_body_bytes, api_key_env,
              threads) -> None:  # fmt: skip
    """Serve a model behind an OpenAI-compatible API (/v1/completions, /v1/chat/completions, streaming),
    batching concurrent requests; see `fabulist.runtime.serve` for the request schema and limits."""
    from fabulist.runtime.embedded import resolve
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.serve import ServeConfig, api_key_from, serve

    key = api_key_from(api_key_env)
    folder = resolve(model_dir)
    gen = load_generator(folder, fmt, quant, threads, graph)
    config = ServeConfig(Path(folder).name, max_batch, max_requests, max_body_bytes, key)
    serve(gen, config, host, port)


def _guide_for(gen, prompt: str, params):
    """The guide for a prompt (its header's moral and character), checked against the token budget now,
    before anything is printed."""
    from fabulist.runtime.guide import Guide

    guide = Guide.from_prompt(gen.tok, prompt)
    guide.check_budget(gen.budget(gen.encode(prompt), params)[0])
    return guide
