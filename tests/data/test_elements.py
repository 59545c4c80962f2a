"""Properties of the shipped element lists and of the validation in `fabulist.elements`."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import fields
from importlib import resources

import pytest

from fabulist import elements as el

MIN_ENTRIES = 100

# Words whose a/an does not follow their first letter (silent h, "yoo" sound, "wun" sound).
AN_EXCEPTIONS = {"honest": "an", "honour": "an", "hour": "an", "heir": "an"}
A_EXCEPTIONS = {"unicorn": "a", "useful": "a", "unique": "a", "one": "a", "european": "a", "ewe": "a"}


def friend_slots(pronoun: str) -> dict[str, str]:
    p = el.PRONOUNS[pronoun]
    return {"f_he": p["he"], "f_him": p["him"], "f_his": p["his"]}


SAMPLE_SLOTS = [
    {"hero": "the fox", **el.PRONOUNS["she"], "friend": "the tortoise", **friend_slots("he")},
    {"hero": "the owl", **el.PRONOUNS["he"], "friend": "the hen", **friend_slots("she")},
]
TEMPLATE_FIELDS = {"conflict": ("problem", "task"), "resolution": ("outcome",)}


def expected_article(word: str) -> str:
    first = re.split(r"[\s-]", word.lower(), maxsplit=1)[0]
    exceptions = {**AN_EXCEPTIONS, **A_EXCEPTIONS}
    if first in exceptions:
        return exceptions[first]
    return "an" if first[0] in "aeiou" else "a"


def texts(element) -> list[str]:
    out = []
    for f in fields(element):
        value = getattr(element, f.name)
        out.extend(value if isinstance(value, tuple) else [value])
    return out


def raw_path(kind: str):
    return resources.files("fabulist.data") / "elements" / f"{kind}s.json"


@pytest.fixture(scope="module")
def lists() -> dict[str, tuple]:
    return el.load_all()


# --- the shipped lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", el.KINDS)
def test_each_kind_loads_with_enough_entries(lists, kind):
    assert len(lists[kind]) >= MIN_ENTRIES
    assert all(isinstance(e, el.CLASSES[kind]) for e in lists[kind])


@pytest.mark.parametrize("kind", el.KINDS)
def test_files_are_ascii_with_one_entry_per_line(kind):
    raw = raw_path(kind).read_bytes()
    raw.decode("ascii")  # straight quotes and apostrophes only
    lines = raw.decode("ascii").strip().splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    body = lines[1:-1]
    assert len(body) == len(json.loads(raw))
    for line in body:
        assert isinstance(json.loads(line.strip().rstrip(",")), dict)


@pytest.mark.parametrize("kind", el.KINDS)
def test_ids_and_names_are_unique(lists, kind):
    items = lists[kind]
    ids = [e.id for e in items]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    key = "text" if kind == "moral" else "name"
    names = [getattr(e, key).lower() for e in items]
    assert [n for n, c in Counter(names).items() if c > 1] == []


@pytest.mark.parametrize("kind", el.KINDS)
def test_every_slot_is_known_and_every_text_is_trimmed(lists, kind):
    for e in lists[kind]:
        for text in texts(e):
            slots = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            assert slots <= el.SLOTS, (e.id, text)
            assert text == text.strip() and "  " not in text, (e.id, text)


def test_the_sample_entries_are_kept_first(lists):
    assert [c.id for c in lists["character"][:3]] == ["fox", "rabbit", "owl"]
    assert [m.id for m in lists["moral"][:3]] == [
        "kindness-is-rewarded",
        "honesty-is-the-best-policy",
        "slow-and-steady-wins-the-race",
    ]


def test_characters_have_grammar(lists):
    pronouns = Counter(c.pronoun for c in lists["character"])
    assert set(pronouns) == {"he", "she"}
    assert min(pronouns.values()) >= len(lists["character"]) // 3  # a rough half/half mix
    for c in lists["character"]:
        assert c.name == c.name.lower() and c.plural == c.plural.lower()
        assert c.id == c.name.replace(" ", "-")
        assert c.plural != c.name or c.name in {"sheep", "deer", "moose", "reindeer", "starfish", "goldfish"}
    plurals = {c.name: c.plural for c in lists["character"]}
    assert plurals["mouse"] == "mice" and plurals["goose"] == "geese" and plurals["wolf"] == "wolves"


@pytest.mark.parametrize("kind", ["character", "trait"])
def test_articles_agree_with_the_following_word(lists, kind):
    wrong = [(e.id, e.article, e.name) for e in lists[kind] if e.article != expected_article(e.name)]
    assert wrong == []


def test_article_helper_handles_exceptions():
    assert expected_article("honest") == "an"
    assert expected_article("unicorn") == "a"
    assert expected_article("owl") == "an"
    assert expected_article("polar bear") == "a"
    assert expected_article("easy-going") == "an"


def test_articles_inside_texts_agree(lists):
    pattern = re.compile(r"\b(a|an) ([a-z][a-z-]*)", re.IGNORECASE)
    wrong = []
    for kind in el.KINDS:
        for e in lists[kind]:
            for text in texts(e):
                for art, word in pattern.findall(text):
                    if art.lower() != expected_article(word):
                        wrong.append((kind, e.id, f"{art} {word}"))
    assert wrong == []


def test_traits_read_in_a_sentence(lists):
    for t in lists["trait"]:
        assert " " not in t.name and t.name == t.name.lower()
        sentence = f"She was known for her {t.noun}. It was {t.article} {t.name} fox."
        assert "{" not in sentence and t.noun == t.noun.lower()


def test_settings_have_a_place_phrase_and_sights(lists):
    for s in lists["setting"]:
        assert s.name == s.name.lower()
        assert re.search(rf"\b{re.escape(s.name)}\b", s.at), s.id
        assert s.at.split()[0] in {"in", "on", "by", "at", "along", "among", "aboard", "under", "near"}, s.at
        assert 3 <= len(s.sights) <= 5, s.id
        assert len(set(s.sights)) == len(s.sights), s.id


@pytest.mark.parametrize("kind", sorted(TEMPLATE_FIELDS))
def test_templates_render_with_sample_slots(lists, kind):
    for e in lists[kind]:
        for name in TEMPLATE_FIELDS[kind]:
            template = getattr(e, name)
            for slots in SAMPLE_SLOTS:
                rendered = template.format(**slots)  # KeyError or ValueError would fail here
                assert "{" not in rendered and "}" not in rendered
                assert "the the " not in rendered.lower(), (e.id, rendered)
            assert not re.search(r"\b(the|a|an) \{(hero|friend)\}", template), (e.id, template)


# Clauses follow "One day, " or "In the end, ", so they must not open with a time phrase of their own.
TIME_OPENERS = ("one day", "that night", "that day", "from that day", "when ", "then ", "in the end", "later")


def test_clauses_are_lower_case_and_tasks_are_infinitives(lists):
    for c in lists["conflict"]:
        assert c.problem[0].islower() or c.problem.startswith("{"), c.id
        assert c.task.startswith("to "), c.id
        assert not c.problem.endswith(".") and not c.task.endswith("."), c.id
        assert c.name[0].isupper(), c.id
    for r in lists["resolution"]:
        assert r.outcome[0].islower() or r.outcome.startswith("{"), r.id
        assert not r.outcome.endswith("."), r.id
        assert r.name[0].isupper(), r.id
    clauses = [c.problem for c in lists["conflict"]] + [r.outcome for r in lists["resolution"]]
    assert [c for c in clauses if c.lower().startswith(TIME_OPENERS)] == []


def test_morals_are_distinct_sentences(lists):
    morals = lists["moral"]
    for m in morals:
        assert m.text.endswith("."), m.id
        assert m.text[0].isupper() and m.text.count(".") == 1, m.id
        assert m.theme == m.theme.lower(), m.id
    assert len({m.text.lower() for m in morals}) == len(morals)
    assert max(Counter(m.theme for m in morals).values()) <= 3


def test_lookup_finds_shipped_ids_and_rejects_unknown():
    assert el.lookup("character", "owl").article == "an"
    assert el.lookup("setting", "forest").at == "in the forest"
    with pytest.raises(el.ElementError, match="unknown character 'dragon-king'"):
        el.lookup("character", "dragon-king")


# --- validation in `parse` --------------------------------------------------------------------------------

GOOD = {
    "character": {"id": "fox", "name": "fox", "article": "a", "plural": "foxes", "pronoun": "she"},
    "setting": {"id": "forest", "name": "forest", "at": "in the forest", "sights": ["tall trees"]},
    "conflict": {"id": "c", "name": "C", "problem": "{friend} was stuck", "task": "to help {friend}"},
}


def test_parse_accepts_good_items():
    for kind, item in GOOD.items():
        (parsed,) = el.parse(kind, [item])
        assert parsed.id == item["id"]


def test_parse_rejects_unknown_slot():
    bad = {**GOOD["conflict"], "problem": "{villain} took {friend}'s hat"}
    with pytest.raises(el.ElementError, match=r"unknown slot\(s\) \['villain'\] in 'problem'"):
        el.parse("conflict", [bad], source="conflicts.json")


def test_parse_rejects_bad_article():
    bad = {**GOOD["character"], "article": "the"}
    with pytest.raises(el.ElementError, match="article must be 'a' or 'an', got 'the'"):
        el.parse("character", [bad])


def test_parse_rejects_setting_whose_at_lacks_its_name():
    bad = {**GOOD["setting"], "at": "in the woods"}
    with pytest.raises(el.ElementError, match="'at' must contain the name"):
        el.parse("setting", [bad])


def test_parse_rejects_duplicate_id():
    with pytest.raises(el.ElementError, match=r"item 1: duplicate id 'fox'"):
        el.parse("character", [GOOD["character"], {**GOOD["character"], "name": "red fox"}])


def test_parse_rejects_missing_field_and_bad_pronoun():
    missing = {k: v for k, v in GOOD["character"].items() if k != "plural"}
    with pytest.raises(el.ElementError, match="expected fields"):
        el.parse("character", [missing])
    with pytest.raises(el.ElementError, match="pronoun must be 'he' or 'she'"):
        el.parse("character", [{**GOOD["character"], "pronoun": "it"}])
