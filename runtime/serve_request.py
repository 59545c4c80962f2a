"""An OpenAI-style request body -> a fable prompt and sampling parameters, checked (the schema is documented
in `fabulist.runtime.serve`). Every refusal is an ApiError that the server returns in OpenAI's error shape.

    curl http://127.0.0.1:8080/v1/chat/completions -d '{"messages": [{"role": "user", "content": "..."}]}'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fabulist import elements as el
from fabulist import fable_format as ff
from fabulist.runtime.sampling import SamplingParams

# `fabulist generate`'s defaults, so a request that gives only a seed gets that command's text.
DEFAULT_TEMPERATURE, DEFAULT_TOP_P = 0.8, 0.95
MAX_STOPS = 4
ELEMENT_LINE = re.compile(rf"^[ \t]*({'|'.join(el.KINDS)})[ \t]*:[ \t]*(.*?)[ \t]*$", re.I | re.M)
# Parameters that would change what comes back in a way this server cannot honour: refused, never ignored.
UNSUPPORTED = {
    "logprobs": "log-probabilities are not returned",
    "top_logprobs": "log-probabilities are not returned",
    "echo": "the prompt is not echoed",
    "suffix": "insertion (suffix) is not supported",
    "tools": "a fable model does not call tools",
    "functions": "a fable model does not call functions",
    "tool_choice": "a fable model does not call tools",
    "function_call": "a fable model does not call functions",
    "logit_bias": "logit_bias is not supported",
    "presence_penalty": "use repetition_penalty (CTRL's rule) instead",
    "frequency_penalty": "use repetition_penalty (CTRL's rule) instead",
    "best_of": "best_of is not supported (use n)",
}


class ApiError(Exception):
    """A request the server refuses: HTTP status, message, OpenAI error type, param and code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class FableRequest:
    """What a completions or chat request asks for, once checked."""

    prompt: str  # in the fable format, ready to encode
    labels: dict[str, str]  # the header's elements
    params: SamplingParams  # max_new_tokens as asked (None-free), before clipping to the context
    max_tokens: int | None  # None: up to the context
    n: int
    stream: bool
    include_usage: bool


def parse(body: dict, chat: bool, max_batch: int) -> FableRequest:
    """Check a request body (a JSON object) and build its prompt (see the schema in `serve`)."""
    for name, why in UNSUPPORTED.items():
        value = body.get(name)
        harmless = (None, False, 0, {}, [], "none", *((1,) if name == "best_of" else ()))
        if value not in harmless:
            raise ApiError(400, f"{name} is not supported: {why}", name, "unsupported_parameter")
    _check_response_format(body.get("response_format"))
    labels, beginning, raw = _fable_prompt(body, chat)
    try:
        prompt = raw if raw is not None else ff.prompt(labels, beginning)
    except ValueError as exc:  # a control token in the user's text
        raise ApiError(400, str(exc), "messages" if chat else "prompt") from None
    n = _integer(body, "n", 1, 1, max_batch, f"at most --max-batch ({max_batch}) completions per request")
    max_tokens = _integer(body, "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens",
                          None, 1, None, "at least 1")  # fmt: skip
    stream = _flag(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", "stream_options")
    sampling = {
        "temperature": _number(body, "temperature", DEFAULT_TEMPERATURE),
        "top_p": _number(body, "top_p", DEFAULT_TOP_P),
        "top_k": _integer(body, "top_k", 0, 0, None, "at least 0"),
        "repetition_penalty": _number(body, "repetition_penalty", 1.0),
        "seed": _integer(body, "seed", None, 0, 2**32 - 1, "between 0 and 4294967295"),
        "stop": _stops(body.get("stop")),
        "max_new_tokens": max_tokens or 1,
    }
    try:
        params = SamplingParams(**sampling)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return FableRequest(prompt, labels, params, max_tokens, n, stream, bool(options.get("include_usage")))


def _check_response_format(fmt) -> None:
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return
    raise ApiError(
        400,
        "response_format other than text is not supported: a fable model writes fables and this server "
        "does not constrain its output to JSON",
        "response_format",
        "unsupported_parameter",
    )


def _fable_prompt(body: dict, chat: bool) -> tuple[dict[str, str], str | None, str | None]:
    """(header labels, story beginning, a whole fable-format prompt given as is) of a request."""
    fable = body.get("fable")
    if fable is not None:
        if not isinstance(fable, dict):
            raise ApiError(400, "fable must be an object of element fields", "fable")
        unknown = set(fable) - {*el.KINDS, "beginning"}
        if unknown:
            raise ApiError(400, f"unknown fable field(s) {sorted(unknown)}; known: "
                           f"{', '.join(el.KINDS)}, beginning", "fable")  # fmt: skip
        beginning = fable.get("beginning")
        if beginning is not None and not isinstance(beginning, str):
            raise ApiError(400, "fable.beginning must be a string", "fable.beginning")
        return element_labels({k: v for k, v in fable.items() if k != "beginning"}, "fable."), beginning, None
    if chat:
        text = _last_user_message(body.get("messages"))
        found = ELEMENT_LINE.findall(text)
        if not found:
            return {}, text.strip() or None, None
        given: dict[str, str] = {}
        for kind, value in found:  # the first line of a kind counts (a quoted story may repeat "Moral:")
            given.setdefault(kind.lower(), value)
        return element_labels(given, "messages: "), None, None
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string (or a list of one string)", "prompt")
    if prompt.startswith(ff.BOS):
        if prompt.count(ff.STORY) != 1 or ff.EOS in prompt or prompt.count(ff.BOS) != 1:
            raise ApiError(400, f"a prompt that starts with {ff.BOS} must be one fable-format prompt: "
                           f"header, one {ff.STORY}, then any beginning", "prompt")  # fmt: skip
        return {}, None, prompt
    return {}, prompt or None, None


def element_labels(given: Mapping[str, object], where: str) -> dict[str, str]:
    """Header labels for the given elements, the way `fabulist generate` reads its options: a shipped list
    element by id or label (case-insensitive) gives its label; other text is a free-text element (one line,
    at most 80 characters, first letter capitalised)."""
    labels = {}
    for kind in el.KINDS:
        value = given.get(kind)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"{where}{kind} must be a string", f"fable.{kind}")
        try:
            labels[kind], _ = ff.element_label(kind, value)
        except ValueError as exc:
            raise ApiError(400, f"{where}{exc}", f"fable.{kind}") from None
    return labels


def _last_user_message(messages) -> str:
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "messages must be a non-empty list of message objects", "messages")
    last = messages[-1]
    if last.get("role") != "user":
        raise ApiError(400, "the last message must be the user's (the fable request)", "messages")
    content = last.get("content")
    if isinstance(content, list):  # content parts: the text ones, joined
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise ApiError(400, "only text content parts are supported", "messages")
        content = "\n".join(str(p.get("text", "")) for p in content)
    if not isinstance(content, str):
        raise ApiError(400, "the user message's content must be text", "messages")
    return content


def _number(body: dict, name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"{name} must be a finite number", name)
    return float(value)


def _integer(body: dict, name: str, default, low: int, high: int | None, rule: str):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        raise ApiError(400, f"{name} must be a whole number {rule}, not {value!r}", name)
    return value


def _flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool) and value is not None:
        raise ApiError(400, f"{name} must be true or false", name)
    return bool(value)


def _stops(stop) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOPS:
        raise ApiError(
            400, f"stop must be a non-empty string or a list of at most {MAX_STOPS} of them", "stop"
        )
    return stops
