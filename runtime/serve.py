"""`fabulist serve`: a Fabulist model behind an OpenAI-compatible HTTP API, for apps that speak the API
llama.cpp's server, Ollama, vLLM and MLX speak.

    fabulist serve                                   # the embedded fable-5m at http://127.0.0.1:8080/v1
    fabulist serve --model runs/f5m --format gguf --port 9000 --api-key-env FABULIST_KEY

Routes: GET /health (no key needed), GET /v1/models, POST /v1/completions, POST /v1/chat/completions.
Both completion routes stream (`"stream": true`: server-sent events `data: {chunk}` ... `data: [DONE]`,
with `stream_options.include_usage` a last chunk with the usage) or answer in one JSON object.

What the model is asked (a fable model follows no instructions; it continues the fable format of
`fabulist.fable_format`: a header of elements, `<|story|>`, the story):
- `"fable": {"character", "trait", "setting", "conflict", "resolution", "moral", "beginning"}`, an extension
  object on either route, all fields optional strings: the header shows the elements given, each read as
  `fabulist generate --character ...` reads it (a shipped list element by id or label, else free text of
  one line and at most 80 characters); `beginning` is a story beginning to continue. Kinds not given are
  left out of the header (a partial prompt, as in training; `fabulist generate` draws them at random
  instead, so give all six to get its prompt). When `fable` is present, `messages` and `prompt` are not
  read for the prompt.
- chat, no `fable`: only the LAST message is read, and it must be the user's. Its lines of the form
  `Character: Fox` (any of the six kinds, case-insensitive, anywhere in the message; the first line of a
  kind counts) become the header and the rest of the message is dropped (so the prompts that `fabulist
  data generate` sends a teacher work); a message with no such line is a story beginning. System and
  earlier messages are ignored.
- completions, no `fable`: `prompt` (a string or a list of one string) is a story beginning, or, when it
  starts with `<|prompt|>`, a whole fable-format prompt used as is (header, one `<|story|>`, a beginning).
- The reply (`message.content`, `text`) is the model's continuation, without the beginning. A non-stream
  reply carries an extension object `"fable": {"prompt", "elements", "clipped_to"}`.

Parameters: n (1..--max-batch), temperature (default 0.8), top_p (default 0.95), max_tokens (or
max_completion_tokens), stop (a string or up to 4), seed (0..2**32-1), and the extensions top_k and
repetition_penalty. The defaults are `fabulist generate`'s, so a request with the same prompt and seed gets
the same text as `fabulist generate --seed`. Refused with a 400 rather than ignored: logprobs, echo,
suffix, tools, logit_bias, presence/frequency_penalty, best_of > 1, and a response_format other than text
(the judge then falls back to plain text, as it does with any server that cannot constrain its output).
Other fields (user, metadata, model: one model is served, and replies name it) are ignored.

Limits, each refused in OpenAI's error shape `{"error": {"message", "type", "param", "code"}}`: a body
over --max-body-bytes (413), malformed JSON or a bad field (400), a prompt that fills the context (400,
context_length_exceeded), max_tokens above the model's whole context (400; up to it, max_tokens is clipped
to the room the prompt leaves, as `fabulist generate` clips, and the reply's `fable.clipped_to` says so),
more than --max-requests requests queued or running (429 with Retry-After), a missing or wrong bearer key
when --api-key-env names one (401; the key is read from the environment only and never logged). One log
line per refused request and per client that goes away mid-request; the rows it held stop at the next step.

Concurrency: requests go to one decoder thread (`fabulist.runtime.batcher`), which decodes queued requests
together as one batch, whatever their prompts and sampling rules; see there for what joins when.

Stack: FastAPI on Starlette, served by uvicorn, with sse-starlette for server-sent events: the ASGI stack
llama-cpp-python's own server uses, well kept and already pinned in constraints.txt; it handles HTTP/1.1,
keep-alive, chunked bodies, flow control and client disconnects so this module does not.
"""

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fabulist.errors import FabulistError
from fabulist.runtime.batcher import Batcher, Busy, Job
from fabulist.runtime.engine import GenerationError, Generator
from fabulist.runtime.serve_request import ApiError, FableRequest, parse

log = logging.getLogger("fabulist.serve")
FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


@dataclass
class ServeConfig:
    name: str = "fable-5m"  # the model id /v1/models lists and replies name
    max_batch: int = 8  # rows (completions) decoded together
    max_requests: int = 64  # queued or decoding; more get 429
    max_body_bytes: int = 1 << 20
    api_key: str | None = None  # the bearer key, read from the environment by the caller


class _Sink:
    """A job's results handed from the decoder thread to the request's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.queue = loop, asyncio.Queue()

    def _put(self, item) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def piece(self, index, text):
        self._put(("piece", index, text))

    def done(self, index, completion):
        self._put(("done", index, completion))

    def error(self, status, message):
        self._put(("error", status, message))


def _require() -> None:
    """One line naming the extra when the HTTP stack is not installed."""
    try:
        import fastapi  # noqa: F401
        import sse_starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise FabulistError(
            f"fabulist serve needs {exc.name}: pip install 'fabulist[serve]' (FastAPI, uvicorn, SSE)"
        ) from None


def create_app(gen: Generator, config: ServeConfig):
    """The ASGI app over one loaded Generator; its decoder thread starts and stops with the app. (No
    `from __future__ import annotations` in this module: FastAPI reads the handlers' annotations.)"""
    from contextlib import asynccontextmanager

    _require()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    batcher = Batcher(gen, config.max_batch, config.max_requests)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        batcher.close()

    app = FastAPI(title="fabulist serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError):
        client = f"{request.client.host}:{request.client.port}" if request.client else "?"
        log.warning("refused %s %s from %s: %d %s: %s", request.method, request.url.path, client,
                    exc.status, exc.code or exc.kind, exc.message)  # fmt: skip
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def not_here(request: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return await refused(request, ApiError(exc.status_code, str(exc.detail), code=code))

    @app.get("/health")
    async def health():
        with batcher.cond:
            queued, active = len(batcher.queue), batcher.active
        return {"status": "ok", "model": config.name, "artifact": str(gen.artifact), "queued": queued,
                "running": active - queued, "max_batch": config.max_batch, **batcher.counts}  # fmt: skip

    @app.get("/v1/models")
    async def models(request: Request):
        _authorize(request, config.api_key)
        created = int(Path(gen.artifact).stat().st_mtime) if gen.artifact else 0
        model = {"id": config.name, "object": "model", "created": created, "owned_by": "fabulist"}
        return {"object": "list", "data": [model]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _complete(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await _complete(request, chat=True)

    async def _complete(request: Request, chat: bool):
        _authorize(request, config.api_key)
        body = await _read_json(request, config.max_body_bytes)
        req = parse(body, chat, config.max_batch)
        ids, limit = _budget(gen, req)
        params = dataclasses.replace(req.params, max_new_tokens=limit)
        job = Job(ids, params, req.n, req.stream, _Sink(asyncio.get_running_loop()))
        try:
            batcher.submit(job)
        except Busy as exc:
            raise ApiError(429, f"the server is busy: {exc}; retry shortly", code="rate_limit_exceeded",
                           kind="rate_limit_error") from None  # fmt: skip
        reply = _Reply(config.name, chat, req, len(ids), job, request)
        if req.stream:
            from sse_starlette.sse import EventSourceResponse

            return EventSourceResponse(reply.chunks(), sep="\n", ping=15, send_timeout=30)
        return JSONResponse(await reply.whole())

    return app


def _authorize(request, key: str | None) -> None:
    if key is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "missing or incorrect API key (send Authorization: Bearer <key>)",
                       code="invalid_api_key")  # fmt: skip


async def _read_json(request, limit: int) -> dict:
    """The request body as a JSON object, read no further than `limit` bytes."""
    length = request.headers.get("content-length", "")
    too_big = ApiError(413, f"the request body is over the server's limit of {limit:,} bytes",
                       code="request_too_large")  # fmt: skip
    if length.isdigit() and int(length) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    try:
        data = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return data


def _budget(gen: Generator, req: FableRequest) -> tuple[list[int], int]:
    """The prompt's token ids and the new tokens it may have: max_tokens, clipped to the room the prompt
    leaves in the context (all of it when max_tokens is not given)."""
    ids = gen.encode(req.prompt)
    context = gen.backend.context
    room = context - len(ids)
    if room < 1:
        raise ApiError(400, f"the prompt is {len(ids)} tokens but the model's context is {context}; "
                       "shorten it", "messages", "context_length_exceeded")  # fmt: skip
    if req.max_tokens is not None and req.max_tokens > context:
        raise ApiError(400, f"max_tokens {req.max_tokens} is more than the model's whole context of "
                       f"{context} tokens; this prompt leaves room for {room}", "max_tokens",
                       "context_length_exceeded")  # fmt: skip
    limit = min(req.max_tokens or room, room)
    try:
        gen._check_memory(req.n, len(ids) + limit)
    except GenerationError as exc:
        raise ApiError(400, str(exc), "n", "insufficient_memory") from None
    return ids, limit


class _Reply:
    """The OpenAI-shaped answer to one job: whole, or as stream chunks."""

    def __init__(self, model: str, chat: bool, req: FableRequest, prompt_tokens: int, job: Job, request):
        self.model, self.chat, self.req, self.job, self.request = model, chat, req, job, request
        self.prompt_tokens = prompt_tokens
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    async def events(self, watch: bool):
        """The job's events until each completion is done; the job is cancelled if the client goes away
        (watch: poll for a disconnect, for replies that send nothing until the end) or this is cancelled."""
        left = self.job.n
        try:
            while left:
                try:
                    event = await asyncio.wait_for(self.job.sink.queue.get(), timeout=0.5)
                except TimeoutError:
                    if watch and await self.request.is_disconnected():
                        return
                    continue
                if event[0] == "error":
                    left = 0
                    kind = "server_error" if event[1] >= 500 else "invalid_request_error"
                    raise ApiError(event[1], event[2], kind=kind)
                left -= event[0] == "done"
                yield event
        finally:
            if left:
                self.job.cancelled.set()
                client = self.request.client
                log.warning("client %s went away with %d of %d completions unfinished (%s): their rows "
                            "stop at the next step", f"{client.host}:{client.port}" if client else "?",
                            left, self.job.n, self.id)  # fmt: skip

    async def whole(self) -> dict:
        done = {}
        async for kind, index, value in self.events(watch=True):
            if kind == "done":
                done[index] = value
        if len(done) < self.job.n:
            return {}  # nobody is listening
        choices = [self._choice(i, done[i].text, FINISH[done[i].finish_reason]) for i in range(self.job.n)]
        limit = self.job.params.max_new_tokens
        clipped = limit if self.req.max_tokens and self.req.max_tokens > limit else None
        fable = {"prompt": self.req.prompt, "elements": self.req.labels, "clipped_to": clipped}
        return {**self._head(), "choices": choices, "usage": self._usage(done.values()), "fable": fable}

    async def chunks(self):
        if self.chat:
            for i in range(self.job.n):
                yield self._chunk(i, None, {"role": "assistant", "content": ""})
        done = []
        try:
            async for kind, index, value in self.events(watch=False):
                if kind == "piece":
                    yield self._chunk(index, value)
                else:
                    done.append(value)
                    yield self._chunk(index, None, finish=FINISH[value.finish_reason])
        except ApiError as exc:  # after the headers: the error goes in the stream, as OpenAI sends it
            yield json.dumps(exc.body())
            return
        if self.req.include_usage:
            yield json.dumps({**self._head(True), "choices": [], "usage": self._usage(done)})
        yield "[DONE]"

    def _head(self, chunk: bool = False) -> dict:
        kind = self.object + (".chunk" if chunk and self.chat else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _choice(self, index: int, text: str, finish: str | None) -> dict:
        if self.chat:
            return {"index": index, "message": {"role": "assistant", "content": text}, "logprobs": None,
                    "finish_reason": finish}  # fmt: skip
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

    def _chunk(
        self, index: int, text: str | None, delta: dict | None = None, finish: str | None = None
    ) -> str:
        if self.chat:
            delta = delta if delta is not None else ({"content": text} if text is not None else {})
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return json.dumps({**self._head(True), "choices": [choice]}, ensure_ascii=False)

    def _usage(self, completions) -> dict:
        new = sum(len(c.tokens) for c in completions)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": new,
                "total_tokens": self.prompt_tokens + new}  # fmt: skip


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket (port 0: a free one), or one line saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FabulistError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
                            "or --host") from None  # fmt: skip
    sock.listen(128)
    return sock


def api_key_from(env_var: str | None) -> str | None:
    if env_var is None:
        return None
    key = os.environ.get(env_var, "")
    if not key.strip():
        raise FabulistError(f"--api-key-env {env_var}: that environment variable is not set or empty "
                            "(it must hold the key clients send as Authorization: Bearer <key>)")  # fmt: skip
    return key.strip()


def serve(gen: Generator, config: ServeConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until interrupted: Ctrl-C or SIGTERM stop uvicorn gracefully (requests in flight get 5 s)."""
    _require()
    import uvicorn

    sock = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info("serving %s (%s) at http://%s:%d/v1: batches of up to %d, %d requests at most, %s", config.name,
             gen.artifact, shown, sock.getsockname()[1], config.max_batch, config.max_requests,
             "bearer key required" if config.api_key else "no key")  # fmt: skip
    app = create_app(gen, config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
    try:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down cleanly
            server.run(sockets=[sock])
    finally:
        close = getattr(gen.backend, "close", None)  # the decoder thread has stopped with the app
        if close is not None:
            close()
