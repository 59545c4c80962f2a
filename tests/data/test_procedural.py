"""The procedural teacher (v2): determinism, the opening contract, every element present, length, grammar
checks, pronoun agreement and diversity, on random combinations of the shipped element lists. v1, frozen,
is held to golden hashes in test_procedural_v1.py."""

from __future__ import annotations

import os
import random
import re
import string
import subprocess
import sys

import pytest

from fabulist import elements
from fabulist.data import metrics
from fabulist.data.teachers import procedural, procedural_v1
from fabulist.data.teachers.procedural import opening, write_fable

LISTS = elements.load_all()


def combos(n: int, seed: int) -> list[tuple[dict, int]]:
    """n random (elements, fable seed) pairs."""
    rng = random.Random(seed)
    return [({k: rng.choice(v) for k, v in LISTS.items()}, rng.randrange(2**31)) for _ in range(n)]


SAMPLE = combos(300, seed=20240611)
CLAUSES = (("conflict", "problem"), ("conflict", "task"), ("resolution", "outcome"))  # element kind, field
FABLES = [write_fable(e, s) for e, s in SAMPLE]


def literal_pieces(template: str) -> list[str]:
    """The fixed text between the slots of an element template, e.g. "had fallen into a deep hole"."""
    pieces = [lit.strip(" ,.") for lit, _, _, _ in string.Formatter().parse(template)]
    return [p for p in pieces if len(p) > 3]


def any_wording(piece: str) -> str:
    """A regex for a literal piece in any of its documented wordings (procedural.WORDINGS): "could not
    climb out" also matches "couldn't climb out" and "just could not climb out", and nothing else."""
    parts = procedural.WORDING.split(piece)  # text, wording, text, ... (the pattern has one group)
    return "".join(
        re.escape(part) if i % 2 == 0 else "(?:" + "|".join(map(re.escape, procedural.WORDINGS[part])) + ")"
        for i, part in enumerate(parts)
    )


# --- determinism and the opening contract ---


def test_same_seed_same_fable_and_different_seeds_differ():
    e, seed = SAMPLE[0]
    assert write_fable(e, seed) == write_fable(e, seed)
    assert write_fable(e, seed, opening_seed=7) == write_fable(e, seed, opening_seed=7)
    assert opening(e, 5) == opening(e, 5)
    texts = {write_fable(e, s) for s in range(20)}
    assert len(texts) == 20
    assert len({opening(e, s) for s in range(20)}) == 20


def test_same_fable_in_another_process_with_another_hash_seed():
    e, seed = SAMPLE[1]
    ids = {k: v.id for k, v in e.items()}
    code = (
        "from fabulist import elements as el\n"
        "from fabulist.data.teachers.procedural import write_fable\n"
        f"e = {{k: el.lookup(k, i) for k, i in {ids!r}.items()}}\n"
        f"print(write_fable(e, {seed}, opening_seed=3), end='')\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout == write_fable(e, seed, opening_seed=3)


def test_fable_starts_with_its_opening():
    for i, (e, seed) in enumerate(SAMPLE):
        # Without an opening seed the opening is v2's own, drawn from the fable seed.
        assert FABLES[i].split("\n\n")[0] == opening(e, seed)
        # With one (a prompt with a beginning), it is v1's opening for that seed, where beginnings are cut.
        start = i * 7919
        fable = write_fable(e, seed, opening_seed=start)
        assert fable.split("\n\n")[0] == procedural_v1.opening(e, start)


@pytest.mark.parametrize("make", [opening, procedural_v1.opening], ids=["v2", "v1"])
def test_opening_has_two_to_four_sentences_with_character_trait_and_setting(make):
    for e, seed in SAMPLE:
        text = make(e, seed)
        assert 2 <= len(re.findall(r'[.!?]"?(?= |$)', text)) <= 4, text
        assert e["character"].name in text and e["setting"].name in text
        assert e["trait"].name in text or e["trait"].noun in text
        assert "\n" not in text


def test_body_is_drawn_from_the_fable_seed():
    e, seed = SAMPLE[2]
    a = write_fable(e, seed, opening_seed=1).split("\n\n")
    b = write_fable(e, seed + 1, opening_seed=1).split("\n\n")
    assert a[0] == b[0] and a[1:] != b[1:]


# --- content, length and grammar over the sample ---


def test_every_element_is_present():
    for (e, _), fable in zip(SAMPLE, FABLES, strict=True):
        lower = fable.lower()
        assert e["character"].name in fable
        assert e["setting"].name in fable and e["setting"].at in lower
        assert e["trait"].name in fable or e["trait"].noun in fable
        assert fable.splitlines()[-1] == "Moral: " + e["moral"].text
        assert fable.count("Moral:") == 1
        for kind, field in CLAUSES:
            assert said(procedural.wordings(e[kind], field), lower), (e[kind].id, field, fable)


def said(wordings: tuple[str, ...], lower: str) -> bool:
    """Whether the fable says one of a clause's documented wordings: all of its literal pieces, each in any
    of its phrase wordings."""
    return any(
        all(re.search(any_wording(piece.lower()), lower) for piece in literal_pieces(wording))
        for wording in wordings
    )


def test_element_clauses_use_the_documented_wordings():
    # Every member of a group stands for the others, drawn anew at each occurrence.
    assert procedural.reword("everyone wanted to play, but {he} could not", lambda: 0.5) == (
        "everybody longed to play, but {he} couldn't"
    )
    assert procedural.reword("{friend} could not find it", lambda: 0.99) == "{friend} just could not find it"
    assert procedural.reword("{friend} could not find it", lambda: 0.0) == "{friend} could not find it"
    assert procedural.reword("the bigger cart", lambda: 0.99) == "the bigger cart"  # whole words only
    assert re.fullmatch(any_wording("could not climb out"), "couldn't climb out")
    assert not re.fullmatch(any_wording("could not climb out"), "could climb out")

    # Over the sample, a clause is said in its list wording about as often as in each of its variants.
    for kind, field in CLAUSES:
        listed = sum(
            said(procedural.wordings(e[kind], field)[:1], fable.lower())
            for (e, _), fable in zip(SAMPLE, FABLES, strict=True)
        )
        assert 0.08 * len(SAMPLE) < listed < 0.45 * len(SAMPLE), (field, listed)


def test_clause_variants_are_wordings_of_shipped_clauses():
    """grammars/v2.json's clause_variants name shipped elements, use only the clause slots, and say each
    clause anew: a lower-case clause without end punctuation (a task "to ..."), unlike its other wordings."""
    slots = {"hero", "friend", "he", "his", "him", "himself", "f_he", "f_his", "f_him"}
    kinds = {"problem": "conflict", "task": "conflict", "outcome": "resolution"}
    for field, variants in procedural.G.clause_variants.items():
        ids = {e.id for e in LISTS[kinds[field]]}
        assert set(variants) == ids, field  # every clause has variants, and no variant names a missing id
        for element in LISTS[kinds[field]]:
            wordings = procedural.wordings(element, field)
            assert len(wordings) == len(set(wordings)) >= 3, (element.id, field)
            for wording in wordings[1:]:
                used = {name for _, name, _, _ in string.Formatter().parse(wording) if name}
                assert used <= slots, (element.id, wording)
                assert wording[-1] not in ".!?," and not re.search(r'[A-Z"]', wording), wording
                # A task follows "decided", "made a plan"; a problem follows "that" or a time ("One day, ").
                assert wording.startswith("to ") == (field == "task") or field == "outcome", wording


def test_word_counts_within_bounds():
    more = [write_fable(e, s) for e, s in combos(3000, seed=99)]
    counts = [len(f.split()) for f in FABLES + more]
    assert min(counts) >= procedural.MIN_WORDS and max(counts) <= procedural.MAX_WORDS
    # The counting rule the docstring states is also what metrics.words sees, minus punctuation.
    words_only = [t for t in metrics.words(FABLES[0]) if t[0].isalnum()]
    assert abs(len(words_only) - len(FABLES[0].split())) <= 5


def test_no_template_leftovers_or_typos():
    for fable in FABLES:
        assert not re.search(r"[{}\[\]]", fable), fable
        assert "  " not in fable and " ," not in fable and " ." not in fable
        assert not re.search(r"\bthe the\b|\ba a\b|\bto to\b", fable, re.IGNORECASE), fable
        # a/an before the words the grammar adds (element articles come from the data).
        assert not re.search(r"\ba [aeio]\w", fable, re.IGNORECASE), fable
        assert not re.search(r"\ban [bcdfgjklmnpqrstvwxyz]", fable, re.IGNORECASE), fable


def test_sentences_start_with_capitals_and_quotes_are_paired():
    for fable in FABLES:
        assert not re.search(r"[.!?] [a-z]|^[a-z]|\n[a-z]", fable), fable
        assert fable.count('"') % 2 == 0
        assert not re.search("[“”‘’]", fable)  # straight ASCII quotes only
        for paragraph in fable.split("\n\n"):
            assert paragraph[-1] in '.!?"', paragraph


def test_paragraphs_are_separated_by_blank_lines():
    for fable in FABLES:
        paragraphs = fable.split("\n\n")
        assert len(paragraphs) >= 4
        assert all(p.strip() == p and "\n" not in p for p in paragraphs)


# --- pronoun agreement ---


def one_pronoun_cast(monkeypatch, pronoun: str) -> None:
    """Make the friend, the elder and the passer-by share the hero's pronoun, so no other may appear."""
    same = tuple(c for c in LISTS["character"] if c.pronoun == pronoun)
    monkeypatch.setattr(procedural, "_pool", lambda hero_name: tuple(c for c in same if c.name != hero_name))
    forms = tuple(w for w in procedural._WISE if w[2] in (None, pronoun))
    monkeypatch.setattr(procedural, "_WISE", forms)


@pytest.mark.parametrize(
    ("pronoun", "others"), [("she", ("he", "his", "him", "himself")), ("he", ("she", "her", "herself"))]
)
def test_pronouns_agree_with_the_cast(monkeypatch, pronoun, others):
    one_pronoun_cast(monkeypatch, pronoun)
    heroes = [c for c in LISTS["character"] if c.pronoun == pronoun]
    rng = random.Random(3)
    for i in range(200):
        e = {k: rng.choice(v) for k, v in LISTS.items()}
        e["character"] = heroes[i % len(heroes)]
        words = set(metrics.words(write_fable(e, i)))
        assert not words & set(others), (pronoun, words & set(others))


# --- the teacher that `fabulist data generate --teacher procedural` runs ---


def test_teacher_writes_records_that_continue_their_beginnings():
    from fabulist.data import prompts
    from fabulist.data.teachers.base import Budget
    from fabulist.records import FABLE_FIELDS

    batch = list(prompts.sample(60, seed=4))
    assert {p["variant"] for p in batch} >= {"full", "beginning"}
    outcomes = list(procedural.ProceduralTeacher(seed=1).outcomes(batch, Budget()))
    again = list(procedural.ProceduralTeacher(seed=1).outcomes(batch, Budget()))
    other = list(procedural.ProceduralTeacher(seed=2).outcomes(batch[:1], Budget()))
    assert [o.record["fable"] for o in outcomes] == [o.record["fable"] for o in again]
    assert other[0].record["fable"] != outcomes[0].record["fable"]
    for prompt, outcome in zip(batch, outcomes, strict=True):
        record = outcome.record
        assert outcome.error is None and set(FABLE_FIELDS) <= set(record)
        assert record["prompt_hash"] == prompt["prompt_hash"] and record["teacher"] == "procedural"
        assert record["llm_name"] == "procedural-v2"
        if prompt["beginning"]:
            assert record["fable"].startswith(prompt["beginning"])


def test_teacher_reports_an_unknown_element_as_an_error():
    from fabulist.data.teachers.base import Budget

    prompt = {"prompt_hash": "00ff", "elements": {k: "no-such-id" for k in elements.KINDS}}
    [outcome] = procedural.ProceduralTeacher().outcomes([prompt], Budget())
    assert outcome.record is None and "no-such-id" in outcome.error


# --- diversity ---


@pytest.mark.slow
def test_diversity_does_not_regress():
    """distinct-2 stays where it is, above its target: v2 measured distinct-2 0.331 and self-BLEU-4 0.496 on
    these 500 random fables (v1: 0.207 and 0.686; benchmarks/procedural_teacher.py prints both)."""
    fables = [write_fable(e, s) for e, s in combos(500, seed=7)]
    assert metrics.distinct_n(fables, 2) >= 0.32


@pytest.mark.slow
def test_diversity_targets():
    """The data-v2 targets (issue 18): distinct-2 >= 0.30 and self-BLEU-4 <= 0.50 on 500 random fables."""
    fables = [write_fable(e, s) for e, s in combos(500, seed=7)]
    assert metrics.distinct_n(fables, 2) >= 0.30
    assert metrics.self_bleu(fables[:100], fables[100:]) <= 0.5


def test_the_grammar_is_data_expanded_without_generated_code():
    """v2's rules come from grammars/v2.json, and no module of the teacher builds code at run time."""
    import inspect

    from fabulist.data.teachers import grammar

    assert procedural.G.name == "v2" and "problem_line" in procedural.G.rules
    for module in (grammar, procedural, procedural_v1):
        assert not re.search(r"\b(exec|eval)\(", inspect.getsource(module)), module.__name__
