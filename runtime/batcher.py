"""The decoder behind `fabulist serve`: one thread owns the model, and queued requests that continue the
same prompt under the same sampling rule are decoded together as one batch.

    fabulist serve --max-batch 8

Why this shape. Every backend starts from ONE prompt: `start(prompt_ids, n, new_tokens)` prefills it once
and repeats its KV cache n times, then `advance` moves all n rows one token. So rows can share a batch when
they continue the same prompt token for token, and the sampler (`next_tokens`, one rule for every row)
lets them share it when temperature, top-k, top-p and the repetition penalty agree. Everything else is per
row: the seed, the stop strings and the token limit. The i-th completion of a request with seed S draws from
`default_rng([S, i])`, exactly as `Generator.generate(prompt, params, n)` does, and a backend's logits for a
row do not depend on the rows beside it (bitwise, checked in tests/runtime/test_serve.py), so a request
decoded in a batch with strangers gets the text `fabulist generate --seed S` gets alone.

When rows join. A request that arrives while a batch runs waits in the queue and joins the NEXT batch,
together with every queued request it is compatible with (up to `max_batch` rows; the oldest request
always goes first). It cannot join the running batch at the next step: its prompt would need its own
prefill and a cache of another length, which the one-prompt backends do not hold. Requests with different
prompts run one batch after another, in arrival order. llama.cpp's backend (`batched = False`) decodes one
sequence at a time, so there every row runs alone.

A cancelled request (its client went away) is skipped while queued; while decoding, its rows stop being
sampled at the next step, and the batch ends early when no live row is left. The batch's KV cache is the
backend's and is replaced by the next `start`, so nothing a dropped request held outlives its batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fabulist.runtime.detok import StreamDecoder
from fabulist.runtime.engine import Completion, GenerationError, Generator, _apply_stop
from fabulist.runtime.sampling import SamplingParams, next_tokens

log = logging.getLogger("fabulist.serve")


class Sink(Protocol):
    """Where a job's results go; called from the decoder thread."""

    def piece(self, index: int, text: str) -> None: ...

    def done(self, index: int, completion: Completion) -> None: ...

    def error(self, status: int, message: str) -> None: ...


class Busy(Exception):
    """More requests are queued or decoding than the server takes (an HTTP 429)."""


@dataclass
class Job:
    """n completions of one prompt. `params.max_new_tokens` is already within the model's context."""

    ids: list[int]
    params: SamplingParams
    n: int
    stream: bool
    sink: Sink
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> tuple:
        """Jobs with equal keys can share a batch."""
        p = self.params
        return (tuple(self.ids), p.temperature, p.top_k, p.top_p, p.repetition_penalty, p.min_new_tokens)


class Batcher:
    """A queue of jobs and the one thread that decodes them (see the module docstring)."""

    def __init__(self, gen: Generator, max_batch: int = 8, max_jobs: int = 64):
        self.gen, self.max_batch, self.max_jobs = gen, max_batch, max_jobs
        self.queue: deque[Job] = deque()
        self.cond = threading.Condition()
        self.active = 0  # jobs queued or decoding
        self.closed = False
        self.counts = {"jobs": 0, "batches": 0, "rows": 0, "largest_batch": 0, "cancelled": 0}
        self.thread = threading.Thread(target=self._loop, name="fabulist-decoder", daemon=True)

    def start(self) -> Batcher:
        self.thread.start()
        return self

    def close(self) -> None:
        with self.cond:
            self.closed = True
            for job in self.queue:
                job.sink.error(503, "the server is shutting down")
            self.queue.clear()
            self.cond.notify_all()

    def submit(self, job: Job) -> None:
        with self.cond:
            if self.closed:
                raise Busy("the server is shutting down")
            if self.active >= self.max_jobs:
                raise Busy(f"{self.active} requests are queued or running (the limit is {self.max_jobs})")
            self.active += 1
            self.counts["jobs"] += 1
            self.queue.append(job)
            self.cond.notify()

    def _take(self) -> list[Job] | None:
        """The oldest live job and every queued job that can share its batch (None once closed)."""
        with self.cond:
            while True:
                while self.queue and self.queue[0].cancelled.is_set():
                    self.queue.popleft()
                    self.active -= 1
                if self.queue:
                    break
                if self.closed:
                    return None
                self.cond.wait()
            batch = [self.queue.popleft()]
            rows = batch[0].n
            for job in list(self.queue):
                if job.key == batch[0].key and rows + job.n <= self.max_batch and not job.cancelled.is_set():
                    self.queue.remove(job)
                    batch.append(job)
                    rows += job.n
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._decode(batch)
            except GenerationError as exc:
                for job in batch:
                    job.sink.error(400, str(exc))
            except Exception as exc:  # a backend failure must not kill the decoder: every waiter is told
                log.exception("decoding failed")
                for job in batch:
                    job.sink.error(500, f"the model failed to decode: {type(exc).__name__}")
            finally:
                with self.cond:
                    self.active -= len(batch)

    def _decode(self, batch: list[Job]) -> None:
        rows = [(job, i) for job in batch for i in range(job.n)]
        self.counts["batches"] += 1
        self.counts["rows"] += len(rows)
        self.counts["largest_batch"] = max(self.counts["largest_batch"], len(rows))
        if self.gen.backend.batched:
            decode_rows(self.gen, rows)
        else:
            for row in rows:
                decode_rows(self.gen, [row])
        self.counts["cancelled"] += sum(job.cancelled.is_set() for job in batch)


def decode_rows(gen: Generator, rows: list[tuple[Job, int]]) -> None:
    """Decode rows that share a prompt and a sampling rule, each (job, completion index) with its own seed,
    stop strings and limit; results go to each job's sink. The loop is `Generator._steps` with per-row
    seeds and limits (which it does not take), so the tokens and text are the ones it gives."""
    ids, params = rows[0][0].ids, rows[0][0].params
    n = len(rows)
    limits = [job.params.max_new_tokens for job, _ in rows]
    rngs = [
        np.random.default_rng(None if job.params.seed is None else [job.params.seed, i]) for job, i in rows
    ]
    decoders = [StreamDecoder(gen.tok, gen.specials) for _ in rows]
    texts, tokens, reasons = [""] * n, [[] for _ in rows], [None] * n
    gen._check_memory(n, len(ids) + max(limits))
    t0 = time.perf_counter()
    logits = gen.backend.start(ids, n, max(limits))
    first = None

    def finish(r: int, reason: str) -> None:
        reasons[r] = reason
        job, i = rows[r]
        if reason == "length":
            tail = decoders[r].flush()
            texts[r] += tail
            if job.stream and tail:
                job.sink.piece(i, tail)
        ttft = round((first or t0) - t0, 4)
        stats = {"prompt_tokens": len(ids), "new_tokens": len(tokens[r]), "ttft_s": ttft}
        job.sink.done(i, Completion(texts[r], tokens[r], reason, None, stats))

    for _ in range(max(limits)):
        for r, (job, _i) in enumerate(rows):
            if not reasons[r] and job.cancelled.is_set():
                reasons[r] = "cancelled"
        live = [r for r in range(n) if not reasons[r]]
        if not live:
            break
        part = logits[live]
        early = [j for j, r in enumerate(live) if len(tokens[r]) < rows[r][0].params.min_new_tokens]
        if early:
            part = part.copy()
            part[early, gen.eos] = -np.inf
        seen = [lambda r=r: ids + tokens[r] for r in live]
        drawn = dict(
            zip(live, next_tokens(part, params, [rngs[r] for r in live], seen).tolist(), strict=True)
        )
        first = first or time.perf_counter()
        for r in live:
            job, i = rows[r]
            if drawn[r] == gen.eos:
                finish(r, "eos")
                continue
            tokens[r].append(drawn[r])
            piece = decoders[r].push(drawn[r])
            texts[r], piece, stopped = _apply_stop(texts[r], piece, job.params.stop)
            if job.stream and piece:
                job.sink.piece(i, piece)
            if stopped or len(tokens[r]) >= limits[r]:
                finish(r, stopped or "length")
        if all(reasons):
            break  # no forward pass for logits nobody reads
        logits = gen.backend.advance([drawn.get(r, gen.eos) for r in range(n)])
