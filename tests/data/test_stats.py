"""`fabulist data stats` and the duplicate detection it shares with `split`, on small hand-built files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

from fabulist import elements
from fabulist.cli import main
from fabulist.data import dedup
from fabulist.data.stats import compute_stats, render_text, sentences, write_plot
from fabulist.records import dumps
from tests.builders import assert_plot

VOCAB = [f"{a}{b}" for a in ("bra", "clo", "fen", "mu", "pit", "sor", "tav", "zen") for b in "aeiouyklmn"]


def text_of(seed: int, n_words: int = 150) -> str:
    """A deterministic pseudo-story of n_words words, sentences of ten words."""
    rng = random.Random(seed)
    words = [rng.choice(VOCAB) for _ in range(n_words)]
    return " ".join(" ".join(words[i : i + 10]).capitalize() + "." for i in range(0, n_words, 10))


def change_one_word(text: str, at: int = 70) -> str:
    words = text.split(" ")
    words[at] = "zebra"
    return " ".join(words)


def record(i: int, fable: str, **extra) -> dict:
    ids = {kind: elements.load(kind)[0].id for kind in elements.KINDS}
    base = {
        "language": "en",
        "prompt": f"Write fable {i}.",
        "prompt_hash": f"{i:016x}",
        "fable": fable,
        "llm_name": "procedural-v1",
        "llm_input_tokens": 0,
        "llm_output_tokens": 100 + i,
        "llm_inference_time": 0.001,
        "generation_datetime": "2026-11-28T05:00:00Z",
        "pipeline_version": "fabulist-data-1",
        "teacher": "procedural",
        "variant": "full",
        "elements": ids,
        "shown": list(elements.KINDS),
        "beginning": None,
        "sampling": {},
        "seed": 0,
    }
    return {**base, **extra}


def write_jsonl(path, records) -> str:
    path.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


MORAL = "Moral: Kindness is rewarded."


@pytest.fixture
def small(tmp_path):
    """Five fables: a near-duplicate pair, an exact-duplicate pair (case and spacing differ), a short one."""
    a, b = text_of(1), text_of(2)
    ids = {kind: [e.id for e in elements.load(kind)] for kind in elements.KINDS}
    second = {kind: ids[kind][1 % len(ids[kind])] for kind in elements.KINDS}
    records = [
        record(0, f"{a}\n\n{MORAL}"),
        record(1, f"{change_one_word(a)}\n\n{MORAL}", variant="partial"),
        record(2, b, elements=second, llm_name="gpt-x", teacher="openai"),
        record(3, "  " + b.upper().replace(". ", ".   \n"), elements=second, variant="partial"),
        record(3, f"The fox ran. The fox ran fast!\n{MORAL}", elements={**second, "character": "dragon-x"}),
    ]
    return write_jsonl(tmp_path / "fables.jsonl", records), records


def test_counts_lengths_and_mix(small):
    path, records = small
    s = compute_stats(path)
    assert s["records"] == 5
    assert s["unique_prompt_hashes"] == 4
    assert s["variants"] == {"full": 3, "partial": 2}
    assert s["teachers"] == {"procedural": 4, "openai": 1}
    assert s["llm_names"] == {"procedural-v1": 4, "gpt-x": 1}
    # 150 words (+4 for the moral line: "moral", "kindness", "is", "rewarded"); punctuation is not counted
    assert s["words"]["min"] == 11 and s["words"]["max"] == 154  # the short fable: 11 words, 3 marks
    assert s["words"]["median"] == 150
    chars = [len(r["fable"]) for r in records]
    assert s["characters"]["min"] == min(chars) and s["characters"]["max"] == max(chars)
    assert s["characters"]["mean"] == pytest.approx(sum(chars) / 5)
    tokens = {"min": 100, "p5": 100.2, "median": 102, "mean": 101.8, "p95": 103, "max": 103}  # 100..103, 103
    assert s["llm_output_tokens"] == pytest.approx(tokens)


def test_distinct_by_hand(tmp_path):
    # tokens: [the cat sat .] [the cat ran !] -> unigrams 6 unique of 8; bigrams 5 unique of 6
    path = write_jsonl(tmp_path / "two.jsonl", [record(0, "The cat sat."), record(1, "The  cat ran!")])
    s = compute_stats(path)
    assert s["distinct"] == {"distinct_1": 6 / 8, "distinct_2": 5 / 6, "sample_size": 2, "sampled": False}
    assert s["words"]["min"] == s["words"]["max"] == 3
    assert sorted(s["top_sentences"], key=lambda t: t["sentence"]) == [
        {"sentence": "The cat ran!", "fables": 1, "share": 0.5},
        {"sentence": "The cat sat.", "fables": 1, "share": 0.5},
    ]


def test_sample_is_deterministic_and_reported(small):
    path, _ = small
    first, second = compute_stats(path, sample_size=2), compute_stats(path, sample_size=2)
    assert first["distinct"]["sampled"] is True and first["distinct"]["sample_size"] == 2
    assert first["distinct"] == second["distinct"]
    assert "random sample of 2 of 5 fables" in render_text(first)


def test_element_coverage(small):
    path, _ = small
    cover = compute_stats(path)["elements"]
    for kind in elements.KINDS:
        shipped = len(elements.load(kind))
        assert cover[kind]["shipped"] == shipped
        if kind != "character":  # id 0 in records 0-1, id 1 in records 2-4
            assert cover[kind]["covered"] == 2 and cover[kind]["max_count"] == 3
    character = cover["character"]
    assert character["covered"] == 2 and character["unknown_ids"] == ["dragon-x"]
    assert character["max_count"] == 2  # id 0 in records 0-1, id 1 in records 2-3, record 4 unknown
    assert character["min_count"] == (0 if len(elements.load("character")) > 2 else 2)
    assert cover["moral"] == {
        "covered": 2, "shipped": len(elements.load("moral")), "unknown_ids": [],
        "max_count": 3, "min_count": 0 if len(elements.load("moral")) > 2 else 2,
    }  # fmt: skip


def test_exact_and_near_duplicates(small):
    path, _ = small
    d = compute_stats(path)["duplicates"]
    assert d["exact"]["records"] == 1
    assert d["exact"]["examples"] == [{"prompt_hash": f"{3:016x}", "first": f"{2:016x}"}]
    assert d["near"]["records"] == 1
    (pair,) = d["near"]["examples"]
    assert (pair["prompt_hash"], pair["first"]) == (f"{1:016x}", f"{0:016x}")
    assert 0.8 <= pair["jaccard"] <= 1.0


def test_near_duplicate_one_word_changed_found_unrelated_not():
    a = text_of(10)
    unrelated = [text_of(11), text_of(12)]
    hasher = dedup.MinHasher()
    sigs = hasher.of_texts([a, *unrelated, change_one_word(a, at=3)])
    assert dedup.near_duplicates(sigs, 0.8) == [(3, 0, pytest.approx(0.93, abs=0.08))]
    assert dedup.near_duplicates(hasher.of_texts(unrelated), 0.8) == []
    assert (sigs[1] == sigs[2]).mean() < 0.1  # unrelated texts share almost no minimum


def test_signatures_deterministic_and_estimate_jaccard():
    base = text_of(20, 400)
    other = " ".join(w if i % 8 else "zebra" for i, w in enumerate(base.split(" ")))
    first, second = dedup.MinHasher().of_texts([base, other]), dedup.MinHasher().of_texts([base, other])
    assert np.array_equal(first, second)

    def shingles(t):
        w = [x for x in t.lower().replace(".", "").split()]
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    exact = len(shingles(base) & shingles(other)) / len(shingles(base) | shingles(other))
    assert (first[0] == first[1]).mean() == pytest.approx(exact, abs=0.12)


def test_band_choice_reaches_recall():
    bands, rows = dedup.choose_bands(0.8, 128)
    assert bands * rows <= 128
    assert 1 - (1 - 0.8**rows) ** bands >= 0.99


def test_sentences_and_top_sentences(tmp_path):
    assert sentences("  The fox ran.  It was\tfast!\r\nMoral:  Be kind.") == [
        "The fox ran.",
        "It was fast!",
        "Moral: Be kind.",
    ]
    fables = [f"{text_of(i, 20)}\n\n{MORAL}" for i in range(4)] + [f"{MORAL} {MORAL}", "No moral here."]
    path = write_jsonl(tmp_path / "f.jsonl", [record(i, f) for i, f in enumerate(fables)])
    top = compute_stats(path)["top_sentences"]
    assert top[0] == {"sentence": MORAL, "fables": 5, "share": 5 / 6}  # counted once per fable
    assert len(top) == 10


def test_text_report_is_aligned(small):
    path, _ = small
    text = render_text(compute_stats(path))
    assert "fables            5\n" in text
    assert "near (J >= 0.80)  1" in text
    header = next(line for line in text.splitlines() if line.startswith("lengths"))
    words = next(line for line in text.splitlines() if line.startswith("  words"))
    assert len(header) == len(words)


def test_cli_json_and_plot(small, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))  # matplotlib's font cache, if first import
    path, _ = small
    png = tmp_path / "plots" / "stats.png"
    result = CliRunner().invoke(main, ["data", "stats", path, "--json", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("records", "unique_prompt_hashes", "variants", "teachers", "llm_names", "words", "characters",
                "llm_output_tokens", "distinct", "elements", "duplicates", "top_sentences"):  # fmt: skip
        assert key in data
    assert_plot(png)
    assert not list(png.parent.glob(".*.tmp"))  # written atomically, no temp file left behind


def test_write_plot_from_dict(small, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    path, _ = small
    write_plot(compute_stats(path), tmp_path / "p.png")
    assert_plot(tmp_path / "p.png")


def test_cli_text_report(small):
    path, _ = small
    result = CliRunner().invoke(main, ["data", "stats", path])
    assert result.exit_code == 0
    assert result.stdout.startswith(path) and "top sentences" in result.stdout


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "file not found"),
        ("", [], "no fables"),
        ('{"fable": "a", "prompt_hash": "x"}\n\nnot json\n', [], ":3: not valid JSON"),
        ('{"fable": "a"}\n', [], ":1: missing field(s) prompt_hash"),
        ('{"fable": 3, "prompt_hash": "x"}\n', [], "field 'fable' must be text"),
        ('{"fable": "a", "prompt_hash": "x"}\n', ["--near-threshold", "1.5"], "threshold must be in (0, 1]"),
    ],
)
def test_cli_refusals_are_one_line(tmp_path, content, args, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "stats", str(path), *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
