"""A local OpenAI-compatible chat server that injects the faults real services produce.

A test writes a fault tag into a prompt's text ("[[fault:429x2]]"); the server answers requests that
carry that prompt accordingly, counts them, and records when each arrived. Tags:

    429xN        N replies of 429 with Retry-After: 1, then a fable
    hugewaitxN   N replies of 429 with Retry-After: 100000 (a day and more), then a fable
    500xN        N replies of 500, then a fable
    timeoutxN    N replies delayed past the client's timeout, then a fable
    malformedxN  N replies of 200 whose body is not JSON, then a fable
    empty        always a reply with empty content
    length       always a reply cut by finish_reason=length
    always500    always 500
    slow         a fable after 50 ms
    drip         a fable whose whole response (status line, headers, body) comes one byte every
                 `drip_interval` seconds: each read is quick, the reply takes minutes
    negusage     a fable whose usage counts are negative (-1,000,000 tokens in and out)
    echo401      always 401 whose message quotes the API key (as OpenAI's "Incorrect API key provided")
    echo400      always 400 whose message quotes the Authorization header ("Bearer <key>")
    echokey      a fable that quotes the Authorization header, from a model named after the key
    badwaitxN    N replies of 429 with an unparseable Retry-After ("soon, maybe"), then a fable
    notlistxN    N replies of 200 whose `choices` is a string, not a list, then a fable
    choiceintxN  N replies of 200 whose `choices` is [1] (a choice that is not an object), then a fable

`server.heal()` makes every later request succeed (a fixed upstream, for rerun tests).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TAG = re.compile(r"\[\[fault:([a-z0-9]+?)(?:x(\d+))?\]\]")
FABLE = (
    "A small fox lived in the green forest. She learned to share her berries.\n\nMoral: Sharing brings joy."
)


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, timeout_delay: float = 1.5, usage=(50, 100), drip_interval: float = 1.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.timeout_delay, self.usage, self.drip_interval = timeout_delay, usage, drip_interval
        self.requests: dict[str, list[float]] = defaultdict(list)  # tag key -> arrival times
        self.auth_headers: list[str] = []
        self.healed = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def heal(self) -> None:
        self.healed = True

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _drip(self, body: bytes) -> None:
        """A 200 with `body`, written one byte at a time (the slow-drip fault)."""
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.close_connection = True
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            for i, byte in enumerate(head.encode() + body):
                if i:
                    time.sleep(self.server.drip_interval)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    def _reply(self, model: str, content: str, finish: str = "stop", usage=None) -> bytes:
        n_in, n_out = usage or self.server.usage
        return json.dumps({
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
        }).encode()  # fmt: skip

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        match = _TAG.search(text)
        tag, times = (match.group(1), int(match.group(2) or 1)) if match else ("ok", 0)
        key = match.group(0) if match else text
        with self.server.lock:
            self.server.requests[key].append(time.monotonic())
            self.server.auth_headers.append(self.headers.get("Authorization", ""))
            seen = len(self.server.requests[key])
        failing = not self.server.healed and seen <= times
        model = body["model"]
        auth = self.headers.get("Authorization", "")
        if tag in ("echo401", "echo400"):
            return self._send(int(tag[4:]), _echo_error(tag, auth))
        if tag == "echokey":
            return self._send(
                200, self._reply(f"{model}+{auth.removeprefix('Bearer ')}", f"{FABLE}\n({auth})")
            )
        if tag == "429" and failing:
            return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "1"})
        if tag == "hugewait" and failing:
            return self._send(429, b'{"error": {"message": "come back tomorrow"}}', {"Retry-After": "100000"})
        if tag == "badwait" and failing:
            return self._send(429, b'{"error": {"message": "busy"}}', {"Retry-After": "soon, maybe"})
        if tag in ("notlist", "choiceint") and failing:
            reply = json.loads(self._reply(model, FABLE))
            reply["choices"] = "not a list" if tag == "notlist" else [1]
            return self._send(200, json.dumps(reply).encode())
        if tag == "drip" and not self.server.healed:
            return self._drip(self._reply(model, FABLE))
        if tag == "negusage" and not self.server.healed:
            return self._send(200, self._reply(model, FABLE, usage=(-1_000_000, -1_000_000)))
        if (tag == "500" and failing) or (tag == "always500" and not self.server.healed):
            return self._send(500, b'{"error": {"message": "server error"}}')
        if tag == "timeout" and failing:
            time.sleep(self.server.timeout_delay)
        if tag == "malformed" and failing:
            return self._send(200, b'{"id": "chatcmpl-test", "choices": [ {"index": 0, "mess')
        if tag == "empty" and not self.server.healed:
            return self._send(200, self._reply(model, ""))
        if tag == "length" and not self.server.healed:
            return self._send(200, self._reply(model, FABLE[:40], "length"))
        if tag == "slow":
            time.sleep(0.05)
        return self._send(200, self._reply(model, FABLE))


def _echo_error(tag: str, auth: str) -> bytes:
    """An error body that quotes the credentials, as some servers (and OpenAI's 401) do."""
    if tag == "echo401":
        key = auth.removeprefix("Bearer ")
        message = (
            f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com."
        )
        error = {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    else:
        error = {
            "message": f"bad request; headers were Authorization: {auth}",
            "type": "invalid_request_error",
        }
    return json.dumps({"error": error}).encode()
