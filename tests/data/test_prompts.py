"""The combinatorial prompt sampler: determinism, no repeats, shards, the reserved evaluation region."""

import itertools

import pytest

from fabulist import elements as el
from fabulist.data import prompts as pr

FULL = {"full": 1.0}


def ids(records):
    return [r["prompt_hash"] for r in records]


def test_prompt_hash_is_stable_and_per_combination():
    combo = {k: el.load(k)[0].id for k in el.KINDS}
    assert pr.prompt_hash(combo) == pr.prompt_hash(dict(reversed(combo.items())))
    other = {**combo, "moral": el.load("moral")[1].id}
    assert pr.prompt_hash(combo) != pr.prompt_hash(other)
    assert pr.prompt_hash({k: "x" for k in el.KINDS}) == "4fc52add608cf0ac"  # golden: never changes


@pytest.mark.parametrize("size", [1, 2, 3, 17, 256, 1000, 4099])
def test_permutation_is_a_bijection(size):
    perm = pr.Permutation(size, f"key{size}")
    assert sorted(perm[i] for i in range(size)) == list(range(size))


def test_sampling_is_deterministic_distinct_and_extends():
    a = list(pr.sample(3000, seed=1, variants=FULL))
    b = list(pr.sample(3000, seed=1, variants=FULL))
    c = list(pr.sample(1000, seed=1, variants=FULL))
    assert a == b and a[:1000] == c
    assert len(set(ids(a))) == 3000
    assert ids(pr.sample(1000, seed=2, variants=FULL)) != ids(c)


def test_shards_partition_a_small_space():
    fixed = {"trait": el.load("trait")[0].id, "setting": el.load("setting")[0].id,
             "conflict": el.load("conflict")[0].id, "resolution": el.load("resolution")[0].id}  # fmt: skip
    space = pr.Space.build("train", fixed)
    shards = []
    for i in range(3):
        size = (space.size - i + 2) // 3
        shards.append(set(ids(pr.sample(size, seed=i, shard=f"{i}/3", variants=FULL, fixed=fixed))))
    assert sum(map(len, shards)) == space.size
    assert all(not (a & b) for a, b in itertools.combinations(shards, 2))
    with pytest.raises(pr.PromptError, match="larger than the"):
        list(pr.sample(len(shards[0]) + 1, shard="0/3", variants=FULL, fixed=fixed))


def test_training_never_returns_the_evaluation_region():
    train = list(pr.sample(5000, seed=3, variants=FULL))
    assert not any(pr.is_reserved(r["elements"]["character"], r["elements"]["moral"]) for r in train)
    evaluation = list(pr.sample(500, seed=3, region="eval", variants=FULL))
    assert all(pr.is_reserved(r["elements"]["character"], r["elements"]["moral"]) for r in evaluation)
    n_pairs = len(el.load("character")) * len(el.load("moral"))
    reserved = len(pr.Space.build("eval").pairs)
    assert 0.005 < reserved / n_pairs < 0.05  # about one pair in EVAL_PAIR_MODULUS
    chars = {r["elements"]["character"] for r in train}
    assert len(chars) == len(el.load("character"))  # every character still trains


def test_variants_and_instruction_text():
    records = list(pr.sample(2000, seed=4))
    counts = {v: sum(r["variant"] == v for r in records) for v in ("full", "partial", "beginning")}
    assert 1250 < counts["full"] < 1550 and 200 < counts["partial"] < 400 and 200 < counts["beginning"] < 400
    full = next(r for r in records if r["variant"] == "full")
    fox = el.lookup("character", full["elements"]["character"])
    assert f"Character: {fox.name[0].upper()}{fox.name[1:]}\n" in full["prompt"]
    assert full["shown"] == list(el.KINDS) and full["beginning"] is None
    partial = next(r for r in records if r["variant"] == "partial")
    assert partial["shown"][0] == "character" and 2 <= len(partial["shown"]) <= 4
    labels = {line.split(":")[0] for line in partial["prompt"].splitlines() if ": " in line}
    assert {k.capitalize() for k in partial["shown"]} <= labels
    assert not labels & {k.capitalize() for k in el.KINDS if k not in partial["shown"]}


def test_beginning_is_cut_from_the_procedural_opening():
    # v1's opening (frozen), so prompt files do not change with the teacher version
    from fabulist.data.teachers import procedural_v1 as procedural

    records = [r for r in pr.sample(500, seed=5) if r["variant"] == "beginning"]
    assert records
    for r in records:
        story = {k: el.lookup(k, r["elements"][k]) for k in el.KINDS}
        opening = procedural.opening(story, r["opening_seed"])
        assert opening.startswith(r["beginning"]) and len(r["beginning"]) < len(opening)
        assert f'"{r["beginning"]}"' in r["prompt"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("3/3", "need 0 <= i < n"), ("1-2", "expected i/n"), ("0/0", "need 0 <= i < n")],
)
def test_bad_shard(spec, message):
    with pytest.raises(pr.PromptError, match=message):
        pr.parse_shard(spec)


def test_bad_variants_and_fixed_element():
    with pytest.raises(pr.PromptError, match="unknown variant 'story'"):
        pr.parse_variants("story=1")
    with pytest.raises(pr.PromptError, match="must add up"):
        pr.parse_variants("full=0")
    with pytest.raises(el.ElementError, match="unknown character 'dragonfly-king'"):
        pr.Space.build("train", {"character": "dragonfly-king"})
