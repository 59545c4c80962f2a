"""Train/validation split of a fables file, after dropping duplicates and unsafe fables, as Parquet.

    fabulist data split fables.jsonl --out data/ [--valid-fraction 0.05] [--seed 0] [--near-threshold 0.8]
                                                 [--safety drop|keep]

Pass 1 reads the file, checks every record's field types, fingerprints its text (`dedup`) and screens it
(`safety.screen`); the duplicates to drop are then decided (first occurrence kept), and with
`--safety drop` (the default) every fable with a safety hit is dropped too (`--safety keep` keeps them;
both report them). Pass 2 streams the kept records into
`train.parquet` and `valid.parquet`; a record goes to validation when a hash of (seed, prompt_hash) falls
below the fraction, so a prompt never lands in both splits. Each output is written to a temp file in the
output folder and renamed into place; `split.json` (counts, fractions, seed, duplicates dropped, the
source's sha256) is written last. Its "safety" entry holds the mode, the fables flagged (duplicates
included), per category the fables, hits and first examples, and `dropped`: the flagged fables left out
that were not already dropped as duplicates, so records_in = duplicates + dropped + train + valid.

Columns: every field of `records.COLUMNS` (the teacher's FABLE_FIELDS, then an imported fable's
free-text fields), in order, a missing field as null. `elements` (ids) and `elements_text` (free text, each
one line without a control token of the fable format) are structs of the six kinds (strings), `shown` a
list of strings, `sampling` and `source` (free-form) JSON strings, `moral_line` a bool, token counts and
`seed` int64, `llm_inference_time` float64, the rest strings (a field added to COLUMNS later becomes a
string column: text as is, other values as JSON). All load with `datasets.load_dataset("parquet", ...)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fabulist import fable_format as ff
from fabulist.data import dedup
from fabulist.data.safety import Tally
from fabulist.data.stats import REQUIRED, check_threshold, count_records, progress_bar
from fabulist.elements import KINDS
from fabulist.errors import FabulistError
from fabulist.records import COLUMNS, RecordError, dumps, file_sha256, read_jsonl, write_atomic

OUTPUTS = ("train.parquet", "valid.parquet", "split.json")
BATCH = 4096
SAFETY_MODES = ("drop", "keep")
_INT_FIELDS = ("llm_input_tokens", "llm_output_tokens", "seed")
_FLOAT_FIELDS = ("llm_inference_time",)


def split_dataset(
    path: str | Path,
    out_dir: str | Path,
    valid_fraction: float = 0.05,
    seed: int = 0,
    near_threshold: float = 0.8,
    near_dedup: bool = True,
    force: bool = False,
    progress: bool | None = None,
    safety: str = "drop",
) -> dict:
    """Deduplicate, screen and split `path` into out_dir/{train,valid}.parquet; return split.json's dict."""
    path, out_dir = Path(path), Path(out_dir)
    if not 0 < valid_fraction < 1:
        raise FabulistError(f"--valid-fraction must be between 0 and 1 (exclusive), got {valid_fraction}")
    if safety not in SAFETY_MODES:
        raise FabulistError(f"--safety must be one of {', '.join(SAFETY_MODES)}, got {safety!r}")
    check_threshold(near_threshold)
    _check_outputs(out_dir, force)
    total = count_records(path)
    fingerprints, tally, flagged = _scan(path, total, progress)
    if not fingerprints.keys:
        raise FabulistError(f"{path}: no fables in the file; nothing to split")
    found = dedup.find_duplicates(fingerprints, near_threshold, near=near_dedup)
    duplicates = found.dropped()
    unsafe = flagged - duplicates if safety == "drop" else set()
    (out_dir / "split.json").unlink(missing_ok=True)  # with --force: no stale summary beside new files
    counts = _write_splits(path, out_dir, duplicates | unsafe, valid_fraction, seed)
    summary = {
        "source": str(path),
        "source_sha256": file_sha256(path),
        "seed": seed,
        "valid_fraction": valid_fraction,
        "near_threshold": near_threshold if near_dedup else None,
        "records_in": len(fingerprints.keys),
        "dropped": {"exact_duplicates": len(found.exact), "near_duplicates": len(found.near)},
        "safety": {
            "mode": safety,
            "dropped": len(unsafe),
            "records_flagged": tally.flagged,
            "categories": tally.per_category,
        },
        **counts,
        "columns": list(COLUMNS),
    }
    write_atomic(out_dir / "split.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _check_outputs(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FabulistError(f"--out {out_dir} is a file; give a folder")
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not force:
        raise FabulistError(
            f"{out_dir / existing[0]} exists; pass --force to overwrite, or choose another --out"
        )


def is_valid(prompt_hash: str, seed: int, fraction: float) -> bool:
    """Whether a prompt goes to validation: a 64-bit blake2b of (seed, prompt_hash) below the fraction."""
    digest = hashlib.blake2b(f"{seed}:{prompt_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") < fraction * 2**64


def _scan(path: Path, total: int, progress: bool | None) -> tuple[dedup.Fingerprints, Tally, set[int]]:
    """Pass 1: check every record (so nothing is written for a bad file), fingerprint and screen its
    fable; return the fingerprints, the safety tally and the indices of the fables with a hit."""
    fingerprints, tally, flagged = dedup.Fingerprints(), Tally(), set()
    for number, record in enumerate(progress_bar(read_jsonl(path, REQUIRED), total, progress, "scan"), 1):
        row(record, f"{path}: record {number}")
        fingerprints.add(record["fable"])
        if tally.add(record["fable"], record["prompt_hash"]):
            flagged.add(number - 1)
    return fingerprints.finish(), tally, flagged


def row(record: dict, where: str = "record") -> dict:
    """The record as a Parquet row of COLUMNS; a field of the wrong type raises RecordError."""
    out = {}
    for name in COLUMNS:
        value = record.get(name)
        if value is None and name not in ("fable", "prompt_hash"):
            out[name] = None
        elif name in _CONVERT:
            out[name] = _CONVERT[name](value, name, where)
        else:  # text, or a field added to COLUMNS later: text as is, anything else as JSON text
            out[name] = value if isinstance(value, str) else dumps(value)
    return out


def _text(value, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{where}: field {name!r} must be text, got {type(value).__name__}")
    return value


def _number(value, name: str, where: str) -> int | float:
    kinds = (int, float) if name in _FLOAT_FIELDS else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise RecordError(f"{where}: field {name!r} must be a number, got {value!r}")
    return value


def _elements(value, name: str, where: str) -> dict:
    bad = not isinstance(value, dict) or set(value) - set(KINDS)
    if bad or not all(v is None or isinstance(v, str) for v in value.values()):
        raise RecordError(f"{where}: field {name!r} must map {', '.join(KINDS)} to element ids")
    return {kind: value.get(kind) for kind in KINDS}


def _element_texts(value, name: str, where: str) -> dict:
    """Free-text elements: {kind: one line of text}; a line break or control token would become header
    structure in training (fable_format.header), so it is refused here, before a split is written."""
    bad = not isinstance(value, dict) or set(value) - set(KINDS)
    if bad or not all(v is None or isinstance(v, str) for v in value.values()):
        raise RecordError(f"{where}: field {name!r} must map {', '.join(KINDS)} to text")
    for kind, text in value.items():
        try:
            ff.check_text(f"{where}: field {name!r}: the {kind}", text or "", one_line=True)
        except ValueError as exc:
            raise RecordError(str(exc)) from None
    return {kind: value.get(kind) for kind in KINDS}


def _flag(value, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecordError(f"{where}: field {name!r} must be true or false, got {value!r}")
    return value


def _kinds(value, name: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{where}: field {name!r} must be a list of element kinds")
    return value


_TEXT_FIELDS = ("language", "prompt", "prompt_hash", "fable", "llm_name", "generation_datetime",
                "pipeline_version", "teacher", "variant", "beginning")  # fmt: skip
_CONVERT = {
    **{name: _text for name in _TEXT_FIELDS},
    **{name: _number for name in _INT_FIELDS + _FLOAT_FIELDS},
    "elements": _elements,
    "shown": _kinds,
    "sampling": lambda value, name, where: dumps(value),
    "elements_text": _element_texts,
    "moral_line": _flag,
    "source": lambda value, name, where: dumps(value),
}


def schema():
    """Arrow schema of the Parquet files: one column per COLUMNS entry, in that order."""
    import pyarrow as pa

    types = {name: pa.string() for name in COLUMNS}
    types.update({name: pa.int64() for name in _INT_FIELDS})
    types.update({name: pa.float64() for name in _FLOAT_FIELDS})
    types["elements"] = pa.struct([(kind, pa.string()) for kind in KINDS])
    types["elements_text"] = pa.struct([(kind, pa.string()) for kind in KINDS])
    types["shown"] = pa.list_(pa.string())
    types["moral_line"] = pa.bool_()
    return pa.schema([(name, types[name]) for name in COLUMNS])


def _write_splits(path: Path, out_dir: Path, dropped: set[int], fraction: float, seed: int) -> dict:
    """Pass 2: stream kept records into the two Parquet files; return per-split counts."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise FabulistError("split needs pyarrow: pip install 'fabulist[data]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {"train": "train.parquet", "valid": "valid.parquet"}
    stats = {split: {"records": 0, "prompts": set()} for split in names}
    with _atomic(out_dir / names["train"]) as train, _atomic(out_dir / names["valid"]) as valid:
        writers = {s: pq.ParquetWriter(p, schema()) for s, p in (("train", train), ("valid", valid))}
        batches: dict[str, list[dict]] = {"train": [], "valid": []}
        for split, r in _routed(path, dropped, fraction, seed):
            batches[split].append(r)
            stats[split]["records"] += 1
            stats[split]["prompts"].add(r["prompt_hash"])
            if len(batches[split]) >= BATCH:
                writers[split].write_table(pa.Table.from_pylist(batches[split], schema=schema()))
                batches[split] = []
        for split, writer in writers.items():
            writer.write_table(pa.Table.from_pylist(batches[split], schema=schema()))
            writer.close()
    kept = sum(s["records"] for s in stats.values())
    return {
        split: {"file": names[split], "records": s["records"], "prompts": len(s["prompts"]),
                "fraction": s["records"] / kept if kept else 0.0}
        for split, s in stats.items()
    }  # fmt: skip


def _routed(path: Path, dropped: set[int], fraction: float, seed: int) -> Iterator[tuple[str, dict]]:
    for index, record in enumerate(read_jsonl(path, REQUIRED)):
        if index not in dropped:
            split = "valid" if is_valid(record["prompt_hash"], seed, fraction) else "train"
            yield split, row(record)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`, else delete it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a dataset should be as readable as any new file
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
