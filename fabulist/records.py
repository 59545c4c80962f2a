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

A fable imported from TinyFabulist (`fabulist data import`, see `tf1`) has `"elements": null` and three
more fields (`FREE_TEXT_FIELDS`): "elements_text" (its elements as free text, {kind: text}), "moral_line"
(whether it ends with a "Moral:" line) and "source" (its provenance). `COLUMNS`, the fields a split
carries into Parquet, are FABLE_FIELDS then these.

Files are appended to, a record a line, flushed and fsynced; a crash can leave at most one torn last
line, which `AppendLog` cuts off when it opens the file again. It cuts nothing else: a last line that is a
whole record gets its newline, and a file that is not a log of such records is refused as it is.

Every record is written through `dumps`, which scrubs the API key (OPENAI_API_KEY) and any bearer token
from every string, whatever field a server echoed it into.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
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
FREE_TEXT_FIELDS = ("elements_text", "moral_line", "source")  # imported records' (tf1.from_tf1)
COLUMNS = FABLE_FIELDS + FREE_TEXT_FIELDS


class RecordError(FabulistError, ValueError):
    """A JSONL file or one of its records is malformed."""


REDACTED = "[redacted]"
# A shorter OPENAI_API_KEY ("EMPTY", "none": a local server's) is no secret, and scrubbing it would eat words
# of fables: then only "Bearer <key>" is scrubbed.
MIN_SECRET = 8
# Any bearer token: 8 or more token characters, at least one a digit (so "Bearer of good news" stays).
_BEARER = re.compile(r"\bBearer\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")


def _secrets() -> list[str]:
    key = os.environ.get("OPENAI_API_KEY", "")
    return [s for s in (f"Bearer {key}" if key else "", key if len(key) >= MIN_SECRET else "") if s]


def scrub(value):
    """value with the API key and bearer tokens replaced by REDACTED in every string (and dict key)."""
    if isinstance(value, str):
        for secret in _secrets():
            value = value.replace(secret, REDACTED)
        return _BEARER.sub(REDACTED, value) if "Bearer" in value else value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def dumps(record: dict) -> str:
    """One JSONL line, with any secret scrubbed (the common case, none, costs one substring test)."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    escaped = [json.dumps(s, ensure_ascii=False)[1:-1] for s in _secrets()]
    if "Bearer" in text or any(s in text for s in escaped):
        text = json.dumps(scrub(record), ensure_ascii=False, separators=(",", ":"))
    return text


# The type a field must have wherever a reader requires it (a record from another tool, or edited by hand,
# is refused with one line naming the field instead of failing later inside a stage).
FIELD_TYPES = {"prompt_hash": str, "prompt": str, "fable": str, "variant": str, "elements": dict,
               "prompt_id": str, "text": str, "sample": int}  # fmt: skip
_KIND_NAMES = {str: "text", dict: "an object", int: "a whole number"}


def parse_line(line: bytes | str, where: str, required: Iterable[str] = ()) -> dict:
    """One JSONL line as a record (a JSON object with the `required` fields, each of its FIELD_TYPES type)
    or RecordError at `where`."""
    try:
        record = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except UnicodeDecodeError:
        raise RecordError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{where}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise RecordError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object")
    missing = [f for f in required if f not in record]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    for name in required:
        kind = FIELD_TYPES.get(name)
        value = record[name]
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            got = "null" if value is None else type(value).__name__
            raise RecordError(f"{where}: field {name!r} must be {_KIND_NAMES[kind]}, got {got}")
    return record


def read_json(path: str | Path) -> dict:
    """A JSON object file (a run's run.json, heldout.json, a summary), or RecordError naming it."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not UTF-8 text (a binary or corrupt file)") from None
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"{path}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_json_or_empty(path: str | Path) -> dict:
    """A JSON object from a file that may be absent or not ours to insist on (a model folder's optional
    generation_config.json, tokenizer_config.json): {} when it is missing, unreadable, not JSON or not an
    object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[dict]:
    """Yield the records of a JSONL file; a bad line raises RecordError naming file and line number."""
    path = Path(path)
    required = tuple(required)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield parse_line(line, f"{path}:{number}", required)


def file_kind(path: str | Path) -> str | None:
    """'prompts' or 'fables' by the first record of an existing file, 'empty', or None (anything else)."""
    with Path(path).open("rb") as f:
        head = f.read(1 << 20)
    first = next((line for line in head.split(b"\n") if line.strip()), None)
    if first is None:
        return "empty"
    try:
        record = parse_line(first, str(path))
    except RecordError:
        return None
    if "fable" in record:
        return "fables"
    return "prompts" if all(f in record for f in ("prompt_hash", "prompt", "elements")) else None


class AppendLog:
    """An append-only JSONL file: every `append` is written, flushed and fsynced before it returns.

    Opening looks before it changes anything. A last line without its newline is either a whole record
    (it gets its newline) or a record torn by a crash mid-write (it starts like one and does not parse: it
    is cut away, so the record is produced again rather than kept half-written or duplicated). Anything
    else there (binary, other text, JSON that is not such a record) raises RecordError and the file stays
    as it is. With `required`, every line is read and checked first (a JSON object with those fields) and
    handed to `each`; without, only the last line is looked at. `create=False`: the file is made on the
    first append rather than at once.
    """

    def __init__(self, path: str | Path, required: Iterable[str] = (), *, each=None, kind: str = "JSONL log",
                 create: bool = True):  # fmt: skip
        self.path = Path(path)
        self.required, self.kind = tuple(required), kind
        self.newline_added = False
        self.repaired_bytes = self._check(each or (lambda record: None)) if self.path.exists() else 0
        self._handle = None
        if create:
            self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")

    def _record(self, line: bytes, number: int) -> dict:
        try:
            return parse_line(line, f"{self.path}:{number}", self.required)
        except RecordError as exc:
            raise RecordError(f"{exc}; not a {self.kind}, so it is left as it is") from None

    def _check(self, each) -> int:
        """Check what the file holds and mend its last line; return the bytes cut."""
        with self.path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            keep = _last_newline_end(f, size)
            number = None
            if self.required:
                f.seek(0)
                for number, line in enumerate(f, 1):  # the last number is the tail's
                    if not line.endswith(b"\n"):
                        break
                    if line.strip():
                        each(self._record(line, number))
            f.seek(keep)
            tail = f.read(size - keep)
            if not tail:
                return 0
            if _torn(tail):
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
                return size - keep
            if tail.strip():
                f.seek(0)
                each(self._record(tail, number or f.read(keep).count(b"\n") + 1))
            f.seek(size)
            f.write(b"\n")  # a whole last record (or blanks) that only lacks its newline keeps its bytes
            f.flush()
            os.fsync(f.fileno())
            self.newline_added = True
            return 0

    def append(self, records: Iterable[dict]) -> int:
        """Write records as lines in one flush + fsync; return how many were written."""
        lines = [dumps(r) + "\n" for r in records]
        if lines:
            if self._handle is None:
                self._open()
            start = os.fstat(self._handle.fileno()).st_size  # every earlier append was flushed
            try:
                self._handle.write("".join(lines))
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError as exc:  # a full or failing disk: leave the file as it was, and name it
                self._drop(start)
                raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        return len(lines)

    def _drop(self, size: int) -> None:
        """Close the handle without the bytes that did not fit and cut the file back to `size` bytes."""
        handle, self._handle = self._handle, None
        with contextlib.suppress(OSError):
            handle.close()  # its flush of the rest may fail again: those bytes are dropped
        with contextlib.suppress(OSError):
            os.truncate(self.path, size)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _torn(tail: bytes) -> bool:
    """Whether a last line is the start of a record cut by a crash: an object's opening, text without
    control characters (dumps escapes them), maybe a split UTF-8 character at the end, and not parseable."""
    if not tail.startswith(b'{"') or re.search(rb"[\x00-\x1f]", tail):
        return False
    try:
        json.loads(tail.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data"
    except json.JSONDecodeError:
        return True
    return False


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


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """A file handle on a temp file beside `path` ("w" text, "wb" bytes); when the block ends without an
    error the file is fsynced and renamed over `path`, else deleted: `path` is never half-written."""
    path = Path(path)
    if path.exists() and not path.is_file():  # renaming over /dev/null or a FIFO would replace the node
        raise RecordError(f"{path} is not a regular file; write to a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file through a temp file in the same folder, fsync, then rename over `path`."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks: how datasets, weights and artifacts are named in
    manifests and run records."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
