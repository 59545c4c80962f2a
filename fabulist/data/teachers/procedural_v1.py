"""Procedural teacher v1, frozen: the story plan that wrote the corpus the shipped fable-5m was trained on.

    fabulist data generate --prompts prompts.jsonl -o fables.jsonl --teacher procedural-v1

Its grammar is data (grammars/v1.json, expanded by grammar.py); this module is the plan that walks it,
unchanged since the corpus was made, so the same (elements, seed) gives byte-identical fables
(tests/data/test_procedural_v1.py holds it to sha256 hashes recorded before the grammar became data).
Do not edit it or v1.json: write a new grammar version instead (procedural.py is v2).

The beats: an opening (the character with its trait, in the setting, 2-4 sentences), the problem and what
the hero must do, one or two turning points (advice from an elder, a failed first try, a temptation, a talk
with the friend, bad weather), the work and the resolution, a short closing, and `Moral: <text>`.
Prompt beginnings (fabulist.data.prompts, variant "beginning") are cut from this module's opening(), so
prompt files stay the same whichever teacher version writes the fables.
"""

from __future__ import annotations

import random
import re

from fabulist import elements as el
from fabulist.data.teachers.grammar import Context, article, load

MIN_WORDS, MAX_WORDS = 120, 300  # guaranteed bounds (len(text.split()), the Moral line included)
TARGET_WORDS = (150, 250)  # aimed-for bounds: each fable gets a goal within them

G = load("v1")
_L = G.lists
_WISE = tuple(tuple(w) for w in G.wise)
_SPARE = tuple(el.Character(*c) for c in G.spare)
_HERO_NAMES = {p: tuple(_L[f"names_{p}"] + _L["names_any"]) for p in el.PRONOUNS}
_TURNS = {kind: tuple((rule, opt) for rule, opt in beats) for kind, beats in G.turns.items()}
_TURN_KINDS = tuple(_TURNS)
_TURN_PAIRS = tuple((a, b) for a in _TURN_KINDS for b in _TURN_KINDS if a != b)
_EXTRAS = tuple(G.opening_extras)  # opening sentences after the introduction
_OPENING_ORDERS = tuple((a, b, c) for a in _EXTRAS for b in _EXTRAS for c in _EXTRAS if len({a, b, c}) == 3)
# Pronoun slots per prefix ("" hero, "f_" friend, "w_" elder) and pronoun, e.g. {"f_he": "she", ...}.
_PRONOUNS = {
    x: {p: {x + k: v for k, v in el.PRONOUNS[p].items()} for p in el.PRONOUNS} for x in ("", "f_", "w_")
}
_LITTLE = re.compile(r"\b(little) little\b", re.IGNORECASE)


def _pick(seq, r):
    # r() is Random.random: an index from it is cheaper than Random.choice.
    return seq[int(r() * len(seq))]


def name(pronoun: str, r) -> str:
    """A first name that suits the pronoun, or a whimsical compound name that suits anyone."""
    if r() < 0.4:
        return _pick(_HERO_NAMES[pronoun], r)
    first, last = _pick(_L["name_a"], r), _pick(_L["name_b"], r)
    return first + last if first[-1] != last[0] else first + "-" + last


def opening_context(elements: dict[str, el.Element], r) -> dict[str, str]:
    """Slots for the hero, the trait and the setting, with the choices the opening makes about them."""
    hero, trait, setting = elements["character"], elements["trait"], elements["setting"]
    sights = setting.sights
    first = int(r() * len(sights))  # three sights in a rotated order (a setting may list fewer than three)
    sight = [sights[(first + i) % len(sights)] for i in range(3)]
    hname = name(hero.pronoun, r) if r() < 0.9 else ""
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
        "spot": f"{_pick(_L['spot_a'], r)} {_pick(_L['spot_b'], r)}",
        "trait": trait.name, "trait_a": f"{trait.article} {trait.name}", "noun": trait.noun,
        "at": setting.at, "setting": setting.name, "sight1": sight[0], "sight2": sight[1], "sight3": sight[2],
    }  # fmt: skip


def _opening(elements: dict[str, el.Element], r) -> tuple[str, Context]:
    """The opening paragraph drawn from `r`, and the slots the rest of the fable needs from it."""
    c = Context(G, r, opening_context(elements, r)).with_caps()
    extras = _pick(_OPENING_ORDERS, r)
    count = (1, 2, 2, 2, 3)[int(r() * 5)]  # 2-4 sentences with the introduction
    return " ".join([c.sentence("intro"), *(c.sentence(n) for n in extras[:count])]), c


def _cast(hero: el.Character, r) -> list[el.Character]:
    """Friend, elder and passer-by: three characters from the shipped list, all different from the hero."""
    pool = _pool(hero.name)
    picks: list[el.Character] = []
    while len(picks) < 3:
        pick = _pick(pool, r)
        if pick not in picks:
            picks.append(pick)
    return picks


_POOLS: dict[str, tuple[el.Character, ...]] = {}


def _pool(hero_name: str) -> tuple[el.Character, ...]:
    if hero_name not in _POOLS:
        pool = [c for c in el.load("character") if c.name != hero_name]
        pool += [c for c in _SPARE if c.name != hero_name and all(c.name != p.name for p in pool)]
        _POOLS[hero_name] = tuple(pool)
    return _POOLS[hero_name]


def _body_context(elements: dict[str, el.Element], c: dict[str, str], r) -> Context:
    """Add the friend, the elder, a passer-by, the day, the food, the theme, and the filled clauses."""
    friend, wise, passer = _cast(elements["character"], r)
    fadj, cadj = _pick(_L["friend_adj"], r), _pick(_L["friend_adj"], r)
    fname = name(friend.pronoun, r) if r() < 0.75 else ""
    if fname[:4] == c["name"][:4]:  # no "Mistyleaf" and "Mistywick" in one fable
        fname = ""
    ref, intro, pronoun = _pick(_WISE, r)
    big = wise.name.title()
    c = Context(G, r, c)
    c.update(
        friend="the " + friend.name, fchar=friend.name, fname=fname or "the " + friend.name,
        ftitle=f"{fname} the {friend.name}" if fname else f"the {fadj} {friend.name}",
        fnamed=f" {_pick(('named', 'called'), r)} {fname}" if fname else "",
        fadj=fadj, fadj_a=f"{article(fadj)} {fadj}", **_PRONOUNS["f_"][friend.pronoun],
        wise=ref.format(w=wise.name, W=big), wise_a=intro.format(w=wise.name, W=big, at=c["at"]),
        **_PRONOUNS["w_"][pronoun or wise.pronoun], theme=elements["moral"].theme,
        dayadj=_pick(_L["dayadj"], r), daypart=_pick(_L["daypart"], r),
        food=f"{_pick(_L['food_adj'], r)} {_pick(_L['food'], r)}",
        cameo_a=f"{article(cadj)} {cadj} {passer.name} named {name(passer.pronoun, r)}",
    )  # fmt: skip
    c["problem"] = elements["conflict"].problem.format_map(c)
    c["task"] = elements["conflict"].task.format_map(c)
    c["outcome"] = elements["resolution"].outcome.format_map(c)
    return c.with_caps()


def _plan(r) -> list[list[tuple[str, bool]]]:
    """Which rules make up each paragraph after the opening, each flagged optional or not."""
    problem = [("friend_intro", False), ("problem_line", False), ("reaction", True)]
    if r() < 0.4:
        problem.append(("friend_speech", True))
    turns = _pick(_TURN_PAIRS, r) if r() < 0.45 else (_pick(_TURN_KINDS, r),)
    middle = [list(_TURNS[kind]) for kind in turns]
    if r() < 0.5:  # what the hero must do ends the problem or opens the turning point
        problem.append(("task_line", False))
    else:
        middle[0].insert(0, ("task_line", False))
    work = [("work_start", False)]
    if r() < 0.5:
        work.append(("cameo", True))
    work += [("effort", True), ("effort", True)]
    if r() < 0.5:
        work.append(("time_pass", True))
    work += [("resolution", False), ("feeling", True)]
    closing = [("closing", False), ("closing", True)]
    if r() < 0.3:  # sometimes the closing is part of the last paragraph
        return [problem, *middle, work + closing]
    return [problem, *middle, work, closing]


def _words(sentence: str) -> int:
    return sentence.count(" ") + 1  # sentences never hold double spaces, so this is len(sentence.split())


def _realise(plan: list[list[tuple[str, bool]]], budget: tuple[int, int], c: Context, r) -> list[str]:
    """Write the planned paragraphs: every required sentence, then optional ones in random order while
    they fit the word budget (low, high), then small scene sentences if still under `low`."""
    low, high = budget
    text = [[c.sentence(rule) if not optional else "" for rule, optional in p] for p in plan]
    total = sum(_words(t) for p in text for t in p if t)
    optional = [(i, j) for i, p in enumerate(plan) for j, (_, opt) in enumerate(p) if opt]
    while optional and total < high:
        i, j = optional.pop(int(r() * len(optional)))
        sentence = c.sentence(plan[i][j][0])
        if total + _words(sentence) <= high and sentence not in text[i]:
            text[i][j] = sentence
            total += _words(sentence)
    work = text[-2] if len(text) > 2 else text[-1]
    for _ in range(20):  # bounded: a few fillers always suffice for any sane element list
        if total >= low:
            break
        filler = c.sentence("filler")
        work.insert(max(len(work) - 2, 0), filler)
        total += _words(filler)
    return [" ".join(t for t in p if t) for p in text]


def opening(elements: dict[str, el.Element], seed: int) -> str:
    """The introduction paragraph: the character with its trait, in the setting (2-4 sentences)."""
    return _opening(elements, random.Random(seed).random)[0]


def opening_with_context(elements: dict[str, el.Element], seed: int) -> tuple[str, Context]:
    """opening(elements, seed) and the slots it fixed (the hero's name, treasured thing, spot, sights)."""
    return _opening(elements, random.Random(seed).random)


def write_fable(elements: dict[str, el.Element], seed: int, opening_seed: int | None = None) -> str:
    """A complete fable. Its first paragraph is exactly opening(elements, opening_seed) when opening_seed
    is given (else derived from seed); everything after it is drawn from `seed`. Ends with a final line
    'Moral: <moral text>'. Length: 120-300 words as counted by `len(text.split())`."""
    rng = random.Random(seed)
    if opening_seed is None or opening_seed == seed:
        # One stream: the opening takes the first draws of Random(seed), exactly as opening() does, and
        # the body continues the same stream.
        first, c = _opening(elements, rng.random)
    else:
        first, c = _opening(elements, random.Random(opening_seed).random)
    r = rng.random
    c = _body_context(elements, c, r)
    moral = "Moral: " + elements["moral"].text
    fixed = _words(first) + _words(moral)
    # A per-fable length goal, so that lengths spread over the target range instead of piling at its top.
    goal = TARGET_WORDS[0] + 20 + int(r() * (TARGET_WORDS[1] - TARGET_WORDS[0] - 20))
    paragraphs = _realise(_plan(r), (TARGET_WORDS[0] - fixed, goal - fixed), c, r)
    # An adjective the character's own name already holds: "a little little robot", "Little little robot".
    return _LITTLE.sub(r"\1", "\n\n".join([first, *paragraphs, moral]))
