"""JSONL records: the prompt and fable formats, and crash-safe reading and writing.

A prompts file (`fabulist data prompts`) holds one prompt per line:

    {"prompt_hash": "3f9a0c1d2e4b5a69", "index": 0, "variant": "full" | "partial" | "beginning",
     "elements": {"character": "fox", "trait": "brave", ...},   # ids of all six elements
     "shown": ["character", "moral"],                             # the elements the instruction names
     "prompt": "Write a fable ...",                               # the instruction a teacher LLM reads
     "beginning": null | "A brave fox lived by the river. One",   # story start to continue
     "opening_seed": null | 123,                                  # seed the beginning was cut from
     "language": "en", "sampler": {"seed": 0, "shard": "0/1", "region": "train"}}

A fables file (`fabulist data generate`) holds one fable per line, with TinyFabulist's fields and ours:

    {"language", "prompt", "prompt_hash", "fable", "llm_name", "llm_input_tokens", "llm_output_tokens",
     "llm_inference_time", "generation_datetime", "pipeline_version",
     "teacher": "procedural" | "openai", "variant", "elements", "shown", "beginning", "sampling": {...},
     "seed"}

Files are appended to, a record a line, flushed and fsynced; a crash can leave at most one torn last
line, which `AppendLog` cuts off when it opens the file again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from fabulist.errors import FabulistError

PIPELINE_VERSION = "fabulist-data-1"
VARIANTS = ("full", "partial", "beginning")
PROMPT_FIELDS = (
    "prompt_hash", "index", "variant", "elements", "shown", "prompt", "beginning", "opening_seed",
    "language", "sampler",
)  # fmt: skip
FABLE_FIELDS = (
    "language", "prompt", "prompt_hash", "fable", "llm_name", "llm_input_tokens", "llm_output_tokens",
    "llm_inference_time", "generation_datetime", "pipeline_version", "teacher", "variant", "elements",
    "shown", "beginning", "sampling", "seed",
)  # fmt: skip


class RecordError(FabulistError, ValueError):
    """A JSONL file or one of its records is malformed."""


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[dict]:
    """Yield the records of a JSONL file; a bad line raises RecordError naming file and line number."""
    path = Path(path)
    required = tuple(required)
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise RecordError(f"{path}:{number}: expected a JSON object")
            missing = [f for f in required if f not in record]
            if missing:
                raise RecordError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            yield record


class AppendLog:
    """An append-only JSONL file: every `append` is written, flushed and fsynced before it returns.

    Opening repairs a torn last line (the tail after the final newline, left by a crash mid-write) by
    truncating it away, so the record is produced again rather than kept half-written or duplicated.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.repaired_bytes = self._repair()
        self._handle = self.path.open("a", encoding="utf-8")

    def _repair(self) -> int:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return 0
        with self.path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return 0
            keep = _last_newline_end(f, size)
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
            return size - keep

    def append(self, records: Iterable[dict]) -> int:
        """Write records as lines in one flush + fsync; return how many were written."""
        lines = [dumps(r) + "\n" for r in records]
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        return len(lines)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _last_newline_end(f, size: int, block: int = 1 << 16) -> int:
    """Offset just past the last b'\\n' in a binary file (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        chunk = f.read(end - start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file through a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fable_record(
    prompt: dict,
    fable: str,
    *,
    teacher: str,
    llm_name: str,
    input_tokens: int,
    output_tokens: int,
    seconds: float,
    sampling: dict,
    seed: int,
) -> dict:
    """One fables-file record for `prompt`, with TinyFabulist's fields first."""
    return {
        "language": prompt.get("language", "en"),
        "prompt": prompt["prompt"],
        "prompt_hash": prompt["prompt_hash"],
        "fable": fable,
        "llm_name": llm_name,
        "llm_input_tokens": input_tokens,
        "llm_output_tokens": output_tokens,
        "llm_inference_time": round(seconds, 6),
        "generation_datetime": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "pipeline_version": PIPELINE_VERSION,
        "teacher": teacher,
        "variant": prompt["variant"],
        "elements": prompt["elements"],
        "shown": prompt.get("shown", list(prompt["elements"])),
        "beginning": prompt.get("beginning"),
        "sampling": sampling,
        "seed": seed,
    }
