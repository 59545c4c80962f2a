"""A teacher LLM behind any OpenAI-compatible chat API: OpenAI, vLLM, Ollama, llama.cpp's server.

    fabulist data generate --prompts prompts.jsonl -o fables.jsonl --base-url http://127.0.0.1:8080/v1 \
        --model NAME --concurrency 8

The key comes from OPENAI_API_KEY only and is handed to the client, never to a record, log or error
message (`records.dumps` scrubs it from whatever a server echoes back). The client's own retries are
off: this module retries 429, 5xx, timeouts, connection errors and unparseable replies with exponential
backoff and full jitter, waiting at least what `Retry-After` (or `retry-after-ms`) asks, but never longer
than `max_backoff` (60 s): a server asking for a day does not stall the run. `--timeout` is a deadline for
the whole request, from sending it to the last byte of the reply (the client's own timeout only bounds
each read, which a server sending a byte a second never trips). A reply whose `usage` counts are not
whole numbers >= 0 is malformed and rejected: a negative count would lower the cost and defeat
`--max-cost`. A reply cut by
`finish_reason=length`, or with empty content, is an error, not a record: it goes to the errors file and
is retried on the next run. When the server stops accepting connections (`--concurrency`, at least 3,
prompts in a row give up on connection errors) the run stops with one line instead of filing every
remaining prompt as an error; what was written is kept.

The request machinery is shared with the LLM judge (`fabulist.eval.judge`): `Retryable` and `Rejected`,
`request_errors` (an OpenAI client exception -> one of those), `token_counts` (a reply's usage, checked),
`APITeacher.request` (one request under the deadline) and `APITeacher.retrying` (the retry loop).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from urllib.parse import urlsplit, urlunsplit

from fabulist.data.prompts import SYSTEM_PROMPT
from fabulist.data.teachers.base import Budget, Outcome, TeacherError
from fabulist.records import fable_record, scrub

CONNECTION_ERROR = "connection error"  # how the error of a request that found no server begins


class Retryable(Exception):
    """A transient failure (429, 5xx, timeout, lost connection, malformed reply): retried with backoff;
    `wait` is what the server asked for (Retry-After)."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


class Rejected(Exception):
    """A reply that arrived but cannot be used (cut by length, empty, a 4xx): not retried in this run."""


class Unreachable(TeacherError):
    """The server stopped accepting connections: the run stops (a rerun resumes)."""


@contextlib.contextmanager
def request_errors(openai_module):
    """Turn what the OpenAI client raises for one request into Retryable or Rejected."""
    oa = openai_module
    try:
        yield
    except (oa.RateLimitError, oa.InternalServerError) as exc:
        raise Retryable(f"HTTP {exc.status_code}", retry_after(exc.response.headers)) from None
    except oa.APITimeoutError:
        raise Retryable("timeout") from None
    except oa.APIConnectionError:
        raise Retryable(CONNECTION_ERROR) from None
    except oa.APIStatusError as exc:
        if exc.status_code in (408, 409) or exc.status_code >= 500:
            raise Retryable(f"HTTP {exc.status_code}", retry_after(exc.response.headers)) from None
        # scrubbed before the cut, so a server that echoes the key cannot leave a prefix of it
        raise Rejected(scrub(f"HTTP {exc.status_code}: {exc.message}")[:300]) from None
    except (json.JSONDecodeError, oa.APIResponseValidationError):
        raise Retryable("malformed JSON reply") from None


def token_counts(usage) -> tuple[int, int]:
    """(input, output) tokens of a reply's `usage` (0, 0 without one); Rejected unless whole numbers >= 0."""
    if usage is None:
        return 0, 0
    counts = (_field(usage, "prompt_tokens") or 0, _field(usage, "completion_tokens") or 0)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise Rejected(f"malformed usage in the reply: token counts {counts} (need whole numbers >= 0)")
    return counts


def within(seconds: float, call):
    """call() in a daemon thread: its result (or exception), or Retryable('timeout') once `seconds` have
    passed. The abandoned call ends at its next read timeout or when the server stops; as a daemon thread it
    never holds the process open."""
    box: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the caller, who maps it
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name="request").start()
    if not done.wait(seconds):
        raise Retryable("timeout")
    if "error" in box:
        raise box["error"]
    return box["result"]


def redact_url(url: str | None) -> str | None:
    """Drop user:password@ from a URL before it is shown or stored."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def retry_after(headers) -> float | None:
    """Seconds the server asks us to wait, from `retry-after-ms` or `Retry-After` (seconds or a date)."""
    if headers is None:
        return None
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date; anything else (garbage, an impossible date) is no request at all
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _field(obj, name: str):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def reply_parts(reply) -> tuple[str, str | None, str | None]:
    """(content, finish_reason, model) of a chat-completions reply, checked: a reply of another shape (no
    list of choices, a choice without a message, content that is not text) is Retryable as malformed, so
    one bad reply costs one request and never the run."""
    choices = _field(reply, "choices")
    if not isinstance(choices, list) or not choices:
        raise Retryable("malformed reply: no list of choices")
    choice = choices[0]
    message = _field(choice, "message")
    content = _field(message, "content") if message is not None else None
    finish, model = _field(choice, "finish_reason"), _field(reply, "model")
    if not all(isinstance(value, str | None) for value in (content, finish, model)):
        raise Retryable("malformed reply: content, finish_reason or model is not text")
    return content or "", finish, model


class APITeacher:
    """Writes fables with a chat-completions endpoint; thread-pooled, bounded, retrying."""

    name = "openai"
    flush_every = 1

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        temperature: float = 1.0,
        top_p: float | None = None,
        max_tokens: int = 800,
        seed: int = 0,
    ):
        import openai

        self._openai = openai
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if base_url is None:
                raise TeacherError(
                    "OPENAI_API_KEY is not set (needed for the OpenAI API; or pass --base-url)"
                )
            api_key = "unused"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        if concurrency < 1 or max_retries < 0 or not (timeout > 0 and math.isfinite(timeout)):
            raise TeacherError("need --concurrency >= 1, --max-retries >= 0 and a finite --timeout > 0")
        try:
            self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
        except Exception as exc:  # httpx's InvalidURL and alike; the URL itself may hold a password
            raise TeacherError(f"bad base URL: {str(exc)[:200]}") from None
        self.model, self.base_url = model, redact_url(base_url) or "https://api.openai.com/v1"
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed}
        self.seed = seed
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set when a run gives up on an unreachable server

    def _call(self, prompt: dict) -> tuple[str, str, int, int]:
        """One request -> (text, model, input tokens, output tokens); raises Retryable or Rejected."""
        args = {k: v for k, v in self.sampling.items() if v is not None}
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt["prompt"]},
        ]
        with request_errors(self._openai):
            reply = self.request(model=self.model, messages=messages, **args)
        content, finish, model = reply_parts(reply)
        text = content.strip()
        if finish == "length":
            raise Rejected("finish_reason=length: the fable was cut off (raise --max-tokens)")
        if not text:
            raise Rejected("empty content")
        n_in, n_out = token_counts(_field(reply, "usage"))
        return text, model or self.model, n_in, n_out

    def request(self, **kwargs):
        """One chat-completions request under the --timeout deadline (whole request, not each read)."""
        return within(self.timeout, lambda: self.client.chat.completions.create(**kwargs))

    def _delay(self, attempt: int, asked: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than what the server asked for (Retry-After), and
        never longer than max_backoff, whatever it asked."""
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return max(min(asked or 0.0, self.max_backoff), random.uniform(0.5, 1.0) * base)

    def retrying(self, call):
        """call() until it returns, retrying Retryable failures with backoff: (result, None, attempts) or,
        after the last retry or a Rejected reply, (None, error, attempts). The error of a prompt that
        gave up because the server could not be reached starts with CONNECTION_ERROR. Once the run
        stops (the server is gone) a waiting retry gives up at once."""
        for attempt in range(self.max_retries + 1):
            try:
                return call(), None, attempt + 1
            except Retryable as exc:
                if attempt == self.max_retries or self._stop.wait(self._delay(attempt, exc.wait)):
                    return None, f"{exc} (gave up after {attempt + 1} attempts)", attempt + 1
            except Rejected as exc:
                return None, str(exc), attempt + 1
        raise AssertionError("unreachable")

    def write(self, prompt: dict, budget: Budget) -> Outcome:
        """Write one fable, retrying transient failures; never raises for a request problem."""
        start = time.perf_counter()
        result, error, attempts = self.retrying(lambda: self._call(prompt))
        if result is None:
            return Outcome(prompt, error=error, attempts=attempts)
        text, model, n_in, n_out = result
        with self._lock:
            budget.add(n_in, n_out)
        record = fable_record(
            prompt, text, teacher=self.name, llm_name=model, input_tokens=n_in, output_tokens=n_out,
            seconds=time.perf_counter() - start, sampling={**self.sampling, "base_url": self.base_url},
            seed=self.seed,
        )  # fmt: skip
        return Outcome(prompt, record=record, attempts=attempts)

    def outcomes(self, prompts: Iterable[dict], budget: Budget) -> Iterator[Outcome]:
        """Outcomes in completion order, at most `concurrency` requests in flight; stops submitting
        once the budget is exhausted (requests already in flight still finish and are kept). Raises
        Unreachable once `concurrency` (at least 3) prompts in a row gave up on connection errors."""
        pending: set[Future] = set()
        todo = iter(prompts)
        lost = 0  # prompts in a row that gave up because the server could not be reached
        self._stop.clear()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="teacher") as pool:
            try:
                while True:
                    while len(pending) < self.concurrency and not budget.exhausted:
                        prompt = next(todo, None)
                        if prompt is None:
                            break
                        pending.add(pool.submit(self.write, prompt, budget))
                    if not pending:
                        return
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcome = future.result()
                        yield outcome
                        gone = outcome.error is not None and outcome.error.startswith(CONNECTION_ERROR)
                        lost = lost + 1 if gone else 0
                        if lost >= max(3, self.concurrency):
                            self._stop.set()
                            raise Unreachable(
                                f"{self.base_url} stopped accepting connections ({lost} requests in a row "
                                "gave up); what was written is kept: rerun the same command to resume"
                            )
            finally:
                for future in pending:
                    future.cancel()
