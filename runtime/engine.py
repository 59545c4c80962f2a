"""One `Generator` over any backend: prompts in the training format, sampling, stop rules, streaming.

    fabulist generate --character fox --moral "..." --format onnx --quant int4 -n 3 --stats

A backend holds a model and its KV cache and answers `start(prompt_ids, n, new_tokens)` (prefill once, n
sequences continuing the same prompt, at most new_tokens to follow: a backend may size its KV cache to
that), `advance(tokens)` (one new token per sequence), and where it can, `start_batch(prompts,
new_tokens)` (several prompts, ragged, one row each; `can_batch(prompts, new_tokens)` says when it
cannot), all returning next-token logits of shape (rows, vocab). Backends that cannot batch say
`batched = False` and the generator runs their rows one after another.

Every row has its own prompt, sampling rule, seed, limits and stop strings (a `Row`); `_steps` is the one
decode loop, for `fabulist generate` (n rows of one prompt) and for `fabulist serve`'s batches of
strangers (runtime/batcher.py) alike. A row's i-th completion of seed S draws from `default_rng([S, i])`
and a backend's logits for a row do not depend on the rows beside it (within float tolerance:
tests/runtime/test_batch.py), so a row gives the same tokens in any batch as alone.

With a `guide` (runtime/guide.py: `--guide`), each row keeps a guide state that forces tokens or bans
some before the sampler draws (the requested moral line, the character's name); without one the loop is
the plain sampler's, token for token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from fabulist import fable_format as ff
from fabulist.errors import FabulistError
from fabulist.runtime.detok import StreamDecoder
from fabulist.runtime.guide import Guide, GuideState
from fabulist.runtime.sampling import SamplingParams, next_tokens


class GenerationError(FabulistError):
    """A generation request that cannot run: prompt too long, missing artifact, bad parameter."""


class Backend(Protocol):
    """What the Generator needs of an engine (OnnxBackend, GenaiBackend, LlamaCppBackend, and the eval
    stage's TorchBackend as a peer). Optional: `start_batch(prompts, new_tokens)` for ragged prompts as
    one batch, and `can_batch(prompts, new_tokens)` where an engine refuses some batches."""

    context: int
    batched: bool

    def check_vocab(self, vocab: int) -> None: ...  # BackendError when the graph's logits are not vocab wide

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray: ...

    def advance(self, tokens: list[int]) -> np.ndarray: ...


@dataclass
class Completion:
    text: str
    tokens: list[int]
    finish_reason: str  # "eos", "stop", "length"
    clipped_to: int | None = None  # max_new_tokens after clipping to the context, when it was clipped
    stats: dict = field(default_factory=dict)


@dataclass
class Row:
    """One sequence to decode. `params.max_new_tokens` is already within the context (see `budget`)."""

    ids: list[int]
    params: SamplingParams
    index: int = 0  # which completion of its seed: it draws from default_rng([seed, index])
    guide: GuideState | None = None
    clipped: int | None = None  # reported as Completion.clipped_to
    cancelled: object = None  # anything with is_set() (a threading.Event): the row stops at the next step


class Generator:
    """Text in, fables out, on one backend with its tokenizer (a `tokenizers.Tokenizer`)."""

    def __init__(self, backend: Backend, tokenizer, load_seconds: float = 0.0, artifact=None, plain=None):
        """plain: a runtime.plain.PlainFormat for a model that is not a fable model (its own BOS and
        end-of-text ids; text decoded by its tokenizer's decoder)."""
        self.backend, self.tok, self.load_seconds, self.artifact = backend, tokenizer, load_seconds, artifact
        self.vocab_size = tokenizer.get_vocab_size()  # once: the tokenizer builds its vocabulary to count it
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
            check_memory(n, tokens, getattr(self.backend, "kv_bytes", 0), self.vocab_size)

    def row(self, prompt: str, params: SamplingParams, index: int = 0, guide: Guide | None = None) -> Row:
        """A Row for `prompt`: its ids, its limit clipped to the context, its own guide state."""
        ids = self.encode(prompt)
        limit, clipped = self.budget(ids, params)
        if guide is not None:
            guide.check_budget(limit)
        state = guide.start(prompt.partition(ff.STORY)[2]) if guide is not None else None
        limited = params if clipped is None else replace(params, max_new_tokens=limit)
        return Row(ids, limited, index, state, clipped)

    def generate(
        self, prompt: str, params: SamplingParams, n: int = 1, guide: Guide | None = None
    ) -> list[Completion]:
        """n completions of the same prompt (batched where the backend can), each under `guide` if any."""
        if n < 1:
            raise GenerationError("n must be at least 1")
        return self._run(prompt, params, list(range(n)), guide)

    def generate_batch(
        self, prompts: list[str], params: list[SamplingParams], guide: Guide | None = None
    ) -> list[Completion]:
        """One completion of each prompt under its own params (seed, limits, stops, sampling rule), decoded
        as one batch where the backend can; each equals `generate(prompts[i], params[i])[0]`."""
        rows = [self.row(p, q, 0, guide) for p, q in zip(prompts, params, strict=True)]
        return self.decode(rows)

    def stream(self, prompt: str, params: SamplingParams, guide: Guide | None = None) -> Iterator[str]:
        """Text pieces of one completion as decoded; the generator returns the Completion at the end."""
        done = None
        for kind, _, value in self.events([self.row(prompt, params, 0, guide)]):
            if kind == "piece":
                yield value
            else:
                done = value
        return done

    def _run(self, prompt: str, params: SamplingParams, seeds: list[int], guide=None) -> list[Completion]:
        """The completions of `prompt` with these indexes of its seed (benchmarks run one at a time)."""
        base = self.row(prompt, params, seeds[0], guide)  # the prompt encoded once; a guide state per row
        story = prompt.partition(ff.STORY)[2]
        states = [guide.start(story) if guide is not None else None for _ in seeds]
        return self.decode([replace(base, index=i, guide=g) for i, g in zip(seeds, states, strict=True)])

    def decode(self, rows: list[Row]) -> list[Completion]:
        """Each row's Completion, in order (see `events`)."""
        out: list[Completion | None] = [None] * len(rows)
        for kind, r, value in self.events(rows):
            if kind == "done":
                out[r] = value
        return out

    def events(self, rows: list[Row]) -> Iterator[tuple[str, int, object]]:
        """("piece", row, text) as text is decoded and ("done", row, Completion) as each row ends, decoding
        rows together as far as the backend allows: all in one batch, else one batch per prompt (a
        backend without `start_batch`, or one whose `can_batch` refuses), else one row at a time."""
        for part in self.batches(rows):
            for kind, r, value in self._steps([rows[r] for r in part]):
                yield kind, part[r], value

    def batches(self, rows: list[Row]) -> list[list[int]]:
        """Row indexes in groups the backend can decode as one batch."""
        if not self.backend.batched:
            return [[r] for r in range(len(rows))]
        if self.can_batch(rows):
            return [list(range(len(rows)))]
        groups: dict[tuple, list[int]] = {}
        for r, row in enumerate(rows):
            groups.setdefault(tuple(row.ids), []).append(r)
        return list(groups.values())

    def can_batch(self, rows: list[Row]) -> bool:
        """Whether the backend decodes these rows as one batch (any rows of one prompt; rows of several
        prompts where it has `start_batch` and its `can_batch` does not refuse them)."""
        prompts = [row.ids for row in rows]
        new_tokens = max(row.params.max_new_tokens for row in rows)
        if not self.backend.batched or len({tuple(p) for p in prompts}) == 1:
            return True
        if not hasattr(self.backend, "start_batch"):
            return False
        check = getattr(self.backend, "can_batch", None)
        return check is None or check(prompts, new_tokens)

    def _start(self, prompts: list[list[int]], new_tokens: int) -> np.ndarray:
        if len({tuple(p) for p in prompts}) == 1:
            return self.backend.start(prompts[0], len(prompts), new_tokens)
        return self.backend.start_batch(prompts, new_tokens)

    def _steps(self, rows: list[Row]) -> Iterator[tuple[str, int, object]]:
        """The decode loop over rows the backend takes as one batch (see `events`)."""
        n, limits = len(rows), [row.params.max_new_tokens for row in rows]
        rngs = [_rng(row) for row in rows]
        decoders = [StreamDecoder(self.tok, self.specials, decode=self.plain is not None) for _ in rows]
        texts, tokens, reasons = [""] * n, [[] for _ in rows], [None] * n
        self._check_memory(n, max(len(row.ids) + limit for row, limit in zip(rows, limits, strict=True)))
        t0 = time.perf_counter()
        logits = self._start([row.ids for row in rows], max(limits))
        first = None

        def finish(i: int, reason: str):
            reasons[i] = reason
            if reason == "length":
                texts[i] += (tail := decoders[i].flush())
                if tail:
                    yield "piece", i, tail
            elapsed = time.perf_counter() - t0
            stats = _stats(self.load_seconds, t0, first, elapsed, len(tokens[i]), len(rows[i].ids))
            yield "done", i, Completion(texts[i], tokens[i], reason, rows[i].clipped, stats)

        while True:
            for i, row in enumerate(rows):
                if not reasons[i] and row.cancelled is not None and row.cancelled.is_set():
                    reasons[i] = "cancelled"
            live = [i for i in range(n) if not reasons[i]]
            if not live:
                break
            drawn = self._draw(logits, rows, live, tokens, rngs)
            first = first or time.perf_counter()
            for i in live:
                if drawn[i] in self.stops:
                    yield from finish(i, "eos")
                    continue
                tokens[i].append(drawn[i])
                piece = decoders[i].push(drawn[i])
                texts[i], piece, stopped = _apply_stop(texts[i], piece, rows[i].params.stop)
                if piece:
                    yield "piece", i, piece
                if stopped or len(tokens[i]) >= limits[i]:
                    yield from finish(i, stopped or "length")
            if all(reasons):
                break  # no forward pass for logits nobody reads
            logits = self.backend.advance([drawn.get(i, self.eos) for i in range(n)])

    def _draw(self, logits: np.ndarray, rows: list[Row], live: list[int], tokens: list, rngs: list) -> dict:
        """{row: token} for the live rows: end-of-text held back until a row's min_new_tokens, each row
        under its own sampling rule and seed, then its guide (if any) overruling the draw."""
        part = logits if len(live) == len(rows) else logits[live]  # every row live: no copy
        early = [j for j, i in enumerate(live) if len(tokens[i]) < rows[i].params.min_new_tokens]
        if early:
            part = part.copy() if part is logits else part
            part[np.ix_(early, self.stops)] = -np.inf
        seen = [lambda i=i: rows[i].ids + tokens[i] for i in live]
        params = [row.params for row in rows]
        drawn = dict(
            zip(live, draw(part, [params[i] for i in live], [rngs[i] for i in live], seen), strict=True)
        )
        if any(row.guide is not None for row in rows):
            left = [rows[i].params.max_new_tokens - len(tokens[i]) for i in live]
            _guide(drawn, part, live, [row.guide for row in rows], left, params, rngs, seen)
        return drawn


def _rng(row: Row) -> np.random.Generator:
    return np.random.default_rng(None if row.params.seed is None else [row.params.seed, row.index])


def draw(logits: np.ndarray, params: list[SamplingParams], rngs: list, seen: list) -> list[int]:
    """One token per row of (rows, V) logits, each row under its own sampling rule: rows that share a rule
    are drawn together by `next_tokens`, which gives each row the token it gives alone."""
    out = [0] * len(params)
    groups: dict[tuple, list[int]] = {}
    for j, p in enumerate(params):
        groups.setdefault((p.temperature, p.top_k, p.top_p, p.repetition_penalty), []).append(j)
    for group in groups.values():
        rows = logits if len(group) == len(params) else logits[group]
        picked = next_tokens(rows, params[group[0]], [rngs[j] for j in group], [seen[j] for j in group])
        for j, tok in zip(group, picked.tolist(), strict=True):
            out[j] = tok
    return out


def _guide(drawn: dict, rows: np.ndarray, live: list[int], guides: list, left: list[int], params, rngs, seen):
    """Let each live sequence's guide overrule its draw (in place): a forced token replaces it; a banned
    one is drawn again from the row with the bans at -inf. Drawing first and again only when banned
    samples the same distribution as masking first (p(t) / (1 - p(banned)) either way), and a guided
    fable equals the unguided one, token for token, until the first step a constraint changes. Rows
    without a guide state are left alone."""
    again = []
    for j, i in enumerate(live):
        if guides[i] is None:
            continue
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
        redrawn = draw(masked, [params[i] for _, i, _ in again], [rngs[i] for _, i, _ in again],
                       [seen[j] for j, _, _ in again])  # fmt: skip
        for (_, i, _), tok in zip(again, redrawn, strict=True):
            drawn[i] = tok
    for i in live:
        if guides[i] is not None:
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
