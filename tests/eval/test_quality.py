"""The judge-free quality bar: its matching rules, on the teacher's own fables and on a real runtime."""

import json
import subprocess
import sys

import pytest

from fabulist.data import elements as el
from fabulist.data import prompts as pr
from fabulist.data.teachers import procedural
from fabulist.eval import quality as q
from tests.runtime.conftest import onnx_model  # noqa: F401  (a session fixture: an exported tiny model)

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


def test_repetition_counts_repeated_four_grams():
    assert q.repetition("the fox ran home " * 5) == pytest.approx(1 - 4 / 17)
    assert q.repetition("one two three four five") == 0.0
    assert q.verdict({**dict.fromkeys(q.TARGETS, 1.0), "repetition_4gram": 0.2}) == [
        "4-gram repetition 20.0% > 5%"
    ]


@pytest.mark.slow
def test_cli_scores_an_exported_model(onnx_model, tmp_path):  # noqa: F811
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
    assert res.exit_code == 2 and "Error: need temperature >= 0, top_k >= 0, 0 < top_p <= 1" in res.output
