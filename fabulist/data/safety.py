"""A child-safety screen for fables: profanity, slurs, sexual content, graphic violence and self-harm.

    fabulist data stats fables.jsonl                       # a "safety" section: counts, examples
    fabulist data split fables.jsonl --out data/ --safety drop   # flagged fables stay out of train/valid

`screen(text)` returns one `Hit` per matched term; `Tally` counts flagged fables per category over a
file and keeps the first few examples. The terms are data, in `safety_terms.json` beside this module,
and the rules are few (the file's "about" fields say why each word is or is not listed):
- The text is normalised to ASCII letters and digits, lower-cased; every other character (punctuation,
  apostrophes, hyphens, accented letters) is a word break: "self-harm" reads "self harm", "wolf's" reads
  "wolf s". A term matches whole words only, so "Scunthorpe", "class" or "shell" hold no term.
- An entry's "(a|b|)" groups expand to every combination. A bare word (one word, no group) also
  matches its regular plural; an entry with a group spells out every form, plural included. Nothing is
  guessed: a guessed "-y" or "-es" would turn a slur into "spicy" and "spices". Phrases match as expanded.
- A hit inside an occurrence of an "allow" phrase is dropped ("a murder of crows", "a stab of envy").

It is a word-list screen: it does not understand context, misses obfuscated spellings ("f*ck") and
non-English text, and cannot judge tone. Speed comes from a set test: a fable's word set is intersected
with one anchor word of every term, and only a fable that holds every word of some term is tokenised
with positions. One core screens about 40,000 fables of ~200 words, or 22,000 of ~340 words, a second
(measured on a busy 2-core machine; `tests/data/test_safety.py` demands 20,000 of ~300 words).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fabulist.errors import FabulistError

CATEGORIES = ("profanity", "slurs", "sexual", "violence", "self_harm")
EXAMPLES = 3  # per category, in a Tally report
CONTEXT = 40  # characters either side of a hit in an example

_FUNCTION_WORDS = frozenset(
    b"a an the of in on out up off to from with it its his her their my your him them me you had has have "
    b"having no what own".split()
)
_GROUP = re.compile(r"\(([^()]*)\)")
_WORD = re.compile(rb"[a-z0-9]+")
# bytes -> bytes: ASCII letters and digits lower-cased, everything else a space ('?' from encode too).
_NORMAL = bytes(c if chr(c).isascii() and chr(c).isalnum() else 32 for c in range(256)).lower()


class SafetyTermsError(FabulistError, ValueError):
    """The term list is malformed (a bad category, an empty term, a term in two categories)."""


@dataclass(frozen=True, slots=True)
class Hit:
    category: str  # one of CATEGORIES
    term: str  # the expanded term, normalised: "slit his throat"
    text: str  # as written in the fable: "slit his throat!"
    start: int  # character offsets in the fable: text == fable[start:end]
    end: int


@dataclass(frozen=True)
class _Terms:
    category: dict[tuple[bytes, ...], str]  # every expanded term (words) -> its category
    by_first: dict[bytes, list[tuple[bytes, ...]]]  # first word -> terms, longest first
    by_anchor: dict[bytes, list[tuple[bytes, ...]]]  # anchor word -> terms (the set test)
    anchors: frozenset[bytes]
    allow_by_first: dict[bytes, list[tuple[bytes, ...]]]


def normalise(text: str) -> bytes:
    """The text as bytes of the same length: [a-z0-9] kept (lower-cased), every other character a space."""
    return text.encode("ascii", "replace").translate(_NORMAL)


def expand(entry: str) -> list[str]:
    """Every combination of an entry's "(a|b|)" groups, as normalised text: "(kill|killed) him" -> 2."""
    parts = _GROUP.split(entry)  # literal, group, literal, group, ..., literal
    options = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return [" ".join(normalise("".join(c)).decode().split()) for c in itertools.product(*options)]


def plural(word: str) -> str:
    """The regular English plural: +es after s, x, z, ch, sh; consonant + y -> ies; else +s."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def forms(entry: str, phrase: bool) -> set[str]:
    """The terms an entry matches: its expansions, and the plural of a bare word (no group, no space)."""
    found = set(expand(entry))
    if not phrase and "(" not in entry:
        found |= {plural(w) for w in found}
    return found


@cache
def terms() -> _Terms:
    """The shipped term lists, expanded and indexed (loaded once)."""
    raw = json.loads((resources.files("fabulist.data") / "safety_terms.json").read_text(encoding="utf-8"))
    if tuple(raw["categories"]) != CATEGORIES:
        raise SafetyTermsError(f"safety_terms.json: categories must be {', '.join(CATEGORIES)}")
    category: dict[tuple[bytes, ...], str] = {}
    for name, lists in raw["categories"].items():
        for phrase, key in ((False, "words"), (True, "phrases")):
            for entry in lists[key]:
                for term in forms(entry, phrase):
                    words = tuple(w.encode() for w in term.split())
                    if not words or (len(words) > 1) != phrase or category.get(words, name) != name:
                        raise SafetyTermsError(f"safety_terms.json: {name}: bad term {term!r}")
                    category[words] = name
    allow = [tuple(w.encode() for w in t.split()) for entry in raw["allow"] for t in expand(entry)]
    by_anchor = _index(category, _anchor(category))
    return _Terms(
        category=category,
        by_first=_index(category, lambda p: p[0]),
        by_anchor=by_anchor,
        anchors=frozenset(by_anchor),
        allow_by_first=_index(allow, lambda p: p[0]),
    )


def _anchor(phrases) -> Callable[[tuple[bytes, ...]], bytes]:
    """A phrase's anchor: a word that is rare in fables, so that most fables skip the superset test: not a
    function word, then the word shared by the fewest phrases ("ripped his throat out" -> "ripped")."""
    shared = Counter(w for p in phrases for w in set(p))
    return lambda p: min(p, key=lambda w: (w in _FUNCTION_WORDS, shared[w], -len(w)))


def _index(phrases, key: Callable) -> dict[bytes, list[tuple[bytes, ...]]]:
    out: dict[bytes, list[tuple[bytes, ...]]] = {}
    for p in sorted(phrases, key=len, reverse=True):
        out.setdefault(key(p), []).append(p)
    return out


def screen(text: str) -> list[Hit]:
    """Every term of the lists in `text`, in order of position; [] for a clean text."""
    t = terms()
    normal = normalise(text)
    split = normal.split()
    present = t.anchors.intersection(split)
    if not present:  # most fables: no set of their words is even built
        return []
    words = set(split)
    if not any(words.issuperset(p) for w in present for p in t.by_anchor[w]):
        return []
    return _positions(text, normal, t)


def _positions(text: str, normal: bytes, t: _Terms) -> list[Hit]:
    """The slow path, for a text that may hold a term: match term and allow phrases token by token."""
    spans = [m.span() for m in _WORD.finditer(normal)]
    tokens = [normal[a:b] for a, b in spans]
    found, allowed = [], []
    for i, token in enumerate(tokens):
        for phrase in t.allow_by_first.get(token, ()):
            if tuple(tokens[i : i + len(phrase)]) == phrase:
                allowed.append((i, i + len(phrase)))
        for term in t.by_first.get(token, ()):
            if tuple(tokens[i : i + len(term)]) == term:
                found.append((i, i + len(term), term))
                break  # longest first: "slit his throat open" hides "slit his throat"
    hits = []
    for i, j, term in found:
        if not any(a <= i and j <= b for a, b in allowed):
            start, end = spans[i][0], spans[j - 1][1]
            name = b" ".join(term).decode()
            hits.append(Hit(t.category[term], name, text[start:end], start, end))
    return hits


def summarize(hits: list[Hit]) -> dict[str, int]:
    """Hits per category (every category, 0 when absent)."""
    counts = Counter(h.category for h in hits)
    return {name: counts[name] for name in CATEGORIES}


def context(text: str, hit: Hit, width: int = CONTEXT) -> str:
    """The hit with up to `width` characters either side, on one line."""
    a, b = max(0, hit.start - width), min(len(text), hit.end + width)
    inner = " ".join(text[a:b].split())
    return ("..." if a else "") + inner + ("..." if b < len(text) else "")


class Tally:
    """Flagged fables per category over many fables, with the first EXAMPLES of each category."""

    def __init__(self, examples: int = EXAMPLES):
        self.examples = examples
        self.records = self.flagged = 0
        self.per_category = {name: {"records": 0, "hits": 0, "examples": []} for name in CATEGORIES}

    def add(self, text: str, prompt_hash: str) -> list[Hit]:
        """Screen one fable (`prompt_hash` names it in the examples); return its hits."""
        self.records += 1
        hits = screen(text)
        self.flagged += bool(hits)
        for name in dict.fromkeys(h.category for h in hits):  # each category once, in order of position
            first = next(h for h in hits if h.category == name)
            c = self.per_category[name]
            c["records"] += 1
            c["hits"] += sum(h.category == name for h in hits)
            if len(c["examples"]) < self.examples:
                c["examples"].append(
                    {"prompt_hash": prompt_hash, "term": first.term, "context": context(text, first)}
                )
        return hits

    def report(self) -> dict:
        """{"records", "records_flagged", "categories": {name: {"records", "hits", "examples"}}}."""
        return {"records": self.records, "records_flagged": self.flagged, "categories": self.per_category}
