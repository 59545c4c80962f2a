"""The quality rules for free-text elements (head noun realised, moral stated), beside the unchanged rules
for list-valued elements; `eval quality --prompts` on imported TinyFabulist records."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fabulist.data.tf1 import from_tf1
from fabulist.eval import quality as q

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "tf1-sample.jsonl"
TEXTS = {"character": "industrious beaver", "trait": "", "setting": "arctic ice floe",
         "moral": "Humility earns admiration."}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "head"),
    [
        ("industrious beaver", "beaver"),
        ("arctic ice floe", "floe"),
        ("cottage by the sea", "cottage"),
        ("an owl who could not sleep", "owl"),
        ("the old lighthouse", "lighthouse"),
        ("mountains", "mountains"),
        ("The", None),
        ("", None),
    ],
)
def test_head_noun(text, head):
    assert q.head_noun(text) == head


# fable -> (moral line, character, setting, moral stated) for TEXTS
# fmt: off
CASES = [
    ("Two beavers lived on an ice floe.\n\nMoral: Humility earns admiration.", (True, True, True, True)),
    ("A beaver on the floes.\nMoral: Humility always earns admiration!", (True, True, True, True)),  # 3 of 3
    ("A busy beaver on a floe, no moral at all.", (False, True, True, False)),
    ("The beaverton folk sat on the arctic ice.\nMoral: Pride comes first.", (True, False, False, False)),
    ("A beaver. Moral: Humility earns admiration.", (False, True, False, False)),  # the moral needs its line
    ("An industrious otter on the floe.\nMoral: Admiration is earned.", (True, False, True, False)),  # 2 of 3
]
# fmt: on


@pytest.mark.parametrize(("fable", "expected"), CASES)
def test_free_text_matching_rules(fable, expected):
    r = q.check(fable, texts=TEXTS)
    assert (r["moral_line"], r["character"], r["setting"], r["moral_stated"]) == expected


@pytest.mark.parametrize(
    ("fable", "text", "named"),
    [
        ("Three butterflies flew.", "polite butterfly", True),  # -y/-ies
        ("He climbed the mountain.", "mountains", True),  # plural asked, singular written
        ("The foxes ran.", "clever fox", True),  # -es
        ("The wolves howled.", "loyal wolf", False),  # irregular plurals are not folded (documented)
        ("A bear slept.", "beaver", False),
        ("The foxglove grew.", "fox", False),  # whole words only
    ],
)
def test_plural_forms_of_the_head_noun(fable, text, named):
    assert q.names_head(fable, text) is named


def test_list_valued_elements_keep_their_rules():
    """The list rule for a setting wants its whole name: "the patch" is not the vegetable patch, though the
    free-text rule (head noun) takes it."""
    ids = {"character": "fox", "setting": "vegetable-patch", "moral": "kindness-is-rewarded"}
    fable = "A fox dug in the patch.\nMoral: Kindness is rewarded."
    assert q.check(fable, ids)["setting"] is False
    free = {"character": "fox", "setting": "vegetable patch", "moral": "Be kind."}
    assert q.check(fable, texts=free)["setting"] is True
    assert q.check("A fox in the vegetable patch.\nMoral: Kindness is rewarded.", ids)["setting"] is True


def test_introduced_with_a_free_text_character():
    """The requested animal is introduced by the request; another list animal is not."""
    fable = "The beaver looked at the otter.\nMoral: Humility earns admiration."
    assert q.unintroduced(fable, "beaver") == "the otter"
    assert q.check(fable, texts=TEXTS)["introduced"] is False
    ok = "The beaver swam to an otter.\nMoral: Humility earns admiration."
    assert q.check(ok, texts=TEXTS)["introduced"] is True


def imported(tmp_path) -> Path:
    """Three imported fixture records (the second cut to a partial one, without a setting) and one with
    list ids."""
    lines = FIXTURE.read_text().splitlines()
    records = [from_tf1(json.loads(lines[i]), file="f", line=i + 1) for i in range(3)]
    del records[1]["elements_text"]["setting"]
    records[1]["shown"].remove("setting")
    records.append({"fable": "A fox.", "variant": "full", "elements": {
        "character": "fox", "trait": "brave", "setting": "forest", "conflict": "sharing-food",
        "resolution": "reward", "moral": "kindness-is-rewarded"},
        "shown": ["character", "setting", "moral"]})  # fmt: skip
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_prompts_from_a_fables_file(tmp_path):
    prompts, skipped = q.prompts_from(imported(tmp_path), 10)
    assert skipped == 1 and len(prompts) == 3
    assert prompts[0]["texts"]["setting"] == "enchanted greenhouse" and "ids" not in prompts[0]
    assert prompts[0]["prompt"].startswith("<|prompt|>Character: Woodpecker\nTrait: Optimistic\nSetting: ")
    assert prompts[2] == {
        "ids": {"character": "fox", "trait": "brave", "setting": "forest", "conflict": "sharing-food",
                "resolution": "reward", "moral": "kindness-is-rewarded"},
        "prompt": "<|prompt|>Character: Fox\nSetting: Forest\nMoral: Kindness is rewarded.<|story|>",
    }  # fmt: skip
    assert q.prompts_from(imported(tmp_path), 1)[0] == prompts[:1]


@pytest.mark.slow
def test_cli_scores_free_text_prompts(onnx_model, tmp_path):
    out = tmp_path / "quality.json"
    cmd = [sys.executable, "-m", "fabulist.cli", "eval", "quality", "--model", str(onnx_model),
           "--quant", "fp32", "-n", "2", "--max-new-tokens", "16", "--prompts", str(imported(tmp_path)),
           "--json", str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 prompts from" in result.stderr and "without a character, setting or moral: 1)" in result.stderr
    rows = json.loads(out.read_text())["results"]["fp32"]["rows"]
    assert [r["texts"]["character"] for r in rows] == ["woodpecker", "walrus"]
    assert all(isinstance(r["character"], bool) and "ids" not in r for r in rows)


def test_prompts_from_refuses_element_text_that_would_be_structure(tmp_path):
    from fabulist.records import RecordError

    path = imported(tmp_path)
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["elements_text"]["moral"] = "be kind<|endoftext|>"
    path.write_text("\n".join([lines[0], json.dumps(bad)]) + "\n")
    with pytest.raises(RecordError, match=r"prompts.jsonl: record 2: the moral must not contain <\|endof"):
        q.prompts_from(path, 10)


def test_cli_refuses_a_prompts_file_without_usable_records(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"fable": "x", "elements": None, "shown": ["moral"],
                                "elements_text": {"moral": "be kind"}}) + "\n")  # fmt: skip
    cmd = [sys.executable, "-m", "fabulist.cli", "eval", "quality", "--model", "fable-5m",
           "--prompts", str(path)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: {path}: no record shows a character, setting and moral"
    ]
