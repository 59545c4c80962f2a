"""`fabulist serve` on the embedded fable-5m, exercised with the official `openai` client over 127.0.0.1:
the fable prompt from element fields and from a chat message, completions and chat, streaming, n > 1,
seeds that give the Generator's own text (alone and batched with strangers), the bearer key, every limit
in OpenAI's error shape, a client that goes away, the CLI, and the project's own teacher and judge
clients pointed at it."""

import json
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from fabulist import fable_format as ff
from fabulist.runtime.batcher import Batcher, Busy, Job
from fabulist.runtime.embedded import resolve
from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams
from fabulist.runtime.serve import ServeConfig, create_app, listen
from fabulist.runtime.serve_request import element_labels
from tests.llama_server import clean_env

pytestmark = pytest.mark.integration
SECRET = "sk-serve-test-DO-NOT-LOG-7f1e"
FOX = {"character": "Fox", "trait": "Brave", "setting": "Forest", "conflict": "Sharing food in a hard winter",
       "resolution": "Reward", "moral": "Kindness is rewarded."}  # fmt: skip
FAB = [sys.executable, "-m", "fabulist.cli"]


class ThreadServer:
    """The real app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, config: ServeConfig):
        import uvicorn

        self.gen = load_generator(resolve(None))  # its own model: the decoder thread owns it
        self.sock = listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.app = create_app(self.gen, config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def health(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=10).json()

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server():
    with ThreadServer(ServeConfig(max_batch=8, max_requests=64, max_body_bytes=64_000, api_key=SECRET)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def ref():
    """A Generator of its own, what `fabulist generate` runs, for the expected text."""
    return load_generator(resolve(None))


def expected(ref, prompt: str, seed: int, max_tokens: int, n: int = 1, **sampling) -> list:
    params = SamplingParams(temperature=sampling.get("temperature", 0.8), top_p=sampling.get("top_p", 0.95),
                            max_new_tokens=max_tokens, seed=seed, stop=sampling.get("stop", ()))  # fmt: skip
    return ref.generate(prompt, params, n)


def post(server, path: str, content: bytes | str, key: str | None = SECRET, **headers) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{server.base_url}{path}", content=content, headers=headers, timeout=60)


def _drain(batcher) -> None:
    """Start the batcher on what was submitted, wait (at most 120 s) until it has nothing left, close it."""
    batcher.start()
    deadline = time.monotonic() + 120
    while batcher.active and time.monotonic() < deadline:
        time.sleep(0.01)
    batcher.close()


# --- the prompt and the text ---------------------------------------------------------------------------


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["fable-5m"]
    health = httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=10)  # no key needed
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_chat_with_fable_fields_gives_generators_text(server, client, ref):
    reply = client.chat.completions.create(model="fable-5m", messages=[{"role": "user", "content": "-"}],
                                           seed=7, max_tokens=80, extra_body={"fable": FOX})  # fmt: skip
    prompt = ff.prompt(FOX)
    (want,) = expected(ref, prompt, 7, 80)
    assert reply.choices[0].message.content == want.text and want.text
    assert reply.choices[0].finish_reason == {"eos": "stop", "length": "length"}[want.finish_reason]
    assert reply.model == "fable-5m" and reply.usage.completion_tokens == len(want.tokens)
    assert reply.usage.prompt_tokens == len(ref.encode(prompt))
    assert reply.model_extra["fable"] == {"prompt": prompt, "elements": FOX, "clipped_to": None}


def test_chat_message_element_lines_build_the_header(server, client, ref):
    """The teacher's message: element lines become the header (ids and labels read as `generate` reads
    them, other text as free text); the instructions around them are dropped."""
    message = (
        "Write a fable for young children using these elements:\ncharacter: fox\nSetting: Forest\n"
        "Moral:  Kindness is rewarded.\nTrait: a quietly stubborn badger\nWrite 150 words.\nMoral: not this"
    )
    messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": message}]
    reply = client.chat.completions.create(model="x", messages=messages, seed=2, max_tokens=40)
    labels = {"character": "Fox", "trait": "A quietly stubborn badger", "setting": "Forest",
              "moral": "Kindness is rewarded."}  # fmt: skip
    assert reply.model_extra["fable"]["prompt"] == ff.prompt(labels)
    assert reply.choices[0].message.content == expected(ref, ff.prompt(labels), 2, 40)[0].text


def test_completions_beginning_raw_prompt_and_stop(server, client, ref):
    beginning = "Once, in a quiet forest, a small fox"
    reply = client.completions.create(model="fable-5m", prompt=beginning, seed=3, max_tokens=30)
    assert reply.choices[0].text == expected(ref, ff.prompt({}, beginning), 3, 30)[0].text
    raw = ff.prompt(FOX, beginning)
    again = client.completions.create(model="fable-5m", prompt=raw, seed=3, max_tokens=30, stop=[" the"])
    (want,) = expected(ref, raw, 3, 30, stop=(" the",))
    assert again.choices[0].text == want.text and " the" not in want.text
    assert again.choices[0].finish_reason == ("stop" if want.finish_reason in ("stop", "eos") else "length")


def test_streaming_equals_the_whole_reply(server, client, ref):
    args = {"model": "fable-5m", "messages": [{"role": "user", "content": "Character: Owl"}], "seed": 11,
            "max_tokens": 60, "temperature": 1.0, "top_p": 0.9}  # fmt: skip
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert text == expected(ref, ff.prompt({"character": "Owl"}), 11, 60, temperature=1.0, top_p=0.9)[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens and not chunks[-1].choices


def test_n_completions_equal_generate_n(server, client, ref):
    reply = client.completions.create(model="m", prompt="The hen", n=3, seed=5, max_tokens=25)
    want = expected(ref, ff.prompt({}, "The hen"), 5, 25, n=3)
    assert [c.text for c in sorted(reply.choices, key=lambda c: c.index)] == [w.text for w in want]
    assert len({w.text for w in want}) == 3  # three different stories, not one repeated
    stream = client.completions.create(model="m", prompt="The hen", n=3, seed=5, max_tokens=25, stream=True)
    texts = ["", "", ""]
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.text
    assert texts == [w.text for w in want]


def test_max_tokens_within_context_is_clipped(server, client, ref):
    beginning = "The ant " * 200  # 400+ tokens of prompt: less room than asked
    reply = client.completions.create(model="m", prompt=beginning, seed=1, max_tokens=500)
    room = ref.backend.context - len(ref.encode(ff.prompt({}, beginning)))
    assert 0 < room < 500
    assert reply.model_extra["fable"]["clipped_to"] == room
    assert reply.choices[0].text == expected(ref, ff.prompt({}, beginning), 1, room)[0].text


# --- batching ------------------------------------------------------------------------------------------


class Collect:
    """A Sink that keeps what the decoder sends."""

    def __init__(self):
        self.pieces, self.completions, self.errors = {}, {}, []

    def piece(self, index, text):
        self.pieces[index] = self.pieces.get(index, "") + text

    def done(self, index, completion):
        self.completions[index] = completion

    def error(self, status, message):
        self.errors.append((status, message))


def test_queued_requests_join_one_batch_and_keep_their_own_seeds(ref):
    """Jobs queued while the decoder is busy (here: before it starts) run as ONE batch up to max_batch
    rows, whatever their prompts and sampling rules, each row with its own seed, limit and stop strings,
    and each gets the text it gets alone; a job that does not fit runs in the next batch."""
    gen = load_generator(resolve(None))
    batcher = Batcher(gen, max_batch=5, max_jobs=5)
    prompt = ff.prompt(FOX)
    ids = gen.encode(prompt)
    asks = [(1, 60, ()), (2, 90, ()), (3, 40, (" and",)), (4, 70, ())]
    jobs = []
    for seed, limit, stop in asks:
        params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=limit, seed=seed, stop=stop)
        jobs.append(Job(ids, params, 2 if seed == 2 else 1, True, Collect()))
    other = Job(gen.encode(ff.prompt({}, "A crow")), SamplingParams(seed=9, max_new_tokens=20), 1, False,
                Collect())  # fmt: skip
    for job in [jobs[0], other, *jobs[1:]]:
        batcher.submit(job)
    with pytest.raises(Busy, match="the limit is 5"):
        batcher.submit(Job(ids, SamplingParams(), 1, False, Collect()))
    _drain(batcher)
    # 1 + 1 (another prompt, another rule) + 2 + 1 rows; the last job's row would be the sixth
    assert batcher.counts["batches"] == 2 and batcher.counts["largest_batch"] == 5
    for job, (seed, limit, stop) in zip(jobs, asks, strict=True):
        want = expected(ref, prompt, seed, limit, n=job.n, stop=stop)
        assert [job.sink.completions[i].text for i in range(job.n)] == [w.text for w in want]
        assert [job.sink.pieces.get(i, "") for i in range(job.n)] == [w.text for w in want]  # streamed
        assert [job.sink.completions[i].finish_reason for i in range(job.n)] == [
            w.finish_reason for w in want
        ]
    assert other.sink.completions[0].text == ref.generate(ff.prompt({}, "A crow"), other.params)[0].text


def test_concurrent_clients_all_get_their_seeded_text(server, ref):
    before = server.health()
    results, errors = {}, []

    def ask(seed: int) -> None:
        try:
            c = openai.OpenAI(base_url=server.base_url, api_key=SECRET, max_retries=0, timeout=120)
            r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], seed=seed,
                                          max_tokens=50, extra_body={"fable": FOX})  # fmt: skip
            results[seed] = r.choices[0].message.content
        except Exception as exc:  # reported below with the seed
            errors.append((seed, repr(exc)))

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors
    assert results == {s: expected(ref, ff.prompt(FOX), s, 50)[0].text for s in range(8)}
    after = server.health()
    assert after["jobs"] - before["jobs"] == 8 and after["rows"] - before["rows"] == 8
    assert after["batches"] - before["batches"] <= 8


ASKS = [  # (fable fields, seed, max_tokens, temperature, top_p, stream): ragged prompts, different rules
    ({"character": "Fox"}, 1, 60, 0.8, 0.95, False),
    (FOX, 2, 40, 1.0, 0.9, True),
    ({"character": "Owl", "setting": "Forest", "moral": "Slow and steady wins the race."}, 3, 70, 0.8, 0.95,
     False),
    ({}, 4, 30, 0.0, 1.0, True),
    ({"character": "Crow", "beginning": "A thirsty crow found a jug with a little water in it"}, 5, 50, 0.7,
     0.8, False),
    ({"trait": "Brave"}, 6, 45, 1.0, 1.0, True),
]  # fmt: skip


def fable_prompt(fable: dict) -> str:
    """The prompt the server builds from a request's `fable` object."""
    fields = {key: v for key, v in fable.items() if key != "beginning"}
    return ff.prompt(element_labels(fields, ""), fable.get("beginning"))


def test_concurrent_clients_with_different_prompts_are_batched_and_get_their_seeded_text(ref):
    """Six clients at once, each its own prompt (ragged lengths), sampling rule, limit and stream or not:
    they share batches (the first request starts one; those that arrive meanwhile join the next), and each
    gets the text `fabulist generate --seed` gives its prompt alone."""
    results, errors = {}, []

    def ask(k: int) -> None:
        fable, seed, limit, temperature, top_p, stream = ASKS[k]
        args = {"model": "m", "messages": [{"role": "user", "content": "-"}], "seed": seed,
                "max_tokens": limit, "temperature": temperature, "top_p": top_p,
                "extra_body": {"fable": fable}}  # fmt: skip
        try:
            c = openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0, timeout=120)
            if stream:
                chunks = c.chat.completions.create(**args, stream=True)
                results[k] = "".join(x.choices[0].delta.content or "" for x in chunks if x.choices)
            else:
                results[k] = c.chat.completions.create(**args).choices[0].message.content
        except Exception as exc:  # reported below with the request
            errors.append((k, repr(exc)))

    with ThreadServer(ServeConfig(max_batch=8)) as s:
        threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(ASKS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        health = s.health()
    assert not errors
    for k, (fable, seed, limit, temperature, top_p, _) in enumerate(ASKS):
        prompt = fable_prompt(fable)
        want = expected(ref, prompt, seed, limit, temperature=temperature, top_p=top_p)[0].text
        assert results[k] == want and want, k
    assert health["jobs"] == 6 and health["rows"] == 6
    assert health["batches"] < 6 and health["largest_batch"] >= 2


def test_queued_distinct_prompts_decode_as_one_batch(ref):
    """Queued before the decoder starts, six different prompts under different rules (with a per-row
    min_new_tokens and stop strings) are ONE batch of six rows, and each row's text is its own."""
    gen = load_generator(resolve(None))
    batcher = Batcher(gen, max_batch=8)
    jobs = []
    for fable, seed, limit, temperature, top_p, stream in ASKS:
        prompt = fable_prompt(fable)
        params = SamplingParams(temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=limit,
                                stop=(" the",) if seed % 2 else (), min_new_tokens=seed * 3)  # fmt: skip
        jobs.append((prompt, Job(gen.encode(prompt), params, 1, stream, Collect())))
        batcher.submit(jobs[-1][1])
    _drain(batcher)
    assert batcher.counts["batches"] == 1 and batcher.counts["largest_batch"] == 6
    assert len({len(job.ids) for _, job in jobs}) >= 5  # ragged
    for prompt, job in jobs:
        (want,) = ref.generate(prompt, job.params)
        got = job.sink.completions[0]
        assert (got.text, got.tokens, got.finish_reason) == (want.text, want.tokens, want.finish_reason)
        assert job.sink.pieces.get(0, "") == (want.text if job.stream else "")


# --- refusals, in OpenAI's error shape -----------------------------------------------------------------


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_key_missing_or_wrong_is_401(server, client):
    for key in (None, "sk-wrong"):
        r = post(
            server, "/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}]}), key
        )
        assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
    wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    assert httpx.get(f"{server.base_url}/models", timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (b"{not json", 400, None, "invalid_json"),
        (b"\xff\xfe", 400, None, "invalid_json"),
        (b"[1, 2]", 400, None, "invalid_json"),
        (b'{"prompt": "x", "max_tokens": 100000}', 400, "max_tokens", "context_length_exceeded"),
        (b'{"prompt": "x", "max_tokens": 0}', 400, "max_tokens", None),
        (b'{"prompt": "x", "n": 9}', 400, "n", None),
        (b'{"prompt": "x", "seed": -1}', 400, "seed", None),
        (b'{"prompt": "x", "temperature": "hot"}', 400, "temperature", None),
        (b'{"prompt": "x", "stop": ""}', 400, "stop", None),
        (b'{"prompt": "x", "logprobs": 2}', 400, "logprobs", "unsupported_parameter"),
        (b'{"prompt": "x <|endoftext|>"}', 400, "prompt", None),
        (b'{"prompt": 5}', 400, "prompt", None),
        (b'{"prompt": "x", "fable": {"hero": "fox"}}', 400, "fable", None),
        (b'{"prompt": "x", "fable": {"moral": "' + b"long " * 30 + b'"}}', 400, "fable.moral", None),
        (b'{"prompt": "' + b"fox " * 600 + b'"}', 400, "messages", "context_length_exceeded"),
    ],
)
def test_bad_requests_are_400(server, body, status, param, code):
    r = post(server, "/completions", body)
    error = error_of(r)
    assert (r.status_code, error["param"], error["code"]) == (status, param, code), error
    assert error["type"] == "invalid_request_error" and error["message"]


def test_chat_refusals(server):
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}},
            "response_format",
        ),
    ]
    for body, param in cases:
        r = post(server, "/chat/completions", json.dumps(body))
        assert r.status_code == 400 and error_of(r)["param"] == param, r.text


def test_huge_body_is_413_without_reading_it_all(server):
    big = json.dumps({"prompt": "x" * 100_000}).encode()
    r = post(server, "/completions", big)
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"

    def chunks():  # no Content-Length: the server counts as it reads
        for _ in range(100):
            yield b" " * 1000

    r = httpx.post(f"{server.base_url}/completions", content=chunks(), timeout=30,
                   headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip
    assert r.status_code == 413


def test_unknown_route_is_404_in_openai_shape(server):
    r = httpx.get(f"http://127.0.0.1:{server.port}/v1/engines", timeout=10)
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_busy_is_429_and_a_dropped_stream_frees_its_rows():
    """max_requests=1: while a long streamed request decodes, a second is refused with 429; the first
    client then goes away, its rows stop, and the server serves the next request."""
    with ThreadServer(ServeConfig(max_batch=8, max_requests=1)) as s:
        c = openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0, timeout=60)
        stream = c.completions.create(model="m", prompt="The long winter", n=8, max_tokens=400, seed=0,
                                      stream=True)  # fmt: skip
        next(iter(stream))  # decoding has begun
        with pytest.raises(openai.RateLimitError) as busy:
            c.completions.create(model="m", prompt="x", max_tokens=5)
        assert busy.value.response.headers["retry-after"] == "1"
        assert busy.value.body["code"] == "rate_limit_exceeded"
        stream.close()
        deadline = time.monotonic() + 60
        while not settled(s, 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        health = s.health()
        assert health["cancelled"] == 1 and health["running"] == 0
        assert c.completions.create(model="m", prompt="x", max_tokens=5, seed=1).choices[0].text


def settled(server, cancelled: int) -> bool:
    """The decoder has dropped that many requests and holds nothing."""
    health = server.health()
    return health["cancelled"] == cancelled and health["running"] == 0 and health["queued"] == 0


def test_a_client_that_gives_up_on_a_whole_reply_frees_its_rows(server):
    before = server.health()["cancelled"]
    with pytest.raises(httpx.TimeoutException):
        post_body = {"prompt": "The long winter", "n": 8, "max_tokens": 450, "seed": 0}
        httpx.post(f"{server.base_url}/completions", json=post_body, timeout=0.3,
                   headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip
    deadline = time.monotonic() + 30
    while not settled(server, before + 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    health = server.health()
    assert health["cancelled"] == before + 1 and health["running"] == 0


# --- the command ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_serves_the_embedded_model_with_no_options():
    """`fabulist serve` with no model options (--port 0: a free port, as the log line says)."""
    cmd = [*FAB, "serve", "--port", "0", "--api-key-env", "FAB_TEST_KEY"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=clean_env(FAB_TEST_KEY=SECRET))
    try:
        line = proc.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert match and "fable-5m" in line and "bearer key required" in line and SECRET not in line, line
        c = openai.OpenAI(base_url=match.group(1), api_key=SECRET, max_retries=2, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Once"}],
                                                  max_tokens=8, seed=0)  # fmt: skip
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.choices[0].message.content and reply.model == "fable-5m"
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Finished server process" in err
    assert SECRET not in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_bad_setup_is_one_line():
    unset = subprocess.run([*FAB, "serve", "--api-key-env", "FAB_NOT_SET"], capture_output=True, text=True,
                           env=clean_env(), timeout=120)  # fmt: skip
    assert unset.returncode == 1 and unset.stderr.startswith("error: --api-key-env FAB_NOT_SET: ")
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        busy = subprocess.run([*FAB, "serve", "--port", str(port)], capture_output=True, text=True,
                              env=clean_env(), timeout=120)  # fmt: skip
    assert busy.returncode == 1 and busy.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port or --host"
    )


# --- the project's own clients -------------------------------------------------------------------------


@pytest.mark.slow
def test_data_generate_with_the_served_model_as_teacher(server, ref, tmp_path):
    """The teacher's prompts carry element lines: the served model writes a fable from that header with the
    teacher's seed; fables cut by max_tokens are the teacher's length errors."""
    from fabulist.data import prompts as pr

    records = list(pr.sample(4, seed=21))
    path, out = tmp_path / "prompts.jsonl", tmp_path / "fables.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cmd = [*FAB, "data", "generate", "--prompts", str(path), "-o", str(out), "--base-url", server.base_url,
           "--model", "fable-5m", "--temperature", "0.8", "--top-p", "0.95", "--max-tokens", "420",
           "--concurrency", "2", "--max-retries", "0", "--timeout", "120"]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=clean_env(OPENAI_API_KEY=SECRET), timeout=600
    )
    assert "Traceback" not in done.stderr
    written = (
        {r["prompt_hash"]: r for r in map(json.loads, out.read_text().splitlines())} if out.exists() else {}
    )
    errors_path = tmp_path / "fables.errors.jsonl"
    errors = {e["prompt_hash"]: e for e in map(json.loads, errors_path.read_text().splitlines())} if (
        errors_path.exists()) else {}  # fmt: skip
    for r in records:
        prompt = ff.prompt(ff.labels_for(r["elements"], r["shown"]))
        room = ref.backend.context - len(ref.encode(prompt))
        (want,) = expected(ref, prompt, 0, min(420, room))
        if want.finish_reason == "length":
            assert errors[r["prompt_hash"]]["error"].startswith("finish_reason=length")
        else:
            got = written[r["prompt_hash"]]
            assert got["fable"] == want.text.strip() and got["llm_name"] == "fable-5m"
    assert len(written) + len(errors) == 4 and written, done.stdout + done.stderr


@pytest.mark.slow
def test_eval_judge_against_the_served_model_counts_failed_grades(server, tmp_path):
    """A fable model writes no JSON grade: the judge's json_schema and json_object requests are refused
    (400), it falls back to plain text, every reply fails to parse, and the command ends with its one-line
    error instead of crashing."""
    from fabulist.eval import evalset

    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"prompt_id": p.id, "sample": 0, "text": "The fox shared.\n\nMoral: Share."}
        for p in evalset.load()[:2]
    ]
    (run / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = server.health()["jobs"]
    cmd = [*FAB, "eval", "judge", str(run), "--judge-base-url", server.base_url, "--judge-model", "fable-5m",
           "--concurrency", "1", "--timeout", "120", "--max-retries", "1", "--backoff", "0.05"]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=clean_env(OPENAI_API_KEY=SECRET), timeout=600
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: every one of the 2 completions failed to grade")
    # two attempts each, in plain text (the refused structured-output requests decode nothing)
    assert server.health()["jobs"] - before == 2 * 2
    summary = json.loads((run / "judge.json").read_text())
    assert summary["structured_output"] == "text" and summary["failures"] == 2 and summary["graded"] == 0
    judged = [json.loads(line) for line in (run / "judgments.jsonl").read_text().splitlines()]
    assert all(j["error"].startswith("unparseable grade") for j in judged)
