"""fable_format.json, the prompt format as data: the rule it states rebuilds fable_format.prompt exactly."""

import json
import random

from fabulist import elements as el
from fabulist import fable_format as ff
from fabulist.export.onnx import write_prompt_format


def rebuild(desc: dict, labels: dict[str, str], beginning: str = "") -> str:
    """The prompt as a reader with only the JSON builds it (android-demo/app/prompt.js does the same)."""
    lines = [
        desc["field_template"].replace("{label}", f["label"]).replace("{value}", labels[f["kind"]])
        for f in desc["fields"]
        if f["kind"] in labels
    ]
    return desc["bos"] + desc["line_separator"].join(lines) + desc["story"] + beginning


def test_description_rebuilds_every_prompt_shape(tmp_path):
    desc = json.loads(write_prompt_format(tmp_path).read_text(encoding="utf-8"))
    assert desc == ff.describe()
    assert [f["kind"] for f in desc["fields"]] == list(el.KINDS)
    rng = random.Random(0)
    for _ in range(200):
        kinds = rng.sample(el.KINDS, rng.randint(0, len(el.KINDS)))
        labels = {k: rng.choice(next(f["choices"] for f in desc["fields"] if f["kind"] == k)) for k in kinds}
        beginning = rng.choice(["", "Once upon a time"])
        assert rebuild(desc, labels, beginning) == ff.prompt(labels, beginning or None)


def test_choices_are_the_scaffold_labels():
    desc = ff.describe()
    for f in desc["fields"]:
        assert f["choices"] == [el.label(f["kind"], e) for e in el.load(f["kind"])]
        assert len(set(f["choices"])) == len(f["choices"])
    assert ff.labels_for({"character": "fox", "moral": "kindness-is-rewarded"}, ["character", "moral"]) == {
        "character": desc["fields"][0]["choices"][0],
        "moral": "Kindness is rewarded.",
    }
