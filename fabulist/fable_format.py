"""The text format a model is trained on, and the runtime and evaluation prompt with: kept in one place.

    fabulist train --preset fable-5m --data train.parquet ...   # every training text is built here

A training document is a header with the elements the prompt showed, then the story, then the end of
text:

    <|prompt|>Character: Fox
    Trait: Brave
    Setting: Forest
    Conflict: Sharing food in a hard winter
    Resolution: Reward
    Moral: Kindness is rewarded.<|story|>Once, in a quiet forest, ...

    Moral: Kindness is rewarded.<|endoftext|>

- full prompts show all six elements, partial prompts only some (the model learns to fill in the rest);
- story-beginning prompts show none: `<|prompt|><|story|>` then the fable, so the model also learns to
  continue a beginning it is given.

A value is the label of a shipped list element ("Fox", `labels_for`) or free text: a record imported from
TinyFabulist (`fabulist data import`) carries its elements as text (`elements_text`, e.g. "industrious",
"beaver", "arctic ice floe"), and the header shows that text with its first letter capitalised, as list
labels are (`free_label`). A user's element (`fabulist generate --character "industrious beaver"`) is
shown the same way, after `check_element`: one line, no control token, at most MAX_ELEMENT_CHARS
characters. Whether a model saw free text in training ("free-text") or list labels only ("lists") is
recorded in its training.json and fable_format.json (`ELEMENTS_KEY`; `trained_elements` reads it).

At generation time the prompt is the same text up to and including `<|story|>` (plus a beginning, when
one is given), and generation stops at `<|endoftext|>`. This module is pure Python: the torch-free
runtime imports it too. `fabulist export` writes `describe()` beside the model as `fable_format.json`, so
that readers in other languages (the mobile demo in `android-demo/`) build the same prompts from the
exported folder alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from fabulist import elements as el

BOS = "<|prompt|>"
STORY = "<|story|>"
EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (EOS, BOS, STORY, PAD)  # EOS first: it gets id 0 and also separates packed documents
FORMAT_VERSION = "fabulist-format-1"
DESCRIPTION_FILE = "fable_format.json"
MAX_ELEMENT_CHARS = 80  # a user's free-text element; the longest list label is a 63-character moral
ELEMENTS_KEY = "elements"  # in training.json and fable_format.json: what the header values were in training
LISTS, FREE_TEXT = "lists", "free-text"


def check_text(what: str, text: str, one_line: bool = False) -> None:
    """Refuse user text that would become format structure: a special token (the tokenizer encodes it as
    the control token) or, in a header field, a line break (a forged `Moral:` line)."""
    for token in SPECIAL_TOKENS:
        if token in text:
            raise ValueError(f"{what} must not contain {token} (a control token of the fable format)")
    if one_line and "".join(text.splitlines()) != text:
        raise ValueError(f"{what} must be one line (a line break would add a header line)")


def check_element(kind: str, text: str) -> None:
    """Refuse a user's element text that is empty, longer than MAX_ELEMENT_CHARS, or format structure."""
    if not text.strip():
        raise ValueError(f"the {kind} must not be empty")
    if len(text.strip()) > MAX_ELEMENT_CHARS:
        raise ValueError(
            f"the {kind} is {len(text.strip())} characters long; give at most {MAX_ELEMENT_CHARS}"
        )
    check_text(f"the {kind}", text, one_line=True)


def element_label(kind: str, value: str) -> tuple[str, bool]:
    """(header label, given as free text) of a user's element value: a shipped list element by id or label
    (case-insensitive) gives its label; other text is checked (`check_element`: a ValueError) and becomes a
    free-text label. How `fabulist generate` and `fabulist serve` read the elements they are given."""
    match = [e for e in el.load(kind) if value.lower() in (e.id, el.label(kind, e).lower())]
    if match:
        return el.label(kind, match[0]), False
    check_element(kind, value)
    return free_label(value), True


def free_label(text: str) -> str:
    """A free-text element as a header value: spaces collapsed, first letter capitalised ("Arctic floe")."""
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


def header(labels: Mapping[str, str]) -> str:
    """'Character: Fox\\nTrait: Brave...' for the given kind -> label pairs, in the canonical kind order."""
    unknown = set(labels) - set(el.KINDS)
    if unknown:
        raise ValueError(f"unknown element kind(s) {sorted(unknown)}; choose from {', '.join(el.KINDS)}")
    for kind, label in labels.items():
        check_text(f"the {kind}", label, one_line=True)
    return "\n".join(f"{kind.capitalize()}: {labels[kind]}" for kind in el.KINDS if kind in labels)


def prompt(labels: Mapping[str, str] | None = None, beginning: str | None = None) -> str:
    """What a model is given to write a fable: the header, the story marker, and any beginning. Element
    labels and the beginning are text, never structure: a special token in them, or a line break in a
    label, is a ValueError."""
    check_text("the beginning", beginning or "")
    return f"{BOS}{header(labels or {})}{STORY}{beginning or ''}"


def labels_for(ids: Mapping[str, str], kinds: list[str] | tuple[str, ...] = el.KINDS) -> dict[str, str]:
    """Element ids -> their scaffold labels, for the kinds listed."""
    return {kind: el.label(kind, el.lookup(kind, ids[kind])) for kind in kinds}


def record_labels(record: Mapping) -> dict[str, str]:
    """The header values of a fable record: its free-text elements (`elements_text`) when it has them, else
    its element ids' labels; only the kinds it shows."""
    shown = () if record.get("variant") == "beginning" else record.get("shown") or el.KINDS
    texts = record.get("elements_text")
    if texts:
        return {kind: free_label(texts[kind]) for kind in el.KINDS if kind in shown and texts.get(kind)}
    return labels_for(record["elements"], shown)


def training_text(record: Mapping) -> str:
    """The document a fable record is trained as (see the module docstring)."""
    return prompt(record_labels(record)) + record["fable"].strip() + EOS


def trained_elements(folder: str | Path) -> str:
    """FREE_TEXT or LISTS: what the model in `folder` saw as header values in training, from its
    training.json, else its fable_format.json; LISTS when neither says (every model before free text)."""
    for name in ("training.json", DESCRIPTION_FILE):
        try:
            value = json.loads((Path(folder) / name).read_text(encoding="utf-8")).get(ELEMENTS_KEY)
        except (OSError, ValueError, AttributeError):
            continue
        if value in (LISTS, FREE_TEXT):
            return value
    return LISTS


def describe(elements: str = LISTS) -> dict:
    """This format as data: the special tokens, the header's field order and the labels each field can take;
    `elements`: what the model was trained on, LISTS (the choices only) or FREE_TEXT (any one-line text of
    at most max_element_chars characters, first letter capitalised, also works).

    prompt = bos + line_separator.join(field_template with {label}, {value} for each shown field, in this
    order) + story + beginning; the fable ends at eos.
    """
    if elements not in (LISTS, FREE_TEXT):
        raise ValueError(f"elements must be {LISTS!r} or {FREE_TEXT!r}, got {elements!r}")
    return {
        "format": FORMAT_VERSION,
        "bos": BOS,
        "story": STORY,
        "eos": EOS,
        "pad": PAD,
        "field_template": "{label}: {value}",
        "line_separator": "\n",
        ELEMENTS_KEY: elements,
        "max_element_chars": MAX_ELEMENT_CHARS,
        "fields": [
            {"kind": kind, "label": kind.capitalize(), "choices": [el.label(kind, e) for e in el.load(kind)]}
            for kind in el.KINDS
        ],
    }
