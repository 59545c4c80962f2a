"""The child-safety screen: what it catches, the look-alikes it leaves alone, and its place in stats/split.

The positive examples are the mildest terms that prove each category works; they are test data, not text
the project would ever keep.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fabulist.cli import main
from fabulist.data import safety
from fabulist.data.safety import CATEGORIES, Hit, Tally, expand, screen, summarize
from fabulist.data.split import split_dataset
from fabulist.data.stats import compute_stats, render_text
from tests.builders import make_fables

from .test_split import N_UNIQUE, read
from .test_split import fables as split_fables
from .test_stats import record, text_of, write_jsonl


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Oh, what the hell, said the goat.", [("profanity", "what the hell", "what the hell", 4)]),
        ("The fox called him a bastard.", [("profanity", "bastard", "bastard", 21)]),
        ("The bullies called the mouse a midget.", [("slurs", "midget", "midget", 31)]),
        ("The book was full of porn.", [("sexual", "porn", "porn", 21)]),
        ("There was nudity on the page.", [("sexual", "nudity", "nudity", 10)]),
        ("The troll beheaded the goat.", [("violence", "beheaded", "beheaded", 10)]),
        ("He lay in a pool of blood.", [("violence", "pool of blood", "pool of blood", 12)]),
        ("The lonely frog wanted to die.", [("self_harm", "wanted to die", "wanted to die", 16)]),
        ("She spoke of Suicide.", [("self_harm", "suicide", "Suicide", 13)]),
    ],
)
def test_each_category_is_caught(text, expected):
    hits = screen(text)
    assert [(h.category, h.term, h.text, h.start) for h in hits] == expected
    assert all(text[h.start : h.end] == h.text for h in hits)


def test_hits_are_in_order_with_original_spelling():
    text = "A Self-Harm story?\nNo: the Bastards stabbed him, what the HELL."
    assert screen(text) == [
        Hit("self_harm", "self harm", "Self-Harm", 2, 11),
        Hit("profanity", "bastards", "Bastards", 27, 35),
        Hit("violence", "stabbed", "stabbed", 36, 43),
        Hit("profanity", "what the hell", "what the HELL", 49, 62),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "The wolf's bite was worse than his bark.",
        "It was a grave mistake to trust the fox.",
        "The path came to a dead end.",
        "She shot a glance at the crow.",
        "The crab was crabby all morning.",
        "He killed time by the pond.",
        "It was time to hit the road.",
        "The bear had a bloody nose after the fall.",
        "The boy cut himself on a sharp reed.",
        "The owl flew over Scunthorpe, Sussex and Essex to a class in a shell.",
        "The assassin bug hid in the grass by the cocktail glass.",
        "The spicy soup had many spices.",
        "The crappies swam in the cool lake.",
        "A murder of crows sat on the fence.",
        "He felt a stab of envy, then took a stab at the riddle.",
        "Light came through a chink in the wall.",
        "Homo sapiens walked on two legs.",
        "The cock crowed, the ass brayed and the blue tit sang.",
        "The bug was hiding in the therapist's hat. Grapes!",
    ],
)
def test_look_alikes_are_clean(text):
    assert screen(text) == []


def test_allow_phrase_covers_only_its_own_words():
    text = "A murder of crows saw the murder."
    assert [(h.term, h.start) for h in screen(text)] == [("murder", 26)]


def test_plurals_only_for_bare_words():
    assert [h.term for h in screen("two bastards")] == ["bastards"]  # bare word: plural added
    assert screen("crappies") == []  # "crap(|py|ped)" spells out its forms: no guessed plural


def test_expand_and_plural():
    assert expand("(kill|killed) (him|her)") == ["kill him", "kill her", "killed him", "killed her"]
    assert expand("self-harm") == ["self harm"]
    assert expand("(gouged|gouging) (out |)his eyes")[:2] == ["gouged out his eyes", "gouged his eyes"]
    assert [safety.plural(w) for w in ("fox", "bush", "pony", "day", "hen")] == [
        "foxes",
        "bushes",
        "ponies",
        "days",
        "hens",
    ]


def test_term_lists_have_every_category():
    t = safety.terms()
    per_category = {name: sum(1 for c in t.category.values() if c == name) for name in CATEGORIES}
    assert all(count >= 20 for count in per_category.values()), per_category
    assert all(anchor in term for anchor, terms in t.by_anchor.items() for term in terms)
    assert max(len(terms) for terms in t.by_anchor.values()) <= 20  # no anchor fans out to many terms
    assert not t.anchors & {b"his", b"out", b"the", b"it", b"you", b"what"}  # function words never anchor
    assert (b"ripped", b"his", b"throat", b"out") in t.by_anchor[b"ripped"]


def test_summarize_and_tally():
    assert summarize(screen("what the hell, you bastard")) == {
        "profanity": 2,
        "slurs": 0,
        "sexual": 0,
        "violence": 0,
        "self_harm": 0,
    }
    tally = Tally(examples=2)
    for i, text in enumerate(["damn", "clean text", "damn it", "damn", "murder and damn"]):
        tally.add(text, f"p{i}")
    report = tally.report()
    assert (report["records"], report["records_flagged"]) == (5, 4)
    profanity, violence = report["categories"]["profanity"], report["categories"]["violence"]
    assert (profanity["records"], profanity["hits"], violence["records"]) == (4, 4, 1)
    assert [e["prompt_hash"] for e in profanity["examples"]] == ["p0", "p2"]
    assert violence["examples"] == [{"prompt_hash": "p4", "term": "murder", "context": "murder and damn"}]


def test_procedural_fables_are_clean():
    texts = [r["fable"] for r in make_fables(2000, seed=11)]
    flagged = [(i, screen(t)) for i, t in enumerate(texts) if screen(t)]
    assert flagged == []


PLANTED = {
    "bad-profanity": "The goat said: what the hell.",
    "bad-violence": "Then the troll beheaded the goat.",
    "bad-self-harm": "The frog wanted to die.",
}


@pytest.fixture
def planted(tmp_path):
    """test_split's 60 unique fables + 4 duplicates, 3 unsafe fables, and an exact copy of one of them."""
    records = split_fables()
    bad = [record(500 + i, text_of(500 + i) + " " + line, prompt_hash=key) for i, (key, line) in
           enumerate(PLANTED.items())]  # fmt: skip
    copy = record(600, bad[2]["fable"], prompt_hash="bad-self-harm-copy")
    records += [*bad, copy]
    return write_jsonl(tmp_path / "fables.jsonl", records)


def test_stats_has_a_safety_section(planted, tmp_path):
    s = compute_stats(planted)
    assert s["safety"]["records_flagged"] == 4
    counts = {name: (c["records"], c["hits"]) for name, c in s["safety"]["categories"].items()}
    assert counts == {"profanity": (1, 1), "slurs": (0, 0), "sexual": (0, 0), "violence": (1, 1),
                      "self_harm": (2, 2)}  # fmt: skip
    assert s["safety"]["categories"]["self_harm"]["examples"] == [
        {
            "prompt_hash": "bad-self-harm",
            "term": "wanted to die",
            "context": "...zena feny zenn mua zenn zenm. The frog wanted to die.",
        },
        {
            "prompt_hash": "bad-self-harm-copy",
            "term": "wanted to die",
            "context": "...zena feny zenn mua zenn zenm. The frog wanted to die.",
        },
    ]
    text = render_text(s)
    assert "\nsafety " in text and "\n  flagged                    4" in text
    assert "\n  self-harm                  2         2\n    bad-self-harm  'wanted to die': " in text
    as_json = CliRunner().invoke(main, ["data", "stats", planted, "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["safety"] == s["safety"]
    report = CliRunner().invoke(main, ["data", "stats", planted])
    assert (
        "\n    bad-violence  'beheaded': ...itm clol clon cloi brae. Then the troll beheaded the goat.\n"
        in report.stdout
    )


def split(*args):
    return CliRunner().invoke(main, ["data", "split", *args])


def test_split_drops_planted_records(planted, tmp_path):
    result = split(planted, "--out", str(tmp_path / "out"), "--valid-fraction", "0.3")
    assert result.exit_code == 0, result.output
    assert "dropped 3 exact and 2 near duplicates" in result.stdout
    assert "safety: 4 fables flagged (profanity 1, violence 1, self_harm 2): dropped 3\n" in result.stdout
    rows = read(tmp_path / "out" / "train.parquet") + read(tmp_path / "out" / "valid.parquet")
    assert len(rows) == N_UNIQUE
    assert not any(r["prompt_hash"].startswith("bad-") for r in rows)
    summary = json.loads((tmp_path / "out" / "split.json").read_text())
    assert summary["dropped"] == {"exact_duplicates": 3, "near_duplicates": 2}
    flagged = {key: summary["safety"][key] for key in ("mode", "records_flagged", "dropped")}
    assert flagged == {"mode": "drop", "records_flagged": 4, "dropped": 3}
    assert summary["safety"]["categories"]["violence"]["examples"][0]["prompt_hash"] == "bad-violence"
    assert summary["records_in"] == 3 + 2 + 3 + summary["train"]["records"] + summary["valid"]["records"]


def test_split_keep_keeps_planted_records(planted, tmp_path):
    result = split(planted, "--out", str(tmp_path / "out"), "--safety", "keep")
    assert result.exit_code == 0, result.output
    assert (
        "safety: 4 fables flagged (profanity 1, violence 1, self_harm 2): kept (--safety keep)\n"
        in result.stdout
    )
    rows = read(tmp_path / "out" / "train.parquet") + read(tmp_path / "out" / "valid.parquet")
    assert len(rows) == N_UNIQUE + 3  # the copy of a planted record is still an exact duplicate
    assert {r["prompt_hash"] for r in rows if r["prompt_hash"].startswith("bad-")} == set(PLANTED)
    summary = split_dataset(planted, tmp_path / "again", safety="keep")
    assert (summary["safety"]["mode"], summary["safety"]["dropped"]) == ("keep", 0)


def test_split_of_clean_file_says_so(tmp_path):
    path = write_jsonl(tmp_path / "fables.jsonl", split_fables())
    result = CliRunner().invoke(main, ["data", "split", path, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and "safety: no fables flagged\n" in result.stdout


def test_bad_safety_value_is_one_line(planted, tmp_path):
    result = split(planted, "--out", str(tmp_path / "out"), "--safety", "maybe")
    assert result.exit_code == 1
    assert result.stderr == "error: --safety must be one of drop, keep, got 'maybe'\n"
    assert not (tmp_path / "out").exists()
