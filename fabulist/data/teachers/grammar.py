"""The story-grammar expander of the procedural teachers: rules are data (grammars/<name>.json), a fable's
fixed values are a dict, and one draw function picks alternatives.

    .venv/bin/python benchmarks/procedural_teacher.py --version v2     # speed and diversity of a grammar

Notation inside a rule's alternatives (the JSON files keep it; load() turns it into str.format fields):
    [rule]   a random alternative of another rule, drawn anew at every use
    [^rule]  the same, with its first letter capitalised
    {slot}   a value fixed for the whole fable ("{hname}", "{his}", "{at}"), looked up in the Context

How it expands: load() rewrites "[rule]" as the format field "{@rule}" and "[^rule]" as "{^rule}". A Context
is the fable's dict of slots; str.format_map asks it for every field from left to right, the slots are
found in the dict, and a rule field (never a key of the dict) reaches Context.__missing__, which draws an
alternative with one call of the draw function and expands it the same way. So a rule costs one draw and
one format_map, in reading order, with no code generated at run time; the same (grammar, seed) writes the
same text on any machine (random.Random only, never hash()).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from functools import cache
from importlib import resources

Draw = Callable[[], float]  # random.Random(seed).random
_REF = re.compile(r"\[(\^?)(\w+)\]")


class GrammarError(ValueError):
    """A grammar file names a rule it does not define, or cannot be read."""


def cap(text: str) -> str:
    """Capital first letter; a sentence that opens with dialogue capitalises the first spoken word."""
    if text[:1] == '"':
        return '"' + text[1:2].upper() + text[2:]
    return text[:1].upper() + text[1:]


class Grammar:
    """Rule name -> (alternatives as format strings, whether they are plain text), and the grammar's
    other data (word lists, cast, plan tables) as loaded."""

    def __init__(self, name: str, doc: dict):
        self.name, self.doc = name, doc
        self.rules: dict[str, tuple[tuple[str, ...], bool]] = {}
        for rule, alts in doc["rules"].items():
            fields = tuple(_REF.sub(lambda m: "{" + (m[1] or "@") + m[2] + "}", a) for a in alts)
            self.rules[rule] = (fields, not any("{" in a for a in fields))
        # The format fields a rule is drawn by: "@rule" -> (alternatives, count, plain, capitalise).
        self.fields = {
            mark + rule: (alts, len(alts), plain, mark == "^")
            for rule, (alts, plain) in self.rules.items()
            for mark in "@^"
        }  # fmt: skip
        missing = {m[2] for alts in doc["rules"].values() for a in alts for m in _REF.finditer(a)}
        missing -= set(self.rules)
        if missing:
            raise GrammarError(f"grammar {name}: undefined rules {', '.join(sorted(missing))}")
        # Slots that some alternative uses capitalised ("{He} knew"): Context.with_caps adds them.
        self.caps = frozenset(
            s.lower() for a in itertools.chain(*doc["rules"].values()) for s in re.findall(r"\{(\w+)\}", a)
            if s[0].isupper()
        )  # fmt: skip

    def __getattr__(self, key: str):
        """The grammar's other data: grammar.lists, grammar.turns, ..."""
        try:
            return self.doc[key]
        except KeyError:
            raise AttributeError(key) from None


@cache
def load(name: str) -> Grammar:
    """The grammar in grammars/<name>.json beside this module (v1, v2)."""
    path = resources.files("fabulist.data.teachers") / "grammars" / f"{name}.json"
    try:
        return Grammar(name, json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise GrammarError(f"no grammar {name!r} (grammars/{name}.json)") from None


class Context(dict):
    """The slots of one fable, able to expand the grammar's rules with the draw function `r`."""

    __slots__ = ("fields", "grammar", "polish", "r")

    def __init__(self, grammar: Grammar, r: Draw, slots: dict[str, str] | None = None):
        super().__init__(slots or {})
        self.grammar, self.r, self.fields = grammar, r, grammar.fields
        self.polish: Callable[[str], str] | None = None  # applied to every sentence before tidy

    def __missing__(self, key: str) -> str:
        try:
            alts, n, plain, capitalise = self.fields[key]
        except KeyError:
            raise KeyError(key) from None  # a slot the fable lacks
        text = alts[int(self.r() * n)]
        if not plain:
            text = text.format_map(self)
        return cap(text) if capitalise else text

    def expand(self, rule: str) -> str:
        """One alternative of `rule`, drawn and expanded."""
        return self["@" + rule]

    def sentence(self, rule: str) -> str:
        """One alternative of `rule` with a capital first letter, polished, drawn again (a few times at
        most) while it repeats itself (see tidy)."""
        for _ in range(8):
            text = self["^" + rule]
            if self.polish is not None:
                text = self.polish(text)
            tidied = tidy(text)
            if tidied is not None:
                return tidied
        return text

    def with_caps(self) -> Context:
        """Add {Slot} for the slots that some alternative puts right after a full stop."""
        for key in self.grammar.caps:
            if key in self:
                value = self[key]
                self[key[:1].upper() + key[1:]] = value[:1].upper() + value[1:]
        return self


# A frame that ends in a particle ("came by", "dived in", "very close") meets a place phrase that starts with
# the same word ("by Fern Glade", "in the pumpkin patch", "close to the crabs"): say the word once.
_PARTICLES = "by|in|near|close|at|on|to|under|beside|around|down|up|inside|over|out|off|along|past|behind"
_DOUBLED = re.compile(rf"\b({_PARTICLES}) \1\b")
# Two independent picks can also agree: "felt light and happy and light and happy", "a little little robot".
# Such a sentence is drawn again (fabulist.eval.quality's doubled-phrase check, made cheap).
_AND_REPEAT = re.compile(r"\b(\w+(?: \w+){1,3}) and \1\b", re.IGNORECASE)


_CLOSING = ',.;:!?"'
_NO_CLOSING = str.maketrans("", "", _CLOSING)


def doubled_word(sentence: str) -> bool:
    """A word said twice in a row with nothing but a space between ("near near", "inside inside,"): a whole
    word that does not end in punctuation, then the same word with nothing after it but closing punctuation.
    (A loop over the words: about three times faster than the equivalent regex, and it runs per sentence.)"""
    bare = sentence.lower().translate(_NO_CLOSING).split(" ")
    if not any(map(str.__eq__, bare, bare[1:])):  # no two neighbours alike even without punctuation
        return False
    toks = sentence.lower().split(" ")
    for a, b in itertools.pairwise(toks):
        if a and b.startswith(a) and a[-1] not in _CLOSING and b.rstrip(_CLOSING) == a:
            return True
    return False


def tidy(sentence: str) -> str | None:
    """The sentence with a doubled particle said once, or None when it still repeats itself."""
    if doubled_word(sentence):
        sentence = _DOUBLED.sub(r"\1", sentence)
        if doubled_word(sentence):
            return None
    if " and " in sentence and _and_repeat(sentence):
        return None
    return sentence


def _and_repeat(sentence: str) -> bool:
    """_AND_REPEAT.search(sentence), run only where it can match: the phrase after an " and " also ends
    right before it, so its first three characters occur earlier in the sentence (the regex backtracks
    slowly, and most sentences with an "and" fail this cheap test)."""
    low = sentence.lower()
    at = low.find(" and ")
    while at >= 0:
        if low[at + 5 : at + 8] in low[:at]:
            return _AND_REPEAT.search(sentence) is not None
        at = low.find(" and ", at + 1)
    return False


def article(word: str) -> str:
    """The article for the words a grammar adds itself (none of them start with a silent h or a 'you')."""
    return "an" if word[:1] in "aeiou" else "a"
