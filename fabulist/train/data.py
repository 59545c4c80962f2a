"""Training data: fable records -> documents -> one packed token stream -> fixed-length blocks.

    fabulist train --data train.parquet --valid valid.parquet ...

Records come from a Parquet split (`fabulist data split`) or a fables JSONL file. Each becomes one
document (`fabulist.fable_format.training_text`); documents are concatenated (each ends with
`<|endoftext|>`, which separates them) and cut into blocks of `context + 1` tokens with stride
`context`. The order of blocks is a permutation per epoch from a seeded generator, so a position
(epoch, offset) names exactly which blocks come next: that is what a checkpoint stores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from fabulist import fable_format as ff
from fabulist.data.records import read_jsonl
from fabulist.errors import FabulistError


class DataError(FabulistError):
    """A training or validation file that cannot be used."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_records(path: str | Path) -> list[dict]:
    """Fable records from .parquet or .jsonl; `elements`/`shown` may be stored as JSON strings."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            wanted = [
                c for c in ("fable", "elements", "shown", "variant", "prompt_hash") if c in schema.names
            ]
            rows = pq.read_table(path, columns=wanted).to_pylist()  # not the teacher's bookkeeping
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc.__class__.__name__})") from None
    else:
        rows = list(read_jsonl(path, ("fable", "elements")))
    for row in rows:
        for key in ("elements", "shown"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        if "fable" not in row or "elements" not in row:
            raise DataError(f"{path}: records need 'fable' and 'elements' fields")
    return rows


def documents(records: list[dict]) -> list[str]:
    return [ff.training_text(r) for r in records]


def encode(tok, texts: list[str], chunk: int = 4096, progress: bool = False) -> np.ndarray:
    """One flat token stream for all documents, encoded a chunk at a time (a tokenizers Encoding keeps
    strings and offsets per token: hundreds of thousands at once would take many GB)."""
    from tqdm import tqdm

    dtype = np.uint16 if tok.get_vocab_size() <= 1 << 16 else np.int32
    parts = []
    bar = tqdm(total=len(texts), unit="doc", desc="tokenizing", disable=not progress or len(texts) < 50_000)
    for start in range(0, len(texts), chunk):
        ids = [e.ids for e in tok.encode_batch(texts[start : start + chunk], add_special_tokens=False)]
        parts.append(np.fromiter((t for doc in ids for t in doc), dtype=dtype, count=sum(map(len, ids))))
        bar.update(len(ids))
    bar.close()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


class Blocks:
    """Fixed-length training blocks of a token stream, in a seeded order per epoch."""

    def __init__(self, tokens: np.ndarray, context: int, seed: int):
        self.tokens, self.context, self.seed = tokens, context, seed
        self.count = (len(tokens) - 1) // context
        self._order: tuple[int, np.ndarray] | None = None

    def block(self, i: int) -> np.ndarray:
        start = i * self.context
        return self.tokens[start : start + self.context + 1].astype(np.int64)

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])  # a pure function of (seed, epoch)
            self._order = (epoch, rng.permutation(self.count))
        return self._order[1]

    def take(self, position: tuple[int, int], n: int) -> tuple[np.ndarray, tuple[int, int]]:
        """The next `n` blocks from `position`, as an (n, context + 1) array, and the new position."""
        epoch, offset = position
        picked = []
        while len(picked) < n:
            order = self.order(epoch)
            step = min(n - len(picked), self.count - offset)
            picked.extend(order[offset : offset + step])
            offset += step
            if offset == self.count:
                epoch, offset = epoch + 1, 0
        return np.stack([self.block(i) for i in picked]), (epoch, offset)
