"""Procedural teacher v1, frozen: the grammar as data (grammars/v1.json) writes byte-identical fables to the
code it replaced, held to sha256 hashes recorded from that code before the change (fixtures/
procedural_v1_golden.json), and the expander's notation."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from fabulist.data import prompts as pr
from fabulist.data.teachers import grammar
from fabulist.data.teachers.base import Budget
from fabulist.data.teachers.procedural import ProceduralTeacher

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "procedural_v1_golden.json").read_text())


@pytest.mark.parametrize("seed", [0, 1])
def test_v1_writes_the_fables_it_wrote_before_its_grammar_became_data(seed):
    prompts = list(pr.sample(GOLDEN["prompts"]["count"], seed=GOLDEN["prompts"]["seed"]))
    assert sum(p["opening_seed"] is not None for p in prompts) == 31  # beginnings are covered too
    outcomes = list(ProceduralTeacher(seed=seed, version="v1").outcomes(prompts, Budget()))
    hashes = [hashlib.sha256(o.record["fable"].encode()).hexdigest() for o in outcomes]
    assert hashes == GOLDEN["sha256"][str(seed)]
    # v1's records keep the fields they always had (the corpus reproduces record for record).
    assert {(o.record["teacher"], o.record["llm_name"]) for o in outcomes} == {("procedural", "procedural")}


def test_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match="choose v1 or v2"):
        ProceduralTeacher(version="v3")


def test_the_cli_selects_v1(tmp_path):
    from click.testing import CliRunner

    from fabulist.cli import main

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in pr.sample(3, seed=3)))
    out = {}
    for teacher in ("procedural-v1", "procedural"):
        path = tmp_path / f"{teacher}.jsonl"
        result = CliRunner().invoke(main, ["data", "generate", "--prompts", str(prompts), "-o", str(path),
                                           "--teacher", teacher])  # fmt: skip
        assert result.exit_code == 0, result.output
        out[teacher] = [json.loads(line)["fable"] for line in path.read_text().splitlines()]
    v1 = [hashlib.sha256(f.encode()).hexdigest() for f in out["procedural-v1"]]
    assert v1 == GOLDEN["sha256"]["0"][:3] and out["procedural"] != out["procedural-v1"]


# --- the expander ---

TOY = grammar.Grammar("toy", {"rules": {
    "greet": ["[^word], {name}!", "[word] {name}"],
    "word": ["hello", "good [time]"],
    "time": ["day", "night"],
}})  # fmt: skip


def draws(*values: float):
    """A draw function that returns `values` in order."""
    it = iter(values)
    return lambda: next(it)


def test_rules_draw_in_reading_order_and_slots_are_looked_up():
    # greet: alternative 0 (draw 0.1); [^word]: alternative 1 (0.9), then [time]: alternative 1 (0.6)
    c = grammar.Context(TOY, draws(0.1, 0.9, 0.6), {"name": "Pip"})
    assert c.expand("greet") == "Good night, Pip!"
    c = grammar.Context(TOY, draws(0.7, 0.2), {"name": "Pip"})
    assert c.sentence("greet") == "Hello Pip"  # a sentence starts with a capital


def test_a_missing_slot_is_a_key_error_and_a_missing_rule_a_grammar_error():
    with pytest.raises(KeyError, match="name"):
        grammar.Context(TOY, random.Random(0).random).expand("greet")
    with pytest.raises(grammar.GrammarError, match="undefined rules nope"):
        grammar.Grammar("bad", {"rules": {"a": ["[nope]"]}})
    with pytest.raises(grammar.GrammarError, match="no grammar 'v0'"):
        grammar.load("v0")


def test_tidy_says_a_doubled_particle_once_and_refuses_other_doubles():
    assert grammar.tidy("She came by by the puddle.") == "She came by the puddle."
    assert grammar.tidy("He felt light and happy and light and happy.") is None
    assert grammar.tidy("The the fox.") is None
    assert grammar.tidy("He tried and tried.") == "He tried and tried."
