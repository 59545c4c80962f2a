"""One `Generator` over any backend: prompts in the training format, sampling, stop rules, streaming.

    fabulist generate --character fox --moral "..." --format onnx --quant int4 -n 3 --stats

A backend holds a model and its KV cache and answers two calls: `start(prompt_ids, n, new_tokens)`
(prefill once, n sequences continuing the same prompt, at most new_tokens to follow: a backend may size
its KV cache to that) and `advance(tokens)` (one new token per sequence), both returning next-token
logits of shape (n, vocab). Backends that cannot batch say `batched = False` and
the generator runs their sequences one after another.

With a `guide` (runtime/guide.py: `--guide`), each sequence keeps a guide state that forces tokens or bans
some before the sampler draws (the requested moral line, the character's name); without one the loop is
the plain sampler's, token for token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fabulist import fable_format as ff
from fabulist.errors import FabulistError
from fabulist.runtime.detok import StreamDecoder
from fabulist.runtime.guide import Guide
from fabulist.runtime.sampling import SamplingParams, next_tokens


class GenerationError(FabulistError):
    """A generation request that cannot run: prompt too long, missing artifact, bad parameter."""


class Backend(Protocol):
    context: int
    batched: bool

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray: ...

    def advance(self, tokens: list[int]) -> np.ndarray: ...


@dataclass
class Completion:
    text: str
    tokens: list[int]
    finish_reason: str  # "eos", "stop", "length"
    clipped_to: int | None = None  # max_new_tokens after clipping to the context, when it was clipped
    stats: dict = field(default_factory=dict)


class Generator:
    """Text in, fables out, on one backend with its tokenizer (a `tokenizers.Tokenizer`)."""

    def __init__(self, backend: Backend, tokenizer, load_seconds: float = 0.0, artifact=None, plain=None):
        """plain: a runtime.plain.PlainFormat for a model that is not a fable model (its own BOS and
        end-of-text ids; text decoded by its tokenizer's decoder)."""
        self.backend, self.tok, self.load_seconds, self.artifact = backend, tokenizer, load_seconds, artifact
        self.plain = plain
        if plain is None:
            self.eos = tokenizer.token_to_id(ff.EOS)
            self.specials = {tokenizer.token_to_id(t) for t in ff.SPECIAL_TOKENS}
            self.stops = [self.eos]
        else:  # no eos_token_id: only the length ends a completion (0 only fills finished rows)
            self.stops = list(plain.eos_ids)
            self.eos = self.stops[0] if self.stops else 0
            self.specials = set()

    def encode(self, text: str) -> list[int]:
        if self.plain is not None:
            return self.plain.encode(self.tok, text)
        return self.tok.encode(text, add_special_tokens=False).ids

    def budget(self, prompt_ids: list[int], params: SamplingParams) -> tuple[int, int | None]:
        """(max new tokens, the clipped value or None) within the backend's context."""
        room = self.backend.context - len(prompt_ids)
        if room < 1:
            raise GenerationError(
                f"the prompt is {len(prompt_ids)} tokens but the model's context is {self.backend.context}; "
                "shorten the story beginning"
            )
        if params.max_new_tokens > room:
            return room, room
        return params.max_new_tokens, None

    def preflight(self, prompt: str, params: SamplingParams, n: int = 1) -> None:
        """Raise GenerationError now for a request that cannot run (a prompt past the context, a batch
        that would not fit in memory), before a caller prints anything about it."""
        ids = self.encode(prompt)
        limit, _ = self.budget(ids, params)
        self._check_memory(n, len(ids) + limit)

    def _check_memory(self, n: int, tokens: int) -> None:
        if self.backend.batched:
            check_memory(n, tokens, getattr(self.backend, "kv_bytes", 0), self.tok.get_vocab_size())

    def generate(
        self, prompt: str, params: SamplingParams, n: int = 1, guide: Guide | None = None
    ) -> list[Completion]:
        """n completions of the same prompt (batched where the backend can), each under `guide` if any."""
        if n < 1:
            raise GenerationError("n must be at least 1")
        if self.backend.batched:
            return self._run(prompt, params, list(range(n)), guide)
        return [c for i in range(n) for c in self._run(prompt, params, [i], guide)]

    def stream(self, prompt: str, params: SamplingParams, guide: Guide | None = None) -> Iterator[str]:
        """Text pieces of one completion as decoded; the generator returns the Completion at the end."""
        result = yield from self._steps(prompt, params, [0], stream=True, guide=guide)
        return result[0]

    def _run(self, prompt: str, params: SamplingParams, seeds: list[int], guide=None) -> list[Completion]:
        steps = self._steps(prompt, params, seeds, stream=False, guide=guide)
        try:
            while True:
                next(steps)
        except StopIteration as done:
            return done.value

    def _steps(self, prompt: str, params: SamplingParams, seeds: list[int], stream: bool, guide=None):
        ids = self.encode(prompt)
        limit, clipped = self.budget(ids, params)
        n = len(seeds)
        if guide is not None:
            guide.check_budget(limit)
        guides = [guide.start(prompt.partition(ff.STORY)[2]) for _ in range(n)] if guide else None
        rngs = [np.random.default_rng(None if params.seed is None else [params.seed, s]) for s in seeds]
        decoders = [StreamDecoder(self.tok, self.specials, decode=self.plain is not None) for _ in range(n)]
        texts, tokens, reasons = [""] * n, [[] for _ in range(n)], [None] * n
        self._check_memory(n, len(ids) + limit)
        t0 = time.perf_counter()
        logits = self.backend.start(ids, n, limit)
        first = None
        for step in range(limit):
            live = [i for i in range(n) if not reasons[i]]
            rows = logits[live]
            early = [j for j, i in enumerate(live) if len(tokens[i]) < params.min_new_tokens]
            if early:
                rows = rows.copy()
                rows[np.ix_(early, self.stops)] = -np.inf
            seen = [lambda i=i: ids + tokens[i] for i in live]
            drawn = dict(
                zip(live, next_tokens(rows, params, [rngs[i] for i in live], seen).tolist(), strict=True)
            )
            if guides:
                _guide(drawn, rows, live, guides, [limit - len(tokens[i]) for i in live], params, rngs, seen)
            first = first or time.perf_counter()
            picks = [drawn.get(i, self.eos) for i in range(n)]
            for i in live:
                tok = drawn[i]
                if tok in self.stops:
                    reasons[i] = "eos"
                    continue
                tokens[i].append(tok)
                piece = decoders[i].push(tok)
                texts[i], piece, reasons[i] = _apply_stop(texts[i], piece, params.stop)
                if stream and piece:
                    yield piece
            if all(reasons) or step == limit - 1:  # no forward pass for logits nobody reads
                break
            logits = self.backend.advance(picks)
        elapsed = time.perf_counter() - t0
        out = []
        for i in range(n):
            if not reasons[i]:
                tail = decoders[i].flush()
                texts[i] += tail
                if stream and tail:
                    yield tail
            stats = _stats(self.load_seconds, t0, first, elapsed, len(tokens[i]), len(ids))
            out.append(Completion(texts[i], tokens[i], reasons[i] or "length", clipped, stats))
        return out


def _guide(drawn: dict, rows: np.ndarray, live: list[int], guides: list, left: list[int], params, rngs, seen):
    """Let each live sequence's guide overrule its draw (in place): a forced token replaces it; a banned
    one is drawn again from the row with the bans at -inf. Drawing first and again only when banned
    samples the same distribution as masking first (p(t) / (1 - p(banned)) either way), and a guided
    fable equals the unguided one, token for token, until the first step a constraint changes."""
    again = []
    for j, i in enumerate(live):
        tok = guides[i].forced(left[j])
        bans = None if tok is not None else guides[i].banned()
        if tok is not None:
            drawn[i] = tok
        elif bans is not None and (bans == drawn[i]).any():
            again.append((j, i, bans))
    if again:
        masked = rows[[j for j, _, _ in again]].copy()
        for r, (_, _, bans) in enumerate(again):
            masked[r, bans] = -np.inf
        redrawn = next_tokens(masked, params, [rngs[i] for _, i, _ in again], [seen[j] for j, _, _ in again])
        for (_, i, _), tok in zip(again, redrawn.tolist(), strict=True):
            drawn[i] = tok
    for i in live:
        drawn[i] = guides[i].drawn(drawn[i])
        guides[i].push(drawn[i])


def _apply_stop(text: str, piece: str, stops: tuple[str, ...]) -> tuple[str, str, str | None]:
    """Append `piece`; when a stop string appears, cut the text before it and report 'stop'."""
    new = text + piece
    for stop in stops:
        at = new.find(stop, max(0, len(text) - len(stop) + 1))
        if at >= 0:
            return new[:at], new[len(text) : at] if at > len(text) else "", "stop"
    return new, piece, None


def available_memory() -> int | None:
    """Bytes this process may still allocate (MemAvailable, and the cgroup's limit when lower); None when
    the system does not say (not Linux)."""
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        free = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return min(free, int(limit) - used) if limit.isdigit() else free
    except (OSError, ValueError):
        return free


def check_memory(n: int, tokens: int, kv_bytes: int, vocab: int) -> None:
    """Refuse n batched sequences of `tokens` tokens whose KV cache and logits would not fit in memory,
    before anything is allocated (an oversized batch is otherwise killed by the OS, with no message).
    The estimate counts past and present KV copies and three logits buffers per sequence."""
    need = n * (2 * tokens * kv_bytes + 3 * vocab * 4)
    free = available_memory()
    if free is None or need <= free:
        return
    fits = max(0, free // max(1, need // n))
    raise GenerationError(
        f"{n:,} completions of up to {tokens:,} tokens need about {need / 1e9:.1f} GB for the KV cache and "
        f"logits but {free / 1e9:.1f} GB is available; ask for at most {fits:,} (-n) or fewer tokens"
    )


def _stats(load: float, t0: float, first: float | None, elapsed: float, new: int, prompt: int) -> dict:
    return {
        "load_s": round(load, 4),
        "prompt_tokens": prompt,
        "new_tokens": new,
        "ttft_s": round((first or t0) - t0, 4),
        "tokens_per_s": round(new / elapsed, 1) if elapsed > 0 else 0.0,
    }
