"""The offline procedural teacher (v2): a story grammar that writes a whole moral fable from six elements.

    fabulist data generate --prompts prompts.jsonl -o fables.jsonl --teacher procedural   # v2
    .venv/bin/python benchmarks/procedural_teacher.py [--version v1]      # speed, diversity, length

No model and no network: a fable is a walk through a grammar driven by one seed, so a 100k-fable corpus
costs seconds and is the same on any machine. The grammar is data, grammars/v2.json, expanded by
grammar.py ([rule] draws, {slot} is a value fixed for the fable); this module is the plan that walks it:

1. the cast and the fable's fixed details (names, a named spot, the hero's treasured thing, the day, ...);
2. the opening paragraph (the character with its trait, in the setting, 2-4 sentences); for a prompt with
   a beginning (variant "beginning") it is v1's opening for the prompt's opening_seed, the paragraph the
   beginning was cut from (fabulist.data.prompts), and the story continues from its details;
3. a story shape from the grammar's "shapes" (a quest with a turning point, a dialogue-led story, a
   journey, a contest, a misunderstanding, a lesson by example): paragraphs of beats, a "?" beat optional
   (written while the fable's word goal allows), "@turn" one of the grammar's turning points;
4. the final line `Moral: <the requested moral, exactly>`.

The conflict and resolution clauses of the element lists are quoted in one of their documented wordings:
the list wording or one of the grammar's clause_variants (3-9 more per clause, written by hand: "{friend}
had fallen into a deep hole and could not climb out", "{friend} was stuck at the bottom of a deep hole,
calling for help"), drawn per fable by wordings(); then the grammar's clause_wordings, groups of
interchangeable phrases ("could not", "couldn't", "just could not"), say each occurrence of a phrase as a
member of its group (reword()). A clause that every fable of an element quotes the same way is the largest
share of the n-grams fables share (self-BLEU), so the wordings differ in structure, not only in words.

Length is `len(text.split())` (the Moral line included): always 120-300, aimed at a per-fable goal within
TARGET_WORDS. Procedural teacher v1, which wrote the shipped model's corpus, is procedural_v1.py
(`--teacher procedural-v1`), frozen.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Iterator
from functools import cache

from fabulist import elements as el
from fabulist.data.teachers import procedural_v1 as v1
from fabulist.data.teachers.base import Budget, Outcome
from fabulist.data.teachers.grammar import Context, article, load
from fabulist.records import fable_record

MIN_WORDS, MAX_WORDS = 120, 300  # guaranteed bounds
TARGET_WORDS = (150, 250)  # aimed-for bounds, those the pipeline's prompts ask a teacher for

G = load("v2")
_L = G.lists
_WISE = tuple(tuple(w) for w in G.wise)
_SHAPES = tuple(G.shapes.items())
_TURNS = tuple(G.turns.items())
# Pronoun slots per prefix ("" hero, "f_" friend, "w_" elder, "r_" rival) and pronoun: {"f_he": "she", ...}.
_PRONOUNS = {
    x: {p: {x + k: v for k, v in el.PRONOUNS[p].items()} for p in el.PRONOUNS} for x in ("", "f_", "w_", "r_")
}
_LITTLE = re.compile(r"\b(little) little\b", re.IGNORECASE)
# The hero's own words about the task: the clauses' hero pronouns in the first person (their verbs are past).
_FIRST_PERSON = {"he": "I", "his": "my", "him": "me", "himself": "myself"}
# The element clauses are said in one of several documented wordings: each group of G.clause_wordings holds
# interchangeable phrases ("wanted to", "longed to", "wished to"), and every whole-word occurrence of one in a
# conflict or resolution clause becomes a member of its group drawn anew. WORDING matches any member.
WORDINGS = {phrase: tuple(group) for group in G.clause_wordings for phrase in group}
WORDING = re.compile(r"\b(" + "|".join(sorted(map(re.escape, WORDINGS), key=len, reverse=True)) + r")\b")
_VARIANTS: dict[str, dict[str, list[str]]] = G.clause_variants  # field -> element id -> more wordings
_pick = v1._pick
_HERO_NAMES = {p: tuple(_L[f"names_{p}"] + _L["names_any"]) for p in el.PRONOUNS}


def _pool(hero_name: str) -> tuple[el.Character, ...]:
    """The characters that can share a fable with the hero."""
    return v1._pool(hero_name)


def _cast(hero: el.Character, r) -> list[el.Character]:
    """Friend, elder, passer-by and rival: four characters of the shipped list, all unlike the hero."""
    pool = _pool(hero.name)
    picks: list[el.Character] = []
    while len(picks) < min(4, len(pool)):
        pick = _pick(pool, r)
        if pick not in picks:
            picks.append(pick)
    return picks + picks[: 4 - len(picks)]


def _distinct(name: str, taken: list[str]) -> bool:
    """A name that no reader could take for a variant of another (fabulist.eval.quality's one-name rule)."""
    return all(name[:4] != t[:4] and name[-4:] != t[-4:] for t in taken if t)


def _names(c: dict, cast: list[el.Character], r) -> list[str]:
    """Names for the friend, the passer-by and the rival ("" for a friend known by its kind)."""
    taken, out = [c["name"], *c["spot"].split()], []  # no "Millbrook" beside a place called "Mill End"
    for who in cast:
        given = _name(who.pronoun, r)
        for _ in range(4):  # bounded: a handful of draws always finds one for the shipped lists
            if _distinct(given, taken):
                break
            given = _name(who.pronoun, r)
        else:
            given = ""
        taken.append(given)
        out.append(given)
    return out


def _name(pronoun: str, r) -> str:
    """A first name that suits the pronoun, or a whimsical compound name that suits anyone."""
    if r() < 0.15:
        return _pick(_HERO_NAMES[pronoun], r)
    first, last = _pick(_L["name_a"], r), _pick(_L["name_b"], r)
    while first[-1] == last[0]:  # "Hazellet", never "Hazel-let": a hyphen splits the name into words
        last = _pick(_L["name_b"], r)
    return first + last


def _spot(r, other: str = "", names: Iterable[str] = ()) -> str:
    """A named spot in the setting ("Mossy Nook"), unlike `other` in both words, and neither word a variant
    of a character's name: "Foxglove Mill came into view" reads "Mill" as a name beside a hero named Millie
    (fabulist.eval.quality's one-name rule)."""
    names = tuple(names)
    a, b = _pick(_L["spot_a"], r), _pick(_L["spot_b"], r)
    while (other and (other.startswith(a) or other.endswith(b))) or not (
        _distinct(a, names) and _distinct(b, names)
    ):
        a, b = _pick(_L["spot_a"], r), _pick(_L["spot_b"], r)
    return f"{a} {b}"


def _opening_context(elements: dict[str, el.Element], r) -> dict[str, str]:
    """Slots for the hero, the trait and the setting: a name, a treasured thing, a named spot, ..."""
    hero, trait, setting = elements["character"], elements["trait"], elements["setting"]
    sights = setting.sights
    first = int(r() * len(sights))  # three sights in a rotated order (a setting may list fewer than three)
    sight = [sights[(first + i) % len(sights)] for i in range(3)]
    hname = _name(hero.pronoun, r)
    small = _pick(_L["hero_small"], r)
    if hero.name.startswith(small.strip() or "-"):  # no "little little robot"
        small = ""
    prop = f"{_pick(_L['prop_adj'], r)} {_pick(_L['prop_noun'], r)}"
    return {
        "hero": "the " + hero.name, "char": hero.name, "hname": hname or "the " + hero.name,
        "htitle": f"{hname} the {hero.name}" if hname else f"the {small}{hero.name}", "hsmall": small,
        "named": f" {_pick(('named', 'called'), r)} {hname}" if hname else "", "name": hname,
        **_PRONOUNS[""][hero.pronoun], "prop": prop, "prop_a": f"{article(prop)} {prop}",
        "catch": f"{_pick(_L['catch_a'], r)} {_pick(_L['catch_b'], r)}",
        "spot": _spot(r, names=(hname,)),
        "trait": trait.name, "trait_a": f"{trait.article} {trait.name}", "noun": trait.noun,
        "at": setting.at, "setting": setting.name, "sight1": sight[0], "sight2": sight[1], "sight3": sight[2],
    }  # fmt: skip


def _by_name(clause: str) -> str:
    """An element clause that calls the hero by name at its first pronoun ("Rosie had promised ... her
    word", "Pip borrowed Rosie's cart"); the pronouns after it stay. A clause that names the hero before
    its first pronoun stays as it is ("Pip boasted that she was", never "Pip boasted that Pip was")."""
    he, his, hero = clause.find("{he}"), clause.find("{his}"), clause.find("{hero}")
    first = min((at for at in (he, his) if at >= 0), default=-1)
    if first < 0 or 0 <= hero < first:
        return clause
    if first == he:
        return clause[:he] + "{hname}" + clause[he + 4 :]
    return clause.replace("{his}", "{hname}'s", 1)


@cache
def wordings(element: el.Element, field: str) -> tuple[str, ...]:
    """The documented wordings of an element clause (field "problem", "task" or "outcome"): the list
    wording first, then the grammar's clause_variants for the element's id (none for an unlisted one)."""
    listed = getattr(element, field)
    return (listed, *_VARIANTS[field].get(element.id, ()))


def _clause(element: el.Element, field: str, r) -> str:
    """One wording of an element clause, drawn, then reworded (see reword)."""
    return reword(_pick(wordings(element, field), r), r)


def reword(template: str, r) -> str:
    """An element clause template in one of its documented wordings (see WORDINGS)."""
    parts = _wording_parts(template)
    if len(parts) == 1:
        return template
    said = list(parts)
    for i in range(1, len(parts), 2):
        said[i] = _pick(WORDINGS[parts[i]], r)
    return "".join(said)


@cache
def _wording_parts(template: str) -> tuple[str, ...]:
    """text, wording, text, ...: the template split at its wordings, once per template."""
    return tuple(WORDING.split(template))


def _body_context(elements: dict[str, el.Element], c: Context) -> Context:
    """Add the friend, the elder, a passer-by, a rival, the day, the food, the theme, the filled clauses."""
    r = c.r
    friend, wise, passer, rival = _cast(elements["character"], r)[:4]
    fname, pname, rname = _names(c, [friend, passer, rival], r)
    fadj, cadj, radj = (_pick(_L["friend_adj"], r) for _ in range(3))
    ref, intro, pronoun = _pick(_WISE, r)
    big = wise.name.title()
    c.update(
        friend="the " + friend.name, fchar=friend.name, fname=fname or "the " + friend.name,
        ftitle=f"{fname} the {friend.name}" if fname else f"the {fadj} {friend.name}",
        fnamed=f" {_pick(('named', 'called'), r)} {fname}" if fname else "",
        fadj=fadj, fadj_a=f"{article(fadj)} {fadj}", **_PRONOUNS["f_"][friend.pronoun],
        wise=ref.format(w=wise.name, W=big), wise_a=intro.format(w=wise.name, W=big, at=c["at"]),
        wchar=wise.name, **_PRONOUNS["w_"][pronoun or wise.pronoun], theme=elements["moral"].theme,
        dayadj=_pick(_L["dayadj"], r), daypart=_pick(_L["daypart"], r),
        food=f"{_pick(_L['food_adj'], r)} {_pick(_L['food'], r)}",
        cameo_a=f"{article(cadj)} {cadj} {passer.name}" + (f" named {pname}" if pname else ""),
        pname=pname or f"the {cadj} {passer.name}",
        rchar=rival.name, rname=rname or f"the {radj} {rival.name}",
        rival_a=f"{article(radj)} {radj} {rival.name}" + (f" named {rname}" if rname else ""),
        **_PRONOUNS["r_"][rival.pronoun],
        spot2=_spot(r, c["spot"], (c["name"], fname, pname, rname)), fhome=_pick(_L["home_noun"], r),
        **{slot: _pick(_L[slot], r) for slot in G.fable_words},
    )  # fmt: skip
    # The element clauses call the friend and the hero by name where they have one: "Pip had fallen ...",
    # "Rosie had promised to help Pip ...".
    named = {**c, "friend": c["fname"], "hero": c["hname"]}
    conflict, resolution = elements["conflict"], elements["resolution"]
    c["problem"] = _by_name(_clause(conflict, "problem", r)).format_map(named)
    task = _clause(conflict, "task", r)
    c["task"] = task.format_map(named)
    c["outcome"] = _by_name(_clause(resolution, "outcome", r)).format_map(named)
    named.update(_FIRST_PERSON)  # the hero's own words: "I mean to keep my word," said Pip
    c["task_me"] = task.format_map(named)
    c["outcome_cap"] = c["outcome"][:1].upper() + c["outcome"][1:]
    keep = (c["problem"][1:], c["task"][1:], c["outcome"][1:])  # [1:]: also when capitalised
    c.polish = lambda sentence: _possessive(sentence, c["name"], c["his"], keep)
    return c.with_caps()


def _plan(r) -> list[list[tuple[str, bool]]]:
    """The paragraphs of a story shape after the opening: (rule, optional) beats, turning points filled in."""
    _, shape = _pick(_SHAPES, r)
    plan = []
    for paragraph in shape:
        beats: list[tuple[str, bool]] = []
        for beat in paragraph:
            if beat == "@turn":
                beats += [(b.lstrip("?"), b[0] == "?") for b in _pick(_TURNS, r)[1]]
            else:
                beats.append((beat.lstrip("?"), beat[0] == "?"))
        plan.append(beats)
    return plan


def _words(sentence: str) -> int:
    return sentence.count(" ") + 1  # sentences never hold double spaces, so this is len(sentence.split())


def _opening(elements: dict[str, el.Element], seed: int, opening_seed: int | None) -> tuple[str, Context]:
    """The first paragraph and the fable's context, drawing on from Random(seed)."""
    r = random.Random(seed).random
    if opening_seed is not None:  # the paragraph a prompt's beginning was cut from
        first, slots = v1.opening_with_context(elements, opening_seed)
        return first, _body_context(elements, Context(G, r, slots))
    c = _body_context(elements, Context(G, r, _opening_context(elements, r)))
    extras = sorted(G.opening_extras, key=lambda _: r())
    count = (1, 2, 2, 2, 3)[int(r() * 5)]  # 2-4 sentences with the introduction
    return " ".join([c.sentence("intro"), *(c.sentence(n) for n in extras[:count])]), c


def opening(elements: dict[str, el.Element], seed: int) -> str:
    """The introduction paragraph of write_fable(elements, seed): the character with its trait, in the
    setting (2-4 sentences)."""
    return _opening(elements, seed, None)[0]


def _possessive(sentence: str, name: str, his: str, keep: tuple[str, ...]) -> str:
    """A name said twice in a sentence keeps its pronoun the second time: "Berry hugged his ball", not
    "Berry hugged Berry's ball". A sentence that holds an element clause (`keep`) stays as it is."""
    own = " " + name + "'s "
    first = sentence.find(name)
    if own not in sentence[first + len(name) :] or any(k in sentence for k in keep):
        return sentence
    head, tail = sentence[: first + len(name)], sentence[first + len(name) :]
    return head + tail.replace(own, f" {his} ")


def write_fable(elements: dict[str, el.Element], seed: int, opening_seed: int | None = None) -> str:
    """A complete fable drawn from `seed`. With opening_seed, its first paragraph is exactly
    procedural_v1.opening(elements, opening_seed) (where prompt beginnings come from). Ends with the line
    'Moral: <moral text>'. Length: 120-300 words as counted by `len(text.split())`."""
    first, c = _opening(elements, seed, opening_seed)
    r = c.r
    moral = "Moral: " + elements["moral"].text
    fixed = _words(first) + _words(moral)
    goal = TARGET_WORDS[0] + 20 + int(r() * (TARGET_WORDS[1] - TARGET_WORDS[0] - 20))
    paragraphs = v1._realise(_plan(r), (TARGET_WORDS[0] - fixed, goal - fixed), c, r)
    text = "\n\n".join([first, *paragraphs, moral])
    return _LITTLE.sub(r"\1", text) if "little little" in text.lower() else text


# ---------------------------------------------------------------------------------------------------------
# The teacher that `fabulist data generate --teacher procedural` runs (the Teacher protocol of base.py)
# ---------------------------------------------------------------------------------------------------------
class ProceduralTeacher:
    """Writes one fable per prompt record with write_fable (v2) or procedural_v1.write_fable; offline, one
    core, deterministic."""

    name = "procedural"
    flush_every = 512  # fsync in groups: a fable takes ~0.1 ms, one fsync per record would dominate

    def __init__(self, seed: int = 0, version: str = "v2"):
        if version not in ("v1", "v2"):
            raise ValueError(f"unknown procedural teacher version {version!r}; choose v1 or v2")
        self.seed, self.version = seed, version
        self.write = write_fable if version == "v2" else v1.write_fable
        # v1's records keep the fields they always had, so its corpus reproduces record for record.
        self.llm_name = "procedural-v2" if version == "v2" else "procedural"

    def fable_seed(self, prompt: dict) -> int:
        """The write_fable seed of a prompt: its hash mixed with the run's seed, so that a rerun or a
        resume writes the same fable and another --seed writes another."""
        return int(prompt["prompt_hash"], 16) ^ (self.seed * 0x9E3779B97F4A7C15)

    def outcomes(self, prompts: Iterable[dict], budget: Budget) -> Iterator[Outcome]:
        for prompt in prompts:
            start = time.perf_counter()
            try:
                story = {kind: el.lookup(kind, prompt["elements"][kind]) for kind in el.KINDS}
                text = self.write(story, self.fable_seed(prompt), opening_seed=prompt.get("opening_seed"))
            except (el.ElementError, KeyError, ValueError) as exc:
                yield Outcome(prompt, error=f"{type(exc).__name__}: {exc}")
                continue
            record = fable_record(
                prompt, text, teacher=self.name, llm_name=self.llm_name, input_tokens=0,
                output_tokens=0, seconds=time.perf_counter() - start, sampling={},
                seed=self.seed,
            )  # fmt: skip
            yield Outcome(prompt, record=record)
