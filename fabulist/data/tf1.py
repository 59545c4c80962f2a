"""TinyFabulist (TF1) fables in and out: read its records, parse their prompts, write its layout.

    fabulist data import tf_fables_*.jsonl [more.parquet ...] -o fables.jsonl [--errors bad.jsonl] [--force]
    fabulist data export-tf1 fables.jsonl -o tf1.jsonl [--force]

A TF1 record (github.com/klusai/tinyfabulist, MIT, KlusAI Labs) holds an LLM's fable and the prompt it was
written from; the elements are only in the prompt text, as TF1's handlebars template rendered them:

    - Main Character: a {trait} {character}
    - Setting: a {setting} where our story unfolds
    - Challenge: {conflict}
    - Outcome: {resolution}
    - Teaching: {moral}

An imported record is a Fabulist fable record whose elements are free text, not ids of the shipped lists:

    {"language", "prompt" (TF1's, verbatim), "prompt_hash" (of the element texts: one prompt, one hash),
     "fable" (verbatim), "llm_name", "llm_input_tokens", "llm_output_tokens", "llm_inference_time",
     "generation_datetime", "pipeline_version" (TF1's, or null),
     "teacher": "tinyfabulist", "variant": "full" | "partial" (not all six found), "elements": null,
     "shown": [the kinds in elements_text], "beginning": null, "sampling": null, "seed": null,
     "elements_text": {"character": "beaver", "trait": "industrious", ...},   # the kinds found, KINDS order
     "moral_line": true | false,   # whether the fable's last line is a "Moral: ..." line
     "source": {"format": "tf1", "file", "line" (1-based; a Parquet file's row), "id" (TF1's hash),
                "tf1_fields": {host_*, currency and any other TF1 field not kept above}}}

Export writes the newest pipeline's field layout (`TF1_FIELDS`, as in TinyFabulist 1.102.250412).
`parse_prompt`, `from_tf1` and `to_tf1` are pure; `read_tf1` reads a file; `import_tf1` and `export_tf1`
are the two commands' functions.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from fabulist import elements as el
from fabulist.errors import FabulistError
from fabulist.records import atomic_open, dumps, read_jsonl

TEACHER = "tinyfabulist"
TF1_FIELDS = (
    "language", "prompt", "prompt_hash", "fable", "llm_name", "llm_input_tokens", "llm_output_tokens",
    "llm_inference_time", "host_provider", "host_dc_provider", "host_dc_location", "host_gpu",
    "host_gpu_vram", "host_cost_per_hour", "currency", "generation_datetime", "pipeline_version",
)  # fmt: skip
KEPT_FIELDS = ("language", "prompt", "fable", "llm_name", "llm_input_tokens", "llm_output_tokens",
               "llm_inference_time", "generation_datetime", "pipeline_version")  # fmt: skip
ID_FIELDS = ("hash", "prompt_hash")  # pipeline 1.0 calls TF1's sha256(llm_name + prompt) "hash"

# The prompt label of each element line -> the Fabulist kind; the first line of a kind wins.
LABELS = {
    "main character": "character", "character": "character", "trait": "trait", "setting": "setting",
    "challenge": "conflict", "conflict": "conflict", "outcome": "resolution", "resolution": "resolution",
    "teaching": "moral", "moral": "moral", "lesson": "moral",
}  # fmt: skip
_LINE = re.compile(
    rf"^[ \t]*(?:[-*•][ \t]*)?({'|'.join(sorted(LABELS, key=len, reverse=True))})[ \t]*:[ \t]*(.*?)[ \t\r]*$",
    re.IGNORECASE | re.MULTILINE,
)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_UNFOLDS = re.compile(r"\s+where our story unfolds\W*$", re.IGNORECASE)
_MORAL_LINE = re.compile(r"^(?:the\s+)?moral\s*:\s*\S", re.IGNORECASE)

_INTRO = "Create a fable based on the following elements. Weave them naturally into a story:"
_RULES = (
    "The fable should:\n"
    "  - Be appropriate for age group B (4-7 years)\n"
    "  - Use simple vocabulary that 4-7 year olds can understand\n"
    "  - Use concrete rather than abstract language\n"
    "  - Begin with vivid scene-setting\n"
    "  - Not use names for the characters, instead use the trait and character\n"
    "  - Include meaningful but simple dialogue\n"
    "  - Show (don't tell) the character's growth\n"
    "  - End with a clear connection to the moral\n"
    "Keep the story concise but engaging, around 250 words."
)  # TF1 pipeline 1.102.250412's template, unescaped


class TF1Error(FabulistError, ValueError):
    """A TF1 input or output that cannot be used at all: missing, empty, binary, not TF1, in the way."""


class BadRecord(ValueError):
    """One TF1 record that cannot be imported; the importer writes it to the errors file."""


class Row(NamedTuple):
    """One record of a TF1 file: its 1-based line (Parquet: row), and the record or why it is unreadable."""

    line: int
    record: dict | None
    problem: str | None = None


# ---- parsing -----------------------------------------------------------------------------------------


def parse_prompt(prompt: str) -> dict[str, str]:
    """The element texts a TF1 prompt names, {kind: text} in KINDS order; {} when it names none.

    'a industrious beaver' -> trait 'industrious', character 'beaver': TF1's template is 'a {trait}
    {character}', so after an article the first of two or more words is the trait. One word, no article
    ('polar bear') or a 'Trait:' line of its own keeps the character whole.
    """
    found: dict[str, str] = {}
    for label, text in _LINE.findall(html.unescape(prompt)):
        kind = LABELS[label.lower()]
        if text and kind not in found:
            found[kind] = text
    if "character" in found:
        words = _ARTICLE.sub("", found["character"]).split()
        if _ARTICLE.match(found["character"]) and len(words) >= 2 and "trait" not in found:
            found["trait"], words = words[0], words[1:]
        found["character"] = " ".join(words)
    if "setting" in found:
        found["setting"] = _UNFOLDS.sub("", _ARTICLE.sub("", found["setting"]))
    return {kind: found[kind] for kind in el.KINDS if found.get(kind)}


def has_moral_line(fable: str) -> bool:
    """Whether the fable's last non-blank line is a 'Moral: ...' line ('**Moral:**', 'The Moral:' too)."""
    lines = [line for line in fable.splitlines() if line.strip()]
    return bool(lines) and bool(_MORAL_LINE.match(lines[-1].replace("*", "").strip(" \t#>_")))


def text_hash(texts: Mapping[str, str]) -> str:
    """16 hex digits over the element texts, so every fable of one TF1 prompt lands in the same split."""
    key = "text|" + "|".join(texts.get(kind, "") for kind in el.KINDS)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def from_tf1(raw: Mapping, *, file: str, line: int) -> dict:
    """A TF1 record as a Fabulist fable record (see the module docstring); BadRecord says why not."""
    fable, prompt = raw.get("fable"), raw.get("prompt")
    if not isinstance(fable, str) or not fable.strip():
        raise BadRecord("no fable text (field 'fable' is missing, empty or not text)")
    if not isinstance(prompt, str):
        raise BadRecord("no prompt (field 'prompt' is missing or not text)")
    texts = parse_prompt(prompt)
    if not texts:
        raise BadRecord("prompt names no elements (no line like '- Main Character: a wise owl')")
    name = raw.get("llm_name")
    source_id = next((raw[f] for f in ID_FIELDS if raw.get(f)), None)
    extra = {k: v for k, v in raw.items() if k not in KEPT_FIELDS + ID_FIELDS and v is not None}
    return {  # records.fable_record's field order, then the fields of free-text elements
        "language": raw.get("language") or "en",
        "prompt": prompt,
        "prompt_hash": text_hash(texts),
        "fable": fable,
        "llm_name": name.strip() if isinstance(name, str) else name,  # one TF1 model name ends in a space
        **{field: raw.get(field) for field in KEPT_FIELDS[4:]},
        "teacher": TEACHER,
        "variant": "full" if len(texts) == len(el.KINDS) else "partial",
        "elements": None,
        "shown": list(texts),
        "beginning": None,
        "sampling": None,
        "seed": None,
        "elements_text": texts,
        "moral_line": has_moral_line(fable),
        "source": {"format": "tf1", "file": file, "line": line, "id": source_id, "tf1_fields": extra},
    }


# ---- exporting ---------------------------------------------------------------------------------------


def element_texts(record: Mapping) -> dict[str, str]:
    """The shown elements of a Fabulist record as TF1-style text: its `elements_text`, or its ids' words."""
    if record.get("elements_text"):
        return {k: v for k, v in record["elements_text"].items() if v}
    ids = record.get("elements") or {}
    shown = () if record.get("variant") == "beginning" else record.get("shown") or el.KINDS
    return {kind: _id_text(kind, ids[kind]) for kind in el.KINDS if kind in shown and ids.get(kind)}


def _id_text(kind: str, element_id: str) -> str:
    """'sharing-food' -> 'sharing food in a hard winter'; a moral loses its full stop, as in TF1's lists."""
    element = el.lookup(kind, element_id)
    text = element.text.rstrip(".!") if kind == "moral" else element.name
    return text if kind in ("character", "trait", "setting") else text[:1].lower() + text[1:]


def tf1_prompt(texts: Mapping[str, str]) -> str:
    """TF1's newest prompt for these element texts (TF1 writes 'a' before every trait and setting).

    A character without a trait is written without an article, so that parse_prompt keeps it whole."""
    lines = []
    if "character" in texts:
        hero = f"a {texts['trait']} {texts['character']}" if "trait" in texts else texts["character"]
        lines.append(f"  - Main Character: {hero}")
    elif "trait" in texts:
        lines.append(f"  - Trait: {texts['trait']}")
    if "setting" in texts:
        lines.append(f"  - Setting: a {texts['setting']} where our story unfolds")
    labels = (("conflict", "Challenge"), ("resolution", "Outcome"), ("moral", "Teaching"))
    lines += [f"  - {label}: {texts[kind]}" for kind, label in labels if kind in texts]
    return "\n".join([_INTRO, *lines, _RULES])


def to_tf1(record: Mapping) -> dict:
    """A Fabulist fable record in TF1's field layout (`TF1_FIELDS`).

    The prompt is the record's own when it already is a TF1 prompt of the same elements (an imported
    record), else TF1's template filled with the elements' text (a record with no elements keeps its own);
    `prompt_hash` is TF1's sha256(llm_name + prompt); host fields come back from `source.tf1_fields`.
    """
    texts = element_texts(record)
    prompt = record.get("prompt") or ""
    if texts and parse_prompt(prompt) != texts:
        prompt = tf1_prompt(texts)
    name = record.get("llm_name") or ""
    extra = (record.get("source") or {}).get("tf1_fields") or {}
    out = {field: extra.get(field) for field in TF1_FIELDS}
    out.update({field: record.get(field) for field in KEPT_FIELDS})
    out["language"] = record.get("language") or "en"
    out["prompt"] = prompt
    out["prompt_hash"] = hashlib.sha256((name + prompt).encode("utf-8")).hexdigest()
    return out


# ---- reading -----------------------------------------------------------------------------------------


def read_tf1(path: str | Path) -> Iterator[Row]:
    """The records of a TF1 JSONL or Parquet file (told apart by Parquet's magic bytes), one Row each.

    A line that is not a JSON object comes as a Row with a problem; a missing, empty, binary or unreadable
    file raises TF1Error. Blank lines are skipped.
    """
    path = Path(path)
    kind = sniff(path)
    rows = _parquet_rows(path) if kind == "parquet" else _jsonl_rows(path)
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise TF1Error(f"{path}: no records in the file")


def sniff(path: Path) -> str:
    """'parquet' or 'jsonl'; TF1Error for a missing, unreadable, empty or binary file."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except FileNotFoundError:
        raise TF1Error(f"{path}: file not found") from None
    except OSError as exc:
        raise TF1Error(f"{path}: cannot read ({exc.strerror})") from None
    if not head.strip() and len(head) < 1 << 16:
        raise TF1Error(f"{path}: empty file")
    if head.startswith(b"PAR1"):
        return "parquet"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            raise TF1Error(f"{path}: binary file, not TF1 JSONL or Parquet") from None
    if b"\x00" in head:
        raise TF1Error(f"{path}: binary file, not TF1 JSONL or Parquet")
    return "jsonl"


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as f:
        for number, data in enumerate(f, 1):
            if not data.strip():
                continue
            try:
                record = json.loads(data.decode("utf-8-sig"))  # a BOM on line 1 is harmless
            except UnicodeDecodeError:
                yield Row(number, None, "not UTF-8 text")
                continue
            except json.JSONDecodeError as exc:
                yield Row(number, None, f"not valid JSON ({exc.msg})")
                continue
            except RecursionError:
                yield Row(number, None, "not valid JSON (nested too deeply)")
                continue
            if isinstance(record, dict):
                yield Row(number, record)
            else:
                yield Row(number, None, f"expected a JSON object, got {type(record).__name__}")


def _parquet_rows(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TF1Error("reading Parquet needs pyarrow: pip install 'fabulist[data]'") from None
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        number = 0
        for batch in batches:
            for record in batch.to_pylist():
                number += 1
                yield Row(number, record)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid and ArrowIOError derive from these
        raise TF1Error(f"{path}: cannot read as Parquet ({exc})") from None


# ---- the two commands --------------------------------------------------------------------------------


def import_tf1(
    paths: Iterable[str | Path], out: str | Path, errors: str | Path | None = None, force: bool = False
) -> dict:
    """Import TF1 files into one Fabulist fables file; unreadable records go to the errors file.

    Both files are written whole through temp files and renamed into place at the end, so a failure
    leaves neither; the errors file (default: beside `out`, `<stem>.errors.jsonl`) is written even when
    empty. A file with no importable record at all is not TF1 and stops the import. Returns the counts.
    """
    paths, out = [Path(p) for p in paths], Path(out)
    errors = Path(errors) if errors else out.with_name(f"{out.stem}.errors.jsonl")
    if not paths:
        raise TF1Error("no input files; give one or more TF1 JSONL or Parquet files")
    for path in paths:
        sniff(path)  # a missing, empty or binary input stops the import before anything is read
    _check_outputs([out, errors], paths, force)
    counts = {"read": 0, "written": 0, "without_moral_line": 0, "errors": 0}
    with _atomic_lines(out) as good, _atomic_lines(errors) as bad:
        for path in paths:
            _import_file(path, good, bad, counts)
    return {**counts, "output": str(out), "errors_file": str(errors)}


def _import_file(path: Path, good, bad, counts: dict) -> None:
    written, first_problem = 0, None
    for row in read_tf1(path):
        counts["read"] += 1
        try:
            if row.problem:
                raise BadRecord(row.problem)
            record = from_tf1(row.record, file=str(path), line=row.line)
        except BadRecord as exc:
            counts["errors"] += 1
            first_problem = first_problem or f"line {row.line}: {exc}"
            bad.write(dumps({"file": str(path), "line": row.line, "reason": str(exc)}) + "\n")
            continue
        good.write(dumps(record) + "\n")
        written += 1
        counts["without_moral_line"] += not record["moral_line"]
    counts["written"] += written
    if not written:
        raise TF1Error(
            f"{path}: no TinyFabulist fable in the file ({first_problem}); is it a TF1 fables file?"
        )


def export_tf1(path: str | Path, out: str | Path, force: bool = False) -> int:
    """Write the fables of a Fabulist fables file in TF1's layout; return how many were written."""
    path, out = Path(path), Path(out)
    if sniff(path) != "jsonl":
        raise TF1Error(f"{path}: a Parquet file; export-tf1 reads a Fabulist fables JSONL file")
    _check_outputs([out], [path], force)
    count = 0
    with _atomic_lines(out) as f:
        try:
            for number, record in enumerate(read_jsonl(path, required=("fable",)), 1):
                try:
                    f.write(dumps(to_tf1(record)) + "\n")
                except el.ElementError as exc:
                    raise TF1Error(f"{path}: record {number}: {exc}") from None
                count += 1
        except UnicodeDecodeError:
            raise TF1Error(f"{path}: not UTF-8 text") from None
    if not count:
        raise TF1Error(f"{path}: no fables in the file; nothing to export")
    return count


def _check_outputs(outputs: list[Path], inputs: list[Path], force: bool) -> None:
    resolved = {p.resolve() for p in inputs}
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise TF1Error(f"{outputs[0]}: the output and the errors file must differ")
    for out in outputs:
        if out.resolve() in resolved:
            raise TF1Error(f"{out}: is also an input; write the output to another file")
        if out.is_dir():
            raise TF1Error(f"{out}: is a folder; give a file name")
        if out.exists() and not force:
            raise TF1Error(f"{out}: already exists; pass --force to overwrite it")


def _atomic_lines(path: Path):
    """A text handle on a temp file beside `path`, renamed over it when the block succeeds."""
    return atomic_open(path, "w")
