"""Guided fables: token-level constraints that make a small model honour the request, no second model.

    fabulist generate --character fox --moral "Kindness is rewarded." --guide

A `Guide` is built from the prompt's header (`Guide.from_prompt`) and the tokenizer; the Generator keeps
one `GuideState` per sequence and, every step, lets it force the next token or ban some tokens before the
sampler draws (the engine draws first and draws again, from the row with the bans at -inf, only when
the token is banned: the same distribution as masking, and a guided fable is the raw one until a rule
acts). Every rule reads the decoded text, never token ids, so it does not matter how the tokenizer splits
"Moral:" or a name; and none reads the logits, so a seed gives the same tokens on every backend wherever
the logits agree, as unguided sampling does.

What it guarantees (for a header with a moral, within max_new_tokens; stop strings still end a fable
first):

- the last line is exactly `Moral: <the requested moral>`, then end of text, and nothing follows. The
  requested line is forced, token by token (its tokenization in context), when the model starts a line
  with "Moral:" (a token that would make that line differ from the requested one is banned), when it
  draws end of text, or when the tokens left are just enough for the moral line (they are reserved);
- no "named" is followed by anything but a capitalised word (a nameless introduction, "a fox named
  asked", cannot happen; "named after" cannot either);
- the requested character's name is kept: the header's name when the character says one ("Fox named
  Nutmeg"), else the first name the fable gives the character ("a fox named Silvertwig"). After
  "<character> named" that name is forced; and any capitalised word that starts with the first four
  letters of a name the fable gave (all of a shorter name) is completed to exactly that name and ends
  there ("Silver..." can only become "Silvertwig", "Pip" not "Pippin").

What it does not: it cannot make the fable mention the requested character or setting at all, or make a
story fit its moral; a variant that shares only a name's ending ("Nutmegdale" -> "Tansydale") or differs
within its first four letters, or that one token takes past the name ("Silvermoon" as one token), is not
caught; "called" is not constrained (it is a verb too: "the fox called out"), so "a cow called known"
still can happen; a second animal of the same kind introduced with "named" gets the protagonist's name;
a name being forced when the tokens reserved for the moral line are reached is cut short.
"""

from __future__ import annotations

import re
from functools import cached_property

import numpy as np

from fabulist import fable_format as ff
from fabulist.errors import FabulistError
from fabulist.runtime.detok import StreamDecoder

MORAL = "Moral:"
NAME_PREFIX = 4  # letters a word shares with a given name before it must be that name (quality's rule)
_GIVEN = re.compile(r"\b(?:named|called)\s+([A-Z][A-Za-z]*)[^A-Za-z]")
_AFTER_NAMED = re.compile(r"\bnamed\s*$")
_WORD = re.compile(r"(?<![A-Za-z])([A-Z][A-Za-z]*)$")
_NAME_IN_LABEL = re.compile(r"\b(?:named|called)\s+([A-Z][A-Za-z]*)\b")
_TAIL = 80  # characters of recent text the name rules look at


class GuideError(FabulistError):
    """A guide that cannot be honoured: an empty or untokenizable moral, no room for the moral line."""


def header_fields(prompt: str) -> dict[str, str]:
    """The header of a prompt in the training format ('Character: Fox', ...) as {'character': 'Fox'}."""
    head = prompt.split(ff.STORY, 1)[0].removeprefix(ff.BOS)
    fields = (line.split(":", 1) for line in head.splitlines() if ":" in line)
    return {key.strip().lower(): value.strip() for key, value in fields}


class Guide:
    """The request one fable must honour (a moral line, a character), over one tokenizer."""

    def __init__(self, tokenizer, moral: str | None = None, character: str | None = None):
        self.tok = tokenizer
        self.eos = tokenizer.token_to_id(ff.EOS)
        self.specials = {tokenizer.token_to_id(t) for t in ff.SPECIAL_TOKENS} - {None}
        self.target = None if moral is None else f"{MORAL} {_moral_text(moral)}"
        if self.target is not None and tokenizer.decode(self.encode(self.target)) != self.target:
            raise GuideError(f"the moral {moral!r} cannot be written by this model's tokenizer")
        words = re.findall(r"[A-Za-z]+", _NAME_IN_LABEL.sub("", character or ""))
        noun = re.escape(words[-1].lower()) if words else None  # "Polar bear" -> "bear"
        # "<character> named" (the name is forced next) and "<character> named/called <Name>" (its name)
        self.noun_named = re.compile(rf"\b(?i:{noun})(?:e?s)?\s+named\s*$") if noun else None
        intro = rf"\b(?i:{noun})(?:e?s)?\s+(?:named|called)\s+([A-Z][A-Za-z]*)[^A-Za-z]"
        self.noun_intro = re.compile(intro) if noun else None
        named = _NAME_IN_LABEL.search(character or "")
        self.name = named.group(1) if named else None
        self._name_bans: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    @classmethod
    def from_prompt(cls, tokenizer, prompt: str) -> Guide:
        """The guide for a prompt built by fable_format.prompt: its header's moral and character."""
        fields = header_fields(prompt)
        return cls(tokenizer, fields.get("moral"), fields.get("character"))

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def reserve(self) -> int:
        """Tokens the moral line may need at the end: itself after a paragraph break, end of text, and
        the most one step can add to it (a paragraph break that becomes necessary)."""
        if self.target is None:
            return 0
        return len(self.encode("\n\n" + self.target)) + 1 + self.margin

    @cached_property
    def margin(self) -> int:
        """How much the moral line's tokens can grow in one step (a paragraph break becomes needed, a
        started "Mor..." turns out to be another word), plus one."""
        return len(self.encode("\n\n")) + 3

    def check_budget(self, limit: int) -> None:
        need = len(self.encode("\n\n" + self.target)) + 1 if self.target else 0
        if limit < need:
            raise GuideError(
                f"{limit} new tokens leave no room for the guided moral line (it needs {need}); "
                "raise max_new_tokens"
            )

    def start(self, context: str = "") -> GuideState:
        """A fresh state for one sequence; `context`: text already in the story (a given beginning)."""
        return GuideState(self, context)

    @cached_property
    def texts(self) -> list[str]:
        """Each token id's text (specials empty), for the bans below."""
        dec = StreamDecoder(self.tok)
        return [
            "" if i in self.specials else dec.token_bytes(i).decode("utf-8", errors="replace")
            for i in range(self.tok.get_vocab_size())
        ]

    @cached_property
    def not_capital(self) -> np.ndarray:
        """Ids that cannot follow "named": all but spaces and a token starting with a capital letter."""
        keep = [(t.strip(" ") == "" and t != "") or t.lstrip(" ")[:1].isupper() for t in self.texts]
        return np.flatnonzero(~np.array(keep))

    @cached_property
    def moral_bans(self) -> dict[str, np.ndarray]:
        """For a line that is so far a prefix of "Moral:" (after indentation): the tokens that would make
        it start with "Moral:" yet differ from the requested line."""
        out = {}
        for k in range(len(MORAL)):
            line = MORAL[:k]
            bad = []
            for i, t in enumerate(self.texts):
                s = (line + t).lstrip(" \t")
                if s.startswith(MORAL) and not self.target.startswith(s):
                    bad.append(i)
            out[line] = np.array(bad, dtype=np.int64)
        return out

    def name_bans(self, word: str, names: tuple[str, ...]) -> np.ndarray:
        """Tokens that would take `word` (a capitalised word being written) anywhere but to exactly one of
        `names` followed by a word end."""
        key = (word, names)
        if key not in self._name_bans:
            bad = []
            for i, t in enumerate(self.texts):
                s = word + t
                lead = re.match(r"[A-Za-z]*", s).group(0)
                ok = any(n.startswith(s) for n in names) if lead == s else lead in names
                if not ok:
                    bad.append(i)
            self._name_bans[key] = np.array(bad, dtype=np.int64)
        return self._name_bans[key]


def _shares_start(word: str, name: str) -> bool:
    """Whether a word has as many letters as a name's first NAME_PREFIX (all of a shorter name) and they
    are the same."""
    k = min(NAME_PREFIX, len(name))
    return len(word) >= k and word[:k] == name[:k]


def _moral_text(moral: str) -> str:
    text = " ".join(moral.split())
    if not text:
        raise GuideError("the moral to guide to is empty; give --moral a sentence")
    try:
        ff.check_text("the moral", text, one_line=True)
    except ValueError as exc:
        raise GuideError(str(exc)) from None
    return text


class GuideState:
    """One sequence under a guide: reads every token drawn, forces or bans the next ones."""

    def __init__(self, guide: Guide, context: str):
        self.g, self.text = guide, context
        self.decoder = StreamDecoder(guide.tok, guide.specials)
        self.queue: list[int] = []  # tokens to force, in order
        self.line_ids: list[int] = []  # the tokens of the current line, for in-context tokenization
        self.moral_started = False
        self.name = guide.name
        self.given: set[str] = {guide.name} if guide.name else set()
        self._scan_names()

    @property
    def line(self) -> str:
        return self.text.rsplit("\n", 1)[-1]

    def forced(self, remaining: int) -> int | None:
        """The token this step must be (None: the sampler draws); `remaining`: tokens left to the limit,
        this one included."""
        near = self.g.target and not self.moral_started and remaining <= self.g.reserve()
        if near and remaining - len(self.queue) <= len(self._moral_plan()) + self.g.margin:
            self._begin_moral()  # a name being forced is cut short: the moral line must fit
        return self.queue[0] if self.queue else None

    def banned(self) -> np.ndarray | None:
        """Token ids the sampler must not draw this step (None: no ban)."""
        tail = self.text[-_TAIL:]
        if _AFTER_NAMED.search(tail):
            return self.g.not_capital
        word = _WORD.search(tail)
        if word and self.given:
            w = word.group(1)
            names = tuple(sorted(n for n in self.given if _shares_start(w, n)))
            if names and any(n.startswith(w) for n in names):
                return self.g.name_bans(w, names)
        line = self.line.lstrip(" \t")
        if self.g.target and MORAL.startswith(line) and line != MORAL:
            bans = self.g.moral_bans[line]
            return bans if len(bans) else None
        return None

    def drawn(self, token: int) -> int:
        """The token the sequence takes when the sampler drew `token` (end of text becomes the moral)."""
        if token == self.g.eos and self.g.target and not self.moral_started:
            self._begin_moral()
            return self.queue[0]
        return token

    def push(self, token: int) -> None:
        """Take `token` into the sequence (forced or drawn) and update what the next steps force."""
        if self.queue and self.queue[0] == token:
            self.queue.pop(0)
        piece = self.decoder.push(token)
        self.text += piece
        if "\n" in piece:
            self.line_ids = [] if piece.endswith("\n") else [token]
        else:
            self.line_ids.append(token)
        if self.queue:
            return
        if self.g.target and not self.moral_started:
            line = self.line.lstrip(" \t")
            if line.startswith(MORAL) and self.g.target.startswith(line):
                self._begin_moral()
                return
        self._scan_names()
        if self.name and self.g.noun_named and self.g.noun_named.search(self.text[-_TAIL:]):
            space = "" if self.text.endswith(" ") else " "
            self.queue = self.g.encode(space + self.name)

    def _scan_names(self) -> None:
        tail = self.text[-_TAIL:]
        self.given.update(_GIVEN.findall(tail))
        if self.name is None and self.g.noun_intro:
            first = self.g.noun_intro.search(tail)
            self.name = first.group(1) if first else None

    def _moral_plan(self) -> list[int]:
        """The tokens that end the fable from here: the rest of the moral line, then end of text."""
        line, target = self.line.lstrip(" \t"), self.g.target
        if line and target.startswith(line):  # the model is writing the moral line (or "Mor...")
            whole = self.g.encode(self.line + target[len(line) :])
            n = len(self.line_ids)
            if whole[:n] == self.line_ids and self.g.tok.decode(self.line_ids) == self.line:
                return [*whole[n:], self.g.eos]
            return [*self.g.encode(target[len(line) :]), self.g.eos]
        if self.text.endswith("\n\n") or not self.text.strip():
            sep = ""
        elif self.text.endswith("\n"):
            sep = "\n"
        else:
            sep = "\n\n"
        return [*self.g.encode(sep + target), self.g.eos]

    def _begin_moral(self) -> None:
        self.moral_started = True
        self.queue = self._moral_plan()
