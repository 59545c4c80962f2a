"""Tiny training data made with the project's own prompt sampler and procedural teacher."""

import pytest

from fabulist import elements as el
from fabulist.data import prompts as pr
from fabulist.data.teachers import procedural
from fabulist.records import dumps, fable_record


def make_fables(count: int, seed: int) -> list[dict]:
    records = []
    for p in pr.sample(count, seed=seed):
        story = {k: el.lookup(k, p["elements"][k]) for k in el.KINDS}
        text = procedural.write_fable(story, p["index"], opening_seed=p["opening_seed"])
        records.append(fable_record(p, text, teacher="procedural", llm_name="procedural", input_tokens=0,
                                    output_tokens=0, seconds=0.0, sampling={}, seed=seed))  # fmt: skip
    return records


@pytest.fixture(scope="session")
def fables(tmp_path_factory):
    """(train.jsonl, valid.jsonl) with 240 and 40 fables."""
    folder = tmp_path_factory.mktemp("fables")
    records = make_fables(280, seed=5)
    train, valid = folder / "train.jsonl", folder / "valid.jsonl"
    train.write_text("".join(dumps(r) + "\n" for r in records[:240]))
    valid.write_text("".join(dumps(r) + "\n" for r in records[240:]))
    return train, valid
