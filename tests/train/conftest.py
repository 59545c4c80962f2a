"""Tiny training data made with the project's own prompt sampler and procedural teacher."""

import pytest

from fabulist.records import dumps
from tests.builders import make_fables


@pytest.fixture(scope="session")
def fables(tmp_path_factory):
    """(train.jsonl, valid.jsonl) with 240 and 40 fables."""
    folder = tmp_path_factory.mktemp("fables")
    records = make_fables(280, seed=5)
    train, valid = folder / "train.jsonl", folder / "valid.jsonl"
    train.write_text("".join(dumps(r) + "\n" for r in records[:240]))
    valid.write_text("".join(dumps(r) + "\n" for r in records[240:]))
    return train, valid
