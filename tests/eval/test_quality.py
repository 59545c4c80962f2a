"""The judge-free quality bar: its matching rules, on the teacher's own fables and on a real runtime."""

import json
import subprocess
import sys

import pytest

from fabulist import elements as el
from fabulist.data import prompts as pr
from fabulist.data.teachers import procedural
from fabulist.eval import quality as q

IDS = {"character": "fox", "trait": "brave", "setting": "forest", "conflict": "", "resolution": "",
       "moral": "kindness-is-rewarded"}  # fmt: skip


def test_the_teachers_fables_meet_the_bar():
    """The rules are the teacher's own conventions: every procedural fable for evaluation prompts passes."""
    rows, fables = [], []
    for p in pr.sample(200, seed=3, region="eval", variants={"full": 1.0}):
        story = {k: el.lookup(k, p["elements"][k]) for k in el.KINDS}
        fables.append(procedural.write_fable(story, p["index"]))
        rows.append(q.check(fables[-1], p["elements"]))
    summary = q.summarize(rows, fables)
    assert q.verdict(summary) == [] and summary["moral_stated"] == 1.0 and summary["fables"] == 200
    assert 0.1 < summary["distinct_2"] < 0.6


# fable -> (moral line, character, setting, moral stated)
# fmt: off
CASES = [
    ("Two foxes lived in the forest.\n\nMoral: Kindness is rewarded.", (True, True, True, True)),
    ("A fox. Moral: Kindness is rewarded.", (False, True, False, False)),  # the moral needs its own line
    ("The fox in the forest.\nMoral: A kindness is always rewarded!", (True, True, True, True)),  # paraphrase
    ("The foxglove grew by the forestry office.\nMoral: Slow and steady wins.", (True, False, False, False)),
    ("A fox in the forest, no moral at all.", (False, True, True, False)),
]
# fmt: on


@pytest.mark.parametrize(("fable", "expected"), CASES)
def test_matching_rules(fable, expected):
    r = q.check(fable, IDS)
    assert (r["moral_line"], r["character"], r["setting"], r["moral_stated"]) == expected


def test_the_teachers_training_fables_have_none_of_the_glitches():
    """5,000 training-region fables (every prompt variant): no renamed hero, doubled phrase, broken run of
    function words, nameless introduction or unintroduced animal."""
    bad = []
    for p in pr.sample(5000, seed=11):
        story = {k: el.lookup(k, p["elements"][k]) for k in el.KINDS}
        fable = procedural.write_fable(story, p["index"], opening_seed=p["opening_seed"])
        found = (q.renamed(fable), q.doubled_phrase(fable), q.broken_run(fable), q.nameless(fable),
                 q.unintroduced(fable, story["character"].name))  # fmt: skip
        if any(found):
            bad.append((found, fable[:200]))
    assert bad == []


# The glitches readers saw in the shipped model's fables (issue: fables worth reading), and their look-alikes
# that are good English. (text, what the check reports or None)
# fmt: off
RENAMED = [
    ("An unkind monkey named Nutmegdale lived by the sea. Later, Tansydale ran.", "Nutmegdale -> Tansydale"),
    ("A fox named Pip lived here. Then Pippin, her cousin, came by.", "Pip -> Pippin"),
    ("A fox named Pip met a hare called Tansy. Pip and Tansy played at Sunny End.", None),
    ("A fox named Sunnyworth lived at Sunny End. Sunnyworth liked the hill at Sunny End.", None),
    ("A fox named Juniper lived there. Juniper smiled. Then Juniper slept.", None),
    ("There was a fox. The fox ran.", None),
]
DOUBLED = [
    ("Then the peacock and the peacock shared everything.", "the peacock and the peacock"),
    ("Poppyhop felt tingly with joy and tingly with joy.", "tingly with joy and tingly with joy"),
    ("She came by by the puddle.", "by by"),
    ("The little little robot waved.", "little little"),
    ("He tried and tried, again and again, and by and by it worked.", None),
    ("She had had enough. He said that that was fine.", None),
    ("A fox named Zephyr. Zephyr the fox liked to shout.", None),
    ('"Pip!" she called. "Pip, come home!"', None),
]
BROKEN = [
    ("An unkind monkey once lived quietly by the on the at Mossy Meadow.", "the on"),
    ("She sat near a the tree.", "a the"),
    ("He looked out of at the sky.", "of at"),
    ("The days went by at Acorn Gate and she stayed close by near the crabs.", None),
    ("He jumped from on top of the wall, ran out of the house and up to the door.", None),
    ("She walked on by the lake, in the morning, with the others.", None),
]
NAMELESS = [  # the shipped v2 model's own glitches, then the verb "called" in good English
    ("Long ago there lived a grateful goose named asked. The others knew.", "goose named asked"),
    ("A jolly ant named no boatie lived beside the lake.", "ant named no"),
    ("She met a curious pig named a jolly lizard named Juniper.", "pig named a"),
    ("A kind hawk named her red drum came by.", "hawk named her"),
    ("There was a calm young hamster called dwelt at Heather End.", "hamster called dwelt"),
    ('"I have to try," the camel called under his breath.', None),
    ("The fox called to her friend, the dog called back and the owl called softly.", None),
    ("The ox called the others. A hare named after her granny lived there.", None),
    ("A goose named Pip and a hen called Tansy lived by the mill.", None),
]
INTRODUCED = [
    ("One day the bear and the kitten promised to help.", "fox", "the bear"),
    ("A fox met a bear. Later the bear and the kitten promised to help.", "fox", "the kitten"),
    ("A fox met a bear and a little kitten. Later the bear and the kitten played.", "fox", None),
    ("The fox was hungry. Kittens played nearby, and the kittens laughed.", "fox", None),
    ("A rabbit lived by the pig pen. The rabbit was happy.", "rabbit", None),
]
# fmt: on


@pytest.mark.parametrize(("text", "found"), RENAMED)
def test_one_name_rule(text, found):
    assert q.renamed(text) == found


@pytest.mark.parametrize(("text", "found"), DOUBLED)
def test_doubled_phrase_rule(text, found):
    assert q.doubled_phrase(text) == found


@pytest.mark.parametrize(("text", "found"), BROKEN)
def test_broken_function_word_rule(text, found):
    assert q.broken_run(text) == found


@pytest.mark.parametrize(("text", "found"), NAMELESS)
def test_nameless_introduction_rule(text, found):
    assert q.nameless(text) == found


@pytest.mark.parametrize(("text", "hero", "found"), INTRODUCED)
def test_introduced_rule(text, hero, found):
    assert q.unintroduced(text, hero) == found


def test_glitch_checks_in_the_per_fable_row():
    fable = (
        "A fox named Pip lived in the forest. Pip and the bear and the bear played by the on the tree.\n\n"
    )
    r = q.check(fable + "Moral: Kindness is rewarded.", IDS)
    assert (r["one_name"], r["no_glitch"], r["introduced"]) == (True, False, False)
    assert q.verdict({**dict.fromkeys(q.TARGETS, 1.0), "no_glitch": 0.9, "repetition_4gram": 0.0}) == [
        "no_glitch 90.0% < 95%"
    ]


def test_repetition_counts_repeated_four_grams():
    assert q.repetition("the fox ran home " * 5) == pytest.approx(1 - 4 / 17)
    assert q.repetition("one two three four five") == 0.0
    assert q.verdict({**dict.fromkeys(q.TARGETS, 1.0), "repetition_4gram": 0.2}) == [
        "repetition_4gram 20.0% > 5%"
    ]


@pytest.mark.slow
def test_cli_scores_an_exported_model(onnx_model, tmp_path):
    out = tmp_path / "quality.json"
    cmd = [sys.executable, "-m", "fabulist.cli", "eval", "quality", "--model", str(onnx_model),
           "--quant", "int4,fp32", "-n", "3", "--max-new-tokens", "24", "--json", str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "moral_line" in result.stdout and "largest gap int4 vs fp32" in result.stdout
    data = json.loads(out.read_text())
    assert [len(data["results"][k]["rows"]) for k in ("int4", "fp32")] == [3, 3] and data["top_p"] == 1.0
    same = [r["ids"] for r in data["results"]["int4"]["rows"]] == [
        r["ids"] for r in data["results"]["fp32"]["rows"]
    ]
    assert same and all(set(r["ids"]) == set(el.KINDS) for r in data["results"]["fp32"]["rows"])


def test_cli_rejects_a_top_p_outside_0_1():
    from click.testing import CliRunner

    from fabulist.cli import main

    res = CliRunner().invoke(main, ["eval", "quality", "--model", "fable-5m", "--top-p", "0"])
    assert res.exit_code == 2 and "error: need temperature >= 0, top_k >= 0, 0 < top_p <= 1" in res.output


@pytest.mark.slow
def test_cli_guide_shows_raw_and_guided_and_judges_raw(tmp_path):
    """The embedded model: same prompts and seeds raw and guided; every guided fable ends with its exact
    requested moral line; the bar's verdict names the raw column."""
    out = tmp_path / "quality.json"
    cmd = [sys.executable, "-m", "fabulist.cli", "eval", "quality", "--model", "fable-5m", "-n", "3",
           "--max-new-tokens", "60", "--guide", "--json", str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "the quality bar is judged on raw output" in result.stdout
    header = result.stdout.splitlines()[1].split()
    assert header[:2] == ["int4", "int4+guide"] and "int4 (raw): " in result.stdout
    data = json.loads(out.read_text())
    raw, guided = data["results"]["int4"]["rows"], data["guided"]["int4"]["rows"]
    assert [r["ids"] for r in raw] == [r["ids"] for r in guided]
    for row in guided:
        moral = el.lookup("moral", row["ids"]["moral"]).text
        assert row["fable"].rstrip().splitlines()[-1] == f"Moral: {moral}"
