"""Load and fault test of `fabulist serve` on loopback, against llama-cpp-python's server on the same GGUF.

    .venv/bin/python benchmarks/serve_load.py --clients 4 --seconds 10 [--model fable-5m] [--threads 2]

Servers, each started here as a subprocess on 127.0.0.1 and stopped after its phase: `fabulist serve` on
the model's default artifact (onnxruntime-genai INT4), `fabulist serve --format gguf` (llama.cpp through
our runtime) and `python -m llama_cpp.server`, both on the model's own GGUF (llama-cpp-python's server runs
with --interrupt_requests False: by default a new request cuts the stream in progress, so concurrent
clients would mostly get broken replies; with it, requests wait their turn). Every request is a streamed
`/v1/completions` with a whole fable-format prompt (the same text to every server), --max-tokens new tokens
at most, temperature 0.8, top_p 0.95, its own seed; tokens are counted by re-tokenizing the reply with the
model's tokenizer, so every server is counted the same way.

Workloads per server, each bounded by --seconds and --max-requests:
- `concurrent-same`: --clients clients in a loop, all on ONE prompt (different seeds): what the server
  can batch;
- `concurrent-distinct`: the same with a different prompt per client (ragged lengths: fabulist serve
  decodes them as one padded batch; see runtime/batcher.py);
- `sequential`: as many requests as `concurrent-same` completed, one at a time (also stopped by time).
Reported: requests/s, tokens/s, latency p50/p95/p99, time to first token p50/p95, and ratios (to the
sequential run of the same server, and fabulist's to llama.cpp's on the same workload).

Faults (fabulist serve only), each while --clients background clients keep asking: clients that disconnect
mid-stream, malformed JSON, a body over the limit, max_tokens beyond the context, slow readers that then
go away. Checked: every background request still succeeds, each fault leaves one log line, and the
server's RSS (from /proc) after the faults is back at its plateau (measured after a warm-up that ran the
largest batch the faults use). Results: benchmarks/results/serve/results.json and results.md (the
servers' logs go to a temporary folder, printed at the start). For fabulist serve, `rows_per_batch` (from
its /health) says how many requests' rows were decoded together on average.

Timings on a busy machine are noisy: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from fabulist import artifacts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "serve"
CHARACTERS = ["Fox", "Owl", "Hen", "Bear", "Crow", "Ant", "Mouse", "Goat", "Wolf", "Frog", "Deer", "Duck"]


def prompt_for(character: str) -> str:
    from fabulist import fable_format as ff

    return ff.prompt({"character": character, "setting": "Forest", "moral": "Kindness is rewarded."})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess with its log file; `url` is its /v1 base."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path):
        self.name, self.port, self.log = name, port, log
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "/models", timeout=1)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready in 120 s")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def log_lines(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log.read_text(errors="replace")))

    def batches(self) -> tuple[int, int] | None:
        """(rows, batches) decoded so far, from fabulist serve's /health; None from other servers."""
        try:
            health = httpx.get(self.url.removesuffix("/v1") + "/health", timeout=10).json()
            return health["rows"], health["batches"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(kind: str, model: Path, threads: int, log_dir: Path) -> Server:
    port = free_port()
    if kind == "llama.cpp":
        gguf = str(gguf_of(model))
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            gguf,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "512",
            "--interrupt_requests",
            "False",
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
        ]
    else:
        fmt = ["--format", "gguf"] if kind == "fabulist-gguf" else []
        cmd = [
            sys.executable,
            "-m",
            "fabulist.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--threads",
            str(threads),
            "--max-batch",
            "8",
            *fmt,
        ]
    return Server(kind, cmd, port, log_dir / f"{kind}.log")


def gguf_of(model: Path) -> Path:
    ladder = ("q4_k_m", "q4_0", "q8_0", "f16", "f32")  # the smallest one there
    found = [p for p in (model / artifacts.get("gguf", q).path for q in ladder) if p.is_file()]
    if not found:
        raise SystemExit(f"{model} has no GGUF artifact")
    return found[0]


def request(url: str, body: dict, read_pause: float = 0.0, stop_after: int | None = None) -> dict:
    """One streamed completion: status, time to first text, latency, text. `read_pause`: a slow reader;
    `stop_after`: disconnect after that many chunks."""
    t0 = time.perf_counter()
    ttft, text, chunks = None, "", 0
    try:
        with httpx.stream("POST", url + "/completions", json=body, timeout=120) as r:
            if r.status_code != 200:
                r.read()
                return {"ok": False, "status": r.status_code, "latency": time.perf_counter() - t0}
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                piece = json.loads(line[6:])["choices"]
                piece = piece[0].get("text", "") if piece else ""
                if piece and ttft is None:
                    ttft = time.perf_counter() - t0
                text += piece
                chunks += 1
                if stop_after is not None and chunks >= stop_after:
                    return {"ok": True, "status": 200, "dropped": True}
                if read_pause:
                    time.sleep(read_pause)
    except httpx.HTTPError as exc:
        return {"ok": False, "status": type(exc).__name__, "latency": time.perf_counter() - t0}
    return {"ok": True, "status": 200, "ttft": ttft, "latency": time.perf_counter() - t0, "text": text}


def body(prompt: str, seed: int, max_tokens: int, n: int = 1) -> dict:
    return {
        "model": "m",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "top_p": 0.95,
        "seed": seed,
        "stream": True,
        "n": n,
    }


def run_clients(url: str, clients: int, seconds: float, cap: int, make_body) -> tuple[list[dict], float]:
    """`clients` threads asking in a loop until `seconds` pass or `cap` requests were sent."""
    results, lock, sent = [], threading.Lock(), [0]
    deadline = time.monotonic() + seconds

    def client(c: int) -> None:
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= cap:
                    return
                sent[0] += 1
                i = sent[0]
            r = request(url, make_body(c, i))
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def summary(results: list[dict], wall: float, count_tokens) -> dict:
    ok = [r for r in results if r["ok"]]
    lat = sorted(r["latency"] for r in ok)
    ttft = sorted(r["ttft"] for r in ok if r.get("ttft") is not None)
    tokens = sum(count_tokens(r["text"]) for r in ok)

    def q(xs, p):
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 1) if xs else None

    return {
        "requests": len(results),
        "ok": len(ok),
        "failed_with": sorted({str(r["status"]) for r in results if not r["ok"]}),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(ok) / wall, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "latency_ms": {"p50": q(lat, 0.5), "p95": q(lat, 0.95), "p99": q(lat, 0.99)},
        "ttft_ms": {"p50": q(ttft, 0.5), "p95": q(ttft, 0.95)},
    }


def measure(server: Server, args, count_tokens) -> dict:
    same = prompt_for("Fox")
    request(server.url, body(same, 0, 8))  # warm-up

    def same_body(c, i):
        return body(same, i, args.max_tokens)

    def distinct_body(c, i):
        return body(prompt_for(CHARACTERS[c % len(CHARACTERS)]), i, args.max_tokens)

    out = {}
    for name, make in (("concurrent-same", same_body), ("concurrent-distinct", distinct_body)):
        before = server.batches()
        results, wall = run_clients(server.url, args.clients, args.seconds, args.max_requests, make)
        out[name] = summary(results, wall, count_tokens)
        after = server.batches()
        if before and after[1] > before[1]:  # fabulist serve's /health: rows per batch in this phase
            out[name]["rows_per_batch"] = round((after[0] - before[0]) / (after[1] - before[1]), 2)
        print(f"{server.name:14s} {name:20s} {fmt_row(out[name])}", flush=True)
    count = out["concurrent-same"]["ok"]
    results, wall = run_clients(server.url, 1, args.seconds * 3, count, same_body)
    out["sequential"] = summary(results, wall, count_tokens)
    print(f"{server.name:14s} {'sequential':20s} {fmt_row(out['sequential'])}", flush=True)
    return out


def fmt_row(s: dict) -> str:
    return (
        f"{s['ok']:4d}/{s['requests']:<4d} {s['requests_per_s']:7.2f} req/s "
        f"{s['tokens_per_s']:8.1f} tok/s  "
        f"p50 {s['latency_ms']['p50']} p95 {s['latency_ms']['p95']} p99 {s['latency_ms']['p99']} ms  "
        f"ttft p50 {s['ttft_ms']['p50']} ms"
    )


def faults(server: Server, args) -> dict:
    """Each fault while background clients ask; what the server logged, kept serving and held."""
    fox = prompt_for("Fox")
    big = body(fox, 0, 400, n=8)
    for _ in range(2):  # warm-up: the largest batch the faults use, so the plateau includes its buffers
        request(server.url, big)
    plateau = server.rss_mb()
    bg: list[dict] = []
    stop = threading.Event()

    def background(c: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            bg.append(request(server.url, body(prompt_for(CHARACTERS[c]), i, 32)))

    threads = [threading.Thread(target=background, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    refused, gone = r"WARNING refused", r"WARNING client .* went away"
    kinds = {
        "disconnect mid-stream": (gone, lambda: request(server.url, big, stop_after=3)),
        "malformed JSON": (
            refused,
            lambda: httpx.post(server.url + "/completions", content=b'{"prompt": ', timeout=30),
        ),
        "huge body (4 MB)": (
            refused,
            lambda: httpx.post(
                server.url + "/completions", timeout=30, content=b'{"prompt": "' + b"a" * (4 << 20) + b'"}'
            ),
        ),
        "max_tokens beyond context": (
            refused,
            lambda: httpx.post(
                server.url + "/completions", timeout=30, json={"prompt": "x", "max_tokens": 100000}
            ),
        ),
        "slow reader, then gone": (gone, lambda: request(server.url, big, read_pause=0.2, stop_after=10)),
    }
    report, peak = {}, plateau
    for name, (pattern, act) in kinds.items():
        before = server.log_lines(pattern)
        statuses = []
        for _ in range(args.fault_repeats):
            r = act()
            statuses.append(r.status_code if isinstance(r, httpx.Response) else r.get("status"))
            peak = max(peak, server.rss_mb())
        time.sleep(1.0)  # a dropped stream is noticed at the decoder's next step
        report[name] = {
            "tries": args.fault_repeats,
            "statuses": sorted(set(map(str, statuses))),
            "log_lines": server.log_lines(pattern) - before,
        }
        print(
            f"fault {name:28s} x{args.fault_repeats}: statuses {report[name]['statuses']}, "
            f"{report[name]['log_lines']} log lines",
            flush=True,
        )
    stop.set()
    for t in threads:
        t.join()
    time.sleep(2.0)
    health = httpx.get(server.url.removesuffix("/v1") + "/health", timeout=10).json()
    after = server.rss_mb()
    ok = sum(r["ok"] for r in bg)
    return {
        "faults": report,
        "background_requests": len(bg),
        "background_ok": ok,
        "rss_mb": {"plateau": round(plateau, 1), "peak": round(peak, 1), "after": round(after, 1)},
        "rss_back_to_plateau": after <= plateau * 1.05 + 5,
        "health_after": health,
    }


def markdown(results: dict) -> str:
    r = results
    lines = [
        f"# fabulist serve under load ({r['model']}, {r['clients']} clients, {r['seconds']} s per phase, "
        f"max_tokens {r['max_tokens']}, threads {r['threads']})",
        "",
        "Absolute numbers depend on the machine and its load; the ratios compare servers of the same run.",
        "",
        "| server | workload | ok/sent | req/s | tok/s | p50 ms | p95 ms | p99 ms | TTFT p50 ms "
        "| tok/s vs sequential | tok/s vs llama.cpp |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = results["servers"].get("llama.cpp", {})
    for name, phases in results["servers"].items():
        for phase, s in phases.items():
            seq = phases["sequential"]["tokens_per_s"] or 1
            ref = base.get(phase, {}).get("tokens_per_s")
            vs = f"{s['tokens_per_s'] / ref:.2f}x" if ref else "-"
            label = phase + (f" ({s['rows_per_batch']} rows/batch)" if "rows_per_batch" in s else "")
            lines.append(
                f"| {name} | {label} | {s['ok']}/{s['requests']} | {s['requests_per_s']} | "
                f"{s['tokens_per_s']} | {s['latency_ms']['p50']} | {s['latency_ms']['p95']} | "
                f"{s['latency_ms']['p99']} | {s['ttft_ms']['p50']} | "
                f"{s['tokens_per_s'] / seq:.2f}x | {vs} |"
            )
    f = results.get("faults")
    if f:
        kept = f"{f['background_ok']}/{f['background_requests']}"
        lines += [
            "",
            f"## Faults (fabulist serve; {kept} background requests succeeded meanwhile)",
            "",
            "| fault | tries | HTTP statuses | log lines |",
            "|---|---|---|---|",
        ]
        for name, r in f["faults"].items():
            lines.append(f"| {name} | {r['tries']} | {', '.join(r['statuses'])} | {r['log_lines']} |")
        rss = f["rss_mb"]
        lines += [
            "",
            f"RSS: plateau {rss['plateau']} MB, peak {rss['peak']} MB during the faults, "
            f"{rss['after']} MB after (back to plateau: {f['rss_back_to_plateau']}).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="Model folder or embedded name (default: fable-5m).")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--max-requests", type=int, default=400, help="Cap per phase.")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fault-repeats", type=int, default=3)
    p.add_argument("--servers", default="fabulist,fabulist-gguf,llama.cpp")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    from tokenizers import Tokenizer

    from fabulist.runtime.embedded import resolve

    model = resolve(args.model)
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))

    def count_tokens(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    args.out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="serve-load-"))
    print(f"server logs in {logs}", flush=True)
    results = {
        "model": model.name,
        "clients": args.clients,
        "seconds": args.seconds,
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "servers": {},
    }
    for kind in args.servers.split(","):
        server = start(kind, model, args.threads, logs)
        try:
            results["servers"][kind] = measure(server, args, count_tokens)
            if kind == "fabulist":
                results["faults"] = faults(server, args)
        finally:
            server.stop()
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
