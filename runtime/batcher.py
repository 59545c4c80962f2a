"""The decoder behind `fabulist serve`: one thread owns the model and decodes queued requests together, one
batch at a time, whatever their prompts and sampling rules.

    fabulist serve --max-batch 8

Why this shape. A request is n rows (`engine.Row`: a prompt, a sampling rule, a seed, stop strings, a
limit), and the Generator's one decode loop (`Generator._steps`) takes rows with different prompts as one
batch where the backend can (`start_batch`: optimum's ONNX graph left-pads the prompts, onnxruntime-genai's
right-pads them, both hiding the pads with the attention mask) and samples each row under its own rule.
The i-th completion of a request with seed S draws from `default_rng([S, i])`, exactly as
`Generator.generate(prompt, params, n)` does, and a backend's logits for a row do not depend on the rows
beside it (within float tolerance: tests/runtime/test_batch.py), so a request decoded with strangers gets
the text `fabulist generate --seed S` gets alone.

When rows join. A request that arrives while a batch runs waits in the queue and joins the NEXT batch,
together with every queued request that fits (up to `max_batch` rows; the oldest request always goes
first) and that the backend can decode beside it (`Generator.can_batch`: genai cannot pad past its
context, a backend without `start_batch` takes one prompt per batch). It cannot join the RUNNING batch at
the next step: its prompt needs its own prefill and a cache as long as the batch's. With optimum's graph
that is possible in principle (its cache is plain arrays: prefill the newcomer alone, left-pad its cache to
the batch's length, append its row), but genai keeps its cache inside its own generator, which takes a
batch's tokens only all at once, and llama.cpp's (runtime/llamacpp.py) would need a sequence added to a
running batch; the batcher keeps one rule for all of them.

A cancelled request (its client went away) is skipped while queued; while decoding, its rows stop being
sampled at the next step, and the batch ends early when no live row is left. The batch's KV cache is the
backend's and is replaced by the next `start`, so nothing a dropped request held outlives its batch.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from fabulist.runtime.engine import Completion, GenerationError, Generator, Row
from fabulist.runtime.sampling import SamplingParams

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

    def rows(self) -> list[Row]:
        return [Row(self.ids, self.params, i, cancelled=self.cancelled) for i in range(self.n)]


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
            for job in list(self.queue):
                rows = [row for j in (*batch, job) for row in j.rows()]
                if len(rows) <= self.max_batch and not job.cancelled.is_set() and self.gen.can_batch(rows):
                    self.queue.remove(job)
                    batch.append(job)
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
        """Decode the batch's rows as one batch (where the backend can), each result to its job's sink."""
        owners = [(job, i) for job in batch for i in range(job.n)]
        rows = [row for job in batch for row in job.rows()]
        self.counts["batches"] += 1
        self.counts["rows"] += len(rows)
        self.counts["largest_batch"] = max(self.counts["largest_batch"], len(rows))
        for kind, r, value in self.gen.events(rows):
            job, i = owners[r]
            if kind == "done":
                job.sink.done(i, value)
            elif job.stream:
                job.sink.piece(i, value)
        self.counts["cancelled"] += sum(job.cancelled.is_set() for job in batch)
