"""The curated evaluation prompts: 50, valid, all inside the sampler's reserved evaluation region."""

from fabulist import elements as el
from fabulist import fable_format as ff
from fabulist.data import prompts as pr
from fabulist.eval import evalset


def test_fifty_prompts_all_in_the_evaluation_region():
    prompts = evalset.load()
    assert len(prompts) == 50 and len({p.id for p in prompts}) == 50
    assert len({tuple(p.elements[k] for k in el.KINDS) for p in prompts}) == 50
    eval_space, train_space = pr.Space.build("eval"), pr.Space.build("train")
    chars, morals = el.index("character"), el.index("moral")
    for p in prompts:
        pair = (chars[p.elements["character"]], morals[p.elements["moral"]])
        assert pair in eval_space.pairs and pair not in train_space.pairs, p.id


def test_variants_and_rare_pairings_are_present():
    prompts = evalset.load()
    beginnings = [p for p in prompts if p.beginning]
    partial = [p for p in prompts if not p.beginning and len(p.shown) < len(el.KINDS)]
    assert len(beginnings) == 7 and len(partial) == 4
    assert sum("rare" in p.note for p in prompts) >= 15
    assert {"penguin", "little-robot", "scarecrow", "platypus"} <= {p.elements["character"] for p in prompts}


def test_model_prompt_is_the_training_format():
    by_id = {p.id: p for p in evalset.load()}
    full, begin = by_id["e01"], next(p for p in by_id.values() if p.beginning)
    assert full.model_prompt == ff.prompt(ff.labels_for(full.elements))
    assert begin.model_prompt == f"{ff.BOS}{ff.STORY}{begin.beginning}"
    assert begin.story(" and then.") == begin.beginning + " and then."
    assert "Moral: Look before you leap." in full.task


def test_a_prompt_outside_the_region_is_refused(tmp_path):
    import json

    import pytest

    outside = next(
        (c.id, m.id) for c in el.load("character") for m in el.load("moral") if not pr.is_reserved(c.id, m.id)
    )
    ids = {k: el.load(k)[0].id for k in el.KINDS} | {"character": outside[0], "moral": outside[1]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": "x", "prompts": [{"id": "a", "elements": ids}]}))
    with pytest.raises(evalset.EvalSetError, match="not in the evaluation region"):
        evalset.load(path)
