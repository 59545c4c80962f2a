"""An LLM judge over any OpenAI-compatible endpoint: four 1-10 scores, an age group and a rationale.

    fabulist eval judge runs/eval/int4 --judge-model gpt-4.1 [--judge-base-url http://127.0.0.1:8080/v1]

The rubric and prompt are versioned data (`data/judge.json`). Requests run at temperature 0 with a seed
and ask for structured output: OpenAI's `json_schema` first; if the server refuses it (HTTP 400/422, or
llama-cpp-python's HTTP 500 naming `response_format`), `json_object` with a `schema` (llama.cpp's server,
which turns the schema into a grammar); if that is refused too, plain text. Every reply goes
through `parse`, which accepts one schema-valid JSON object (in code fences or prose too) and nothing
else: two different candidate grades, or none, is a parse failure, retried, then counted as a judge
failure and never scored. The story sits between markers with marker-like text inside it defused, so a
completion that addresses the judge cannot change how the reply is parsed.

Transport is the data stage's `APITeacher` and its public request API (`Retryable`, `Rejected`,
`request_errors`, `token_counts`, `request`, `retrying`): the key from OPENAI_API_KEY only, bounded
concurrency, --timeout as a deadline for each whole request, retries with backoff and jitter on
429/5xx/timeouts/malformed replies, honouring Retry-After up to 60 s; a server that stops accepting
connections stops the run with one line (the cache keeps every grade received, a rerun asks for the rest).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
from functools import cache
from importlib import resources

from fabulist.data.teachers import api
from fabulist.data.teachers.base import Budget, Outcome, TeacherError

DEFAULT_MODEL = "gpt-4.1"
DIMENSIONS = ("grammar", "creativity", "consistency", "plot")
AGE_GROUPS = {"A": "3 or under", "B": "4-5", "C": "6-7", "D": "8-9", "E": "10-12", "F": "13-16"}
MODES = ("json_schema", "json_object", "text")


@cache
def spec() -> dict:
    """The judge prompt: {'version', 'system', 'user', 'schema'}."""
    return json.loads((resources.files("fabulist.eval") / "data" / "judge.json").read_text(encoding="utf-8"))


def defuse(story: str) -> str:
    """The story with anything that could pass for a marker broken up, so it cannot end its own block."""
    return re.sub(r"<{3,}|>{3,}", lambda m: " ".join(m.group(0)), story)


def messages(task: str, story: str) -> list[dict]:
    s = spec()
    user = s["user"].replace("{task}", task).replace("{story}", defuse(story))
    return [{"role": "system", "content": s["system"]}, {"role": "user", "content": user}]


def validate(obj) -> dict | None:
    """A normalised grade, or None when obj is not one (scores must be whole numbers 1-10)."""
    if not isinstance(obj, dict) or not all(k in obj for k in (*DIMENSIONS, "age_group")):
        return None
    grade = {}
    for dim in DIMENSIONS:
        value = obj[dim]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None  # NaN and Infinity are valid JSON to Python, and no score
        if value != int(value):
            return None
        if not 1 <= value <= 10:
            return None
        grade[dim] = int(value)
    age = str(obj["age_group"]).strip().upper()[:1]
    if age not in AGE_GROUPS:
        return None
    grade["age_group"] = age
    grade["rationale"] = str(obj.get("rationale", ""))[:1000]
    return grade


MAX_REPLY = 32_000  # characters; a grade is well under 2,000 (400 tokens): a longer reply is not parsed


def _objects(text: str):
    """Every innermost balanced {...} substring (no object inside it) that json.loads accepts.

    A grade is a flat object (the schema allows no other keys), so only innermost objects can be one. One
    pass with a stack of open braces, string-aware inside braces (quotes in prose outside any brace are not
    strings); innermost objects do not overlap, so all the json.loads together read each character at most
    once: linear in the length of the reply."""
    stack: list[list] = []  # [start, has a child object]
    in_str = escape = False
    for i, ch in enumerate(text):
        if in_str:
            escape, in_str = (False, True) if escape else (ch == "\\", ch != '"')
        elif ch == '"' and stack:
            in_str = True
        elif ch == "{":
            stack.append([i, False])
        elif ch == "}" and stack:
            start, has_child = stack.pop()
            if stack:
                stack[-1][1] = True
            if not has_child:
                with contextlib.suppress(ValueError, RecursionError):  # deep arrays: not a grade
                    yield json.loads(text[start : i + 1])


def parse(text: str) -> dict | None:
    """The one grade in a judge reply, or None (no grade, several that disagree, or over MAX_REPLY)."""
    if len(text) > MAX_REPLY:
        return None
    try:
        whole = validate(json.loads(text))
    except (ValueError, RecursionError):  # deep nesting exceeds json's recursion limit: not a grade
        whole = None
    if whole is not None:
        return whole
    found = {json.dumps(g, sort_keys=True) for g in map(validate, _objects(text)) if g is not None}
    return json.loads(found.pop()) if len(found) == 1 else None


def response_format(mode: str) -> dict | None:
    schema = spec()["schema"]
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "fable_grade", "strict": True, "schema": schema},
        }
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


class Judge(api.APITeacher):
    """Grades items {'task', 'story', ...} with `outcomes(items, budget)` (the teacher's thread pool)."""

    name = "judge"

    def __init__(self, model: str = DEFAULT_MODEL, base_url: str | None = None, *, concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 4, backoff: float = 1.0, seed: int = 0,
                 max_tokens: int = 400):  # fmt: skip
        if not os.environ.get("OPENAI_API_KEY") and not (base_url or os.environ.get("OPENAI_BASE_URL")):
            raise TeacherError(
                "OPENAI_API_KEY is not set (needed for the OpenAI judge; or pass --judge-base-url)"
            )
        super().__init__(model, base_url, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                         backoff=backoff, temperature=0.0, max_tokens=max_tokens, seed=seed)  # fmt: skip
        self.mode = 0  # index into MODES: the strongest structured output the server has not refused
        self._mode_lock = threading.Lock()

    @classmethod
    def from_options(cls, use_judge: bool, base_url: str | None, model: str | None, *, required: bool = False,
                     **settings) -> Judge | None:  # fmt: skip
        """The judge the CLI's judge options ask for (`--judge`, `--judge-base-url`, `--judge-model`, and
        `settings`: concurrency, timeout, max_retries, backoff, seed), or None when none is asked for and
        none is `required`. The one place a command builds its judge."""
        if not (use_judge or base_url or model or required):
            return None
        return cls(model or DEFAULT_MODEL, base_url, **settings)

    @property
    def params(self) -> dict:
        """What goes into the cache key besides model, URL, prompt version, task and story."""
        return {k: v for k, v in self.sampling.items() if v is not None}

    def _create(self, msgs: list[dict]):
        """One request; a refused response_format steps down to the next mode and asks again.

        Refused: HTTP 400 or 422, or (llama-cpp-python's server, which reports its request validation
        errors as HTTP 500) a 500 whose message names `response_format`."""
        oa = self._openai
        while True:
            mode = self.mode
            fmt = response_format(MODES[mode])
            extra = {"response_format": fmt} if fmt else {}
            try:
                return self.request(model=self.model, messages=msgs, **self.params, **extra)
            except oa.APIStatusError as exc:
                refused = exc.status_code in (400, 422) or (
                    exc.status_code == 500 and fmt is not None and "response_format" in str(exc.message)
                )
                if not refused or mode == len(MODES) - 1:
                    raise
                with self._mode_lock:
                    self.mode = max(self.mode, mode + 1)

    def _call(self, item: dict) -> tuple[dict, str, int, int]:
        """One grade -> (grade, model, input tokens, output tokens); raises api.Retryable or api.Rejected."""
        with api.request_errors(self._openai):
            reply = self._create(messages(item["task"], item["story"]))
        content, _, model = api.reply_parts(reply)
        grade = parse(content)
        if grade is None:
            raise api.Retryable("unparseable grade")
        n_in, n_out = api.token_counts(getattr(reply, "usage", None))
        return grade, model or self.model, n_in, n_out

    def write(self, item: dict, budget: Budget) -> Outcome:
        """Grade one item, retrying transient failures and unparseable replies; never raises for those."""
        result, error, attempts = self.retrying(lambda: self._call(item))
        if result is None:
            return Outcome(item, error=error, attempts=attempts)
        grade, model, n_in, n_out = result
        with self._lock:
            budget.add(n_in, n_out)
        record = {"grade": grade, "judge": model, "input_tokens": n_in, "output_tokens": n_out}
        return Outcome(item, record=record, attempts=attempts)
