"""The six element lists that fables are built from, loaded from the JSON files in `elements/`.

    fabulist data elements            # counts per kind and the size of the combination space

Every list is data, written for this project in simple, child-appropriate language. The fields carry the
grammar a story needs (articles, plurals, pronouns). Conflict and resolution clauses are past-tense
templates with slots that a teacher fills:

    {hero}   the main character with its article, e.g. "the fox"
    {he} {him} {his} {himself}    the main character's pronouns (he/she)
    {friend} a second character chosen by the teacher, e.g. "the tortoise"
    {f_he} {f_him} {f_his}        the second character's pronouns

Clauses start in lower case; the teacher capitalises sentence starts.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

from fabulist.errors import FabulistError

KINDS = ("character", "trait", "setting", "conflict", "resolution", "moral")
SLOTS = frozenset({"hero", "he", "him", "his", "himself", "friend", "f_he", "f_him", "f_his"})
PRONOUNS = {
    "he": {"he": "he", "him": "him", "his": "his", "himself": "himself"},
    "she": {"he": "she", "him": "her", "his": "her", "himself": "herself"},
}
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class ElementError(FabulistError, ValueError):
    """An element list or an element name is invalid."""


@dataclass(frozen=True)
class Character:
    id: str
    name: str  # singular noun, lower case: "fox", "polar bear"
    article: str  # "a" or "an"
    plural: str  # "foxes"
    pronoun: str  # "he" or "she"


@dataclass(frozen=True)
class Trait:
    id: str
    name: str  # adjective: "brave"
    article: str  # article before the adjective: "an" honest
    noun: str  # "bravery"


@dataclass(frozen=True)
class Setting:
    id: str
    name: str  # noun that names the place: "forest"
    at: str  # prepositional phrase that contains `name`: "in the forest"
    sights: tuple[str, ...]  # noun phrases seen there: "tall oak trees"


@dataclass(frozen=True)
class Conflict:
    id: str
    name: str  # scaffold label: "Helping someone in need"
    problem: str  # past-tense clause with slots
    task: str  # infinitive phrase with slots: "to help {friend} out of the hole"


@dataclass(frozen=True)
class Resolution:
    id: str
    name: str  # scaffold label: "Reward"
    outcome: str  # past-tense clause with slots


@dataclass(frozen=True)
class Moral:
    id: str
    text: str  # one sentence with a full stop: "Kindness is rewarded."
    theme: str  # the value in a noun or short noun phrase: "kindness"


Element = Character | Trait | Setting | Conflict | Resolution | Moral
CLASSES: dict[str, type] = {
    "character": Character,
    "trait": Trait,
    "setting": Setting,
    "conflict": Conflict,
    "resolution": Resolution,
    "moral": Moral,
}


def label(kind: str, element: Element) -> str:
    """The short label shown in a prompt scaffold, e.g. "Rabbit" or "Helping someone in need"."""
    text = element.text if kind == "moral" else element.name
    return text[:1].upper() + text[1:]


def _slots(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check(kind: str, element: Element, where: str) -> None:
    if not _ID.match(element.id):
        raise ElementError(f"{where}: id {element.id!r} must be lower-case words joined by '-'")
    if kind in ("character", "trait") and element.article not in ("a", "an"):
        raise ElementError(f"{where}: article must be 'a' or 'an', got {element.article!r}")
    if kind == "character" and element.pronoun not in PRONOUNS:
        raise ElementError(f"{where}: pronoun must be 'he' or 'she', got {element.pronoun!r}")
    if kind == "setting" and (element.name not in element.at or not element.sights):
        raise ElementError(f"{where}: 'at' must contain the name and 'sights' must not be empty")
    if kind == "moral" and not element.text.endswith((".", "!")):
        raise ElementError(f"{where}: a moral is one sentence ending with a full stop")
    for f in fields(element):
        value = getattr(element, f.name)
        for text in value if isinstance(value, tuple) else [value]:
            if not isinstance(text, str) or not text.strip():
                raise ElementError(f"{where}: field {f.name!r} must be non-empty text")
            unknown = _slots(text) - SLOTS
            if unknown:
                raise ElementError(f"{where}: unknown slot(s) {sorted(unknown)} in {f.name!r}")


def parse(kind: str, items: list[dict], source: str = "<data>") -> tuple[Element, ...]:
    """Validate raw JSON items of one kind and return them as frozen dataclasses."""
    cls = CLASSES[kind]
    names = {f.name for f in fields(cls)}
    out, seen = [], set()
    for i, item in enumerate(items):
        where = f"{source} item {i}"
        if not isinstance(item, dict) or set(item) != names:
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise ElementError(f"{where}: expected fields {sorted(names)}, got {got}")
        if "sights" in item:
            item = {**item, "sights": tuple(item["sights"])}
        element = cls(**item)
        _check(kind, element, where)
        if element.id in seen:
            raise ElementError(f"{where}: duplicate id {element.id!r}")
        seen.add(element.id)
        out.append(element)
    return tuple(out)


@cache
def load(kind: str) -> tuple[Element, ...]:
    """The shipped list of one kind, in file order (the order defines combination indices)."""
    if kind not in CLASSES:
        raise ElementError(f"unknown element kind {kind!r}; choose from {', '.join(KINDS)}")
    path = resources.files("fabulist.data") / "elements" / f"{kind}s.json"
    return parse(kind, json.loads(path.read_text(encoding="utf-8")), source=f"{kind}s.json")


def load_all() -> dict[str, tuple[Element, ...]]:
    return {kind: load(kind) for kind in KINDS}


@cache
def index(kind: str) -> dict[str, int]:
    """Map element id -> position in its list."""
    return {e.id: i for i, e in enumerate(load(kind))}


def lookup(kind: str, element_id: str) -> Element:
    """The element of `kind` with this id, or an ElementError that names the kind."""
    try:
        return load(kind)[index(kind)[element_id]]
    except KeyError:
        hint = f"see `fabulist data elements --kind {kind}`"
        raise ElementError(f"unknown {kind} {element_id!r} ({hint})") from None
