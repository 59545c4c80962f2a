"""Training data: fable records -> documents -> token rows -> (inputs, targets) batches.

    fabulist train --data train.parquet --valid valid.parquet [--packing docs|stream] [--loss-on story|all]

Records come from a Parquet split (`fabulist data split`) or a fables JSONL file. Each becomes one
document (`fabulist.fable_format.training_text`): a header naming the elements, `<|story|>`, the fable,
`<|endoftext|>`. The documents are shuffled once (seeded) and laid out as one token stream. Two ways to
cut it into training rows:

- `docs` (the default): a row holds whole documents only, packed greedily in stream order (best fit in a
  window of the next documents) into at most `context + 1` tokens and padded after the last one; padding is
  never a target. A fable is never separated from its header, so its story and `Moral:` line are always
  trained with the header that asks for them. A document longer than `context + 1` tokens cannot be whole
  in any row: it is cut into pieces of `context + 1` tokens every `context` tokens (the stream rule, within
  that document), the last piece packed like a document; such documents are counted (`Rows.split`) and
  reported, since their later pieces miss the header (choose a context that holds the fables).
- `stream`: fixed blocks of `context + 1` tokens every `context` tokens, across document boundaries (the
  recipe before documents were kept whole; about length/context of the fables lose their header).

Targets: `--loss-on story` (the default) takes the loss on the story only: a target inside a header
(`<|prompt|>` through `<|story|>`; the elements are drawn at random, so predicting them teaches nothing)
is ignored, like padding; `all` takes it on every real token. Validation is always the mean negative
log-likelihood per story token of validation documents, each alone in its row (its first `context + 1`
tokens when longer), so runs with any packing and loss compare.

A batch is as wide as its longest row. The order of rows is a permutation per epoch from a seeded
generator, with rows of similar length grouped into the same batch (`docs`: fables run about 250-400
tokens, and a random batch of 8 would be a quarter padding; grouped, under 1%), so a position (epoch,
offset) names exactly which rows come next: that is what a checkpoint stores.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from fabulist import fable_format as ff
from fabulist.errors import FabulistError
from fabulist.records import read_jsonl


class DataError(FabulistError):
    """A training or validation file that cannot be used."""


def read_records(path: str | Path) -> list[dict]:
    """Fable records from .parquet or .jsonl; `elements`/`shown` may be stored as JSON strings."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            columns = ("fable", "elements", "shown", "variant", "prompt_hash", "elements_text")
            wanted = [c for c in columns if c in schema.names]
            rows = pq.read_table(path, columns=wanted).to_pylist()  # not the teacher's bookkeeping
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc.__class__.__name__})") from None
    else:
        rows = list(read_jsonl(path, ("fable",)))
    for number, row in enumerate(rows, 1):
        for key in ("elements", "shown", "elements_text"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        # element ids (a teacher's record) or free-text elements (an imported one, whose ids are null)
        if "fable" not in row or not any(isinstance(row.get(k), dict) for k in ("elements", "elements_text")):
            raise DataError(f"{path}: record {number}: records need 'fable' and 'elements' (element ids) or "
                            "'elements_text' (free-text elements)")  # fmt: skip
    return rows


def documents(records: list[dict]) -> list[str]:
    return [ff.training_text(r) for r in records]


IGNORE = -100  # cross_entropy's ignore_index: padding and (with --loss-on story) header targets
Batch = tuple[np.ndarray, np.ndarray]  # (inputs, targets), each (rows, width) int64


def encode(tok, texts: list[str], chunk: int = 4096, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One flat token stream for all documents and each document's start offset (len(texts) + 1 of
    them), encoded a chunk at a time (a tokenizers Encoding keeps strings and offsets per token: hundreds
    of thousands at once would take many GB)."""
    from tqdm import tqdm

    dtype = np.uint16 if tok.get_vocab_size() <= 1 << 16 else np.int32
    parts, lengths = [], []
    bar = tqdm(total=len(texts), unit="doc", desc="tokenizing", disable=not progress or len(texts) < 50_000)
    for start in range(0, len(texts), chunk):
        ids = [e.ids for e in tok.encode_batch(texts[start : start + chunk], add_special_tokens=False)]
        parts.append(np.fromiter((t for doc in ids for t in doc), dtype=dtype, count=sum(map(len, ids))))
        lengths.extend(map(len, ids))
        bar.update(len(ids))
    bar.close()
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)), offsets


def header_mask(tokens: np.ndarray, bos: int, story: int) -> np.ndarray:
    """True at every header token: from each `<|prompt|>` through the next `<|story|>`."""
    marks = np.zeros(len(tokens) + 1, dtype=np.int32)
    marks[np.flatnonzero(tokens == bos)] += 1
    marks[np.flatnonzero(tokens == story) + 1] -= 1
    return np.cumsum(marks[:-1]) > 0


class Rows:
    """Training rows of a token stream, in a seeded order per epoch; `take` returns (inputs, targets).

    tokens: the stream; offsets: document starts (len = documents + 1); header: header_mask(tokens);
    packing: "docs" or "stream" (see the module docstring); story_loss: ignore header targets; group: the
    batch size, to batch rows of similar length together (docs only).
    """

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, header: np.ndarray, context: int,
                 seed: int, pad: int, packing: str = "docs", story_loss: bool = True, window: int = 64,
                 truncate: bool = False, group: int = 1):  # fmt: skip
        if packing not in ("docs", "stream"):
            raise DataError(f"unknown packing {packing!r}; choose docs or stream")
        self.tokens, self.header, self.context, self.seed, self.pad = tokens, header, context, seed, pad
        # window: documents looked ahead when packing; truncate: keep only the first row of an over-long
        # document (validation) instead of cutting it into pieces (training)
        self.story_loss, self.window, self.truncate = story_loss, window, truncate
        self.split = 0
        if packing == "stream":
            starts = np.arange((len(tokens) - 1) // context, dtype=np.int64) * context
            self.spans = [[(int(s), int(s) + context + 1)] for s in starts]
        else:
            self.spans = self._pack(offsets)
        self.count = len(self.spans)
        self.lengths = np.array([sum(b - a for a, b in row) for row in self.spans], dtype=np.int64)
        self.real_tokens = int(self.lengths.sum())
        self.group = group if packing == "docs" else 1  # batch rows of similar length (see `order`)
        self._order: tuple[int, np.ndarray] | None = None

    def _pack(self, offsets: np.ndarray) -> list[list[tuple[int, int]]]:
        """Best fit in a window: each row takes the first unused document, then keeps adding the longest
        unused one of the next `window` documents that still fits, until none does (window 0: one
        document per row)."""
        cap = self.context + 1
        docs = [(int(a), int(b)) for a, b in itertools.pairwise(offsets) if b - a > 1]
        self.split = sum(1 for a, b in docs if b - a > cap)
        pending = []
        for a, b in docs:
            if b - a <= cap or self.truncate:
                pending.append((a, min(b, a + cap)))
            else:
                pending.extend((s, min(b, s + cap)) for s in range(a, b - 1, self.context))
        rows, i, used = [], 0, np.zeros(len(pending), dtype=bool)
        while i < len(pending):
            if used[i]:
                i += 1
                continue
            row, room = [pending[i]], cap - (pending[i][1] - pending[i][0])
            used[i] = True
            while True:
                best, best_len = -1, 0
                for j in range(i + 1, min(len(pending), i + 1 + self.window)):
                    n = pending[j][1] - pending[j][0]
                    if not used[j] and best_len < n <= room:
                        best, best_len = j, n
                if best < 0:
                    break
                row.append(pending[best])
                used[best] = True
                room -= best_len
            rows.append(row)
            i += 1
        return rows

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row i's tokens and targets-to-ignore mask (same length; the first token is never a target)."""
        parts = self.spans[i]
        toks = np.concatenate([self.tokens[a:b] for a, b in parts]).astype(np.int64)
        ignore = np.concatenate([self.header[a:b] for a, b in parts]) if self.story_loss else None
        if ignore is None:
            ignore = np.zeros(len(toks), dtype=bool)
        return toks, ignore

    def batch(self, indices) -> Batch:
        """(inputs, targets) of the rows, each (n, W) with W the longest row less one, padded with the
        pad token and IGNORE targets."""
        rows = [self.row(int(i)) for i in indices]
        width = max(len(t) for t, _ in rows)
        x = np.full((len(rows), width), self.pad, dtype=np.int64)
        y = np.full((len(rows), width), IGNORE, dtype=np.int64)
        for r, (toks, ignore) in enumerate(rows):
            x[r, : len(toks)] = toks
            y[r, : len(toks)] = np.where(ignore, IGNORE, toks)
        return x[:, :-1], y[:, 1:]

    def order(self, epoch: int) -> np.ndarray:
        """The rows of an epoch: a seeded permutation; with `group`, rows of similar length are brought
        together so that a batch is padded little: each run of 64 groups of the permutation is sorted by
        length, cut into groups, and the groups are shuffled."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])  # a pure function of (seed, epoch)
            order = rng.permutation(self.count)
            if self.group > 1:
                lengths, size, groups = self.lengths[order], 64 * self.group, []
                for start in range(0, self.count, size):
                    by_length = np.argsort(lengths[start : start + size], kind="stable")
                    chunk = order[start : start + size][by_length]
                    groups += [chunk[i : i + self.group] for i in range(0, len(chunk), self.group)]
                order = np.concatenate([groups[i] for i in rng.permutation(len(groups))])
            self._order = (epoch, order)
        return self._order[1]

    @property
    def tokens_per_row(self) -> float:
        """Mean input tokens per row (padding not counted)."""
        return (self.real_tokens - self.count) / max(1, self.count)

    def take(self, position: tuple[int, int], n: int) -> tuple[Batch, tuple[int, int]]:
        """The next `n` rows from `position` as (inputs, targets), and the new position."""
        epoch, offset = position
        picked = []
        while len(picked) < n:
            order = self.order(epoch)
            step = min(n - len(picked), self.count - offset)
            picked.extend(order[offset : offset + step])
            offset += step
            if offset == self.count:
                epoch, offset = epoch + 1, 0
        return self.batch(picked), (epoch, offset)
