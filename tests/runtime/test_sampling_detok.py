"""Sampling rules and UTF-8-safe streaming detokenization."""

import json

import numpy as np
import pytest

from fabulist import fable_format as ff
from fabulist.export.validate import heldout_texts
from fabulist.runtime.detok import StreamDecoder
from fabulist.runtime.sampling import SamplingParams, next_token
from fabulist.train import tokenizer as tk

LOGITS = np.array([1.0, 3.0, 2.0, 0.5, 2.9])


def draws(params, n=400, seed=0, seen=()):
    rng = np.random.default_rng(seed)
    return [next_token(LOGITS, params, rng, seen) for _ in range(n)]


def test_greedy_top_k_top_p():
    assert draws(SamplingParams(temperature=0), 3) == [1, 1, 1]
    assert set(draws(SamplingParams(top_k=1))) == {1}
    assert set(draws(SamplingParams(top_k=2))) == {1, 4}
    assert set(draws(SamplingParams(top_p=0.01))) == {1}
    assert set(draws(SamplingParams(top_p=0.7))) == {1, 4}  # p(1)=0.42, p(4)=0.38: the smallest set >= 0.7
    assert set(draws(SamplingParams())) == {0, 1, 2, 3, 4}


def test_seed_repeats_and_penalty_moves_mass():
    assert draws(SamplingParams(), seed=5) == draws(SamplingParams(), seed=5)
    assert draws(SamplingParams(), seed=5) != draws(SamplingParams(), seed=6)
    assert draws(SamplingParams(temperature=0, repetition_penalty=2.0), 1, seen=[1, 4]) == [2]


@pytest.mark.parametrize(
    "bad", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(max_new_tokens=0)]
)
def test_bad_params(bad):
    with pytest.raises(ValueError):
        SamplingParams(**bad)


@pytest.fixture(scope="module")
def small_tokenizer():
    return tk.train_tokenizer(heldout_texts(30, seed=3), vocab_size=400)


@pytest.mark.parametrize(
    "text", ["The fox 🦊 said “hello” — café, naïve, 👨‍👩‍👧!", "🐢🐇 “Slow” and ‘steady’ … über"]
)
def test_streaming_never_breaks_a_character(small_tokenizer, text):
    ids = small_tokenizer.encode(text, add_special_tokens=False).ids
    decoder = StreamDecoder(small_tokenizer)
    chunks = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(chunks) == text
    assert not any("\ufffd" in c for c in chunks)
    assert "" in chunks[:-1]  # some token ended inside a character and was held back
    naive = [small_tokenizer.decode([i]) for i in ids]
    assert any("\ufffd" in piece for piece in naive)  # what a token-by-token decode would have printed


class EosFirst:
    """A unit-test backend whose favourite token is always end-of-text."""

    context, batched = 64, True

    def __init__(self, vocab: int, eos: int):
        self.row = np.linspace(0.0, 1.0, vocab, dtype=np.float32)
        self.row[eos] = 5.0

    def start(self, prompt_ids, n, new_tokens):
        return np.tile(self.row, (n, 1))

    def advance(self, tokens):
        return np.tile(self.row, (len(tokens), 1))


def test_min_new_tokens_holds_back_end_of_text(small_tokenizer):
    from fabulist.runtime.engine import Generator

    gen = Generator(
        EosFirst(small_tokenizer.get_vocab_size(), small_tokenizer.token_to_id(ff.EOS)), small_tokenizer
    )
    assert gen.generate("Once", SamplingParams(temperature=0))[0].finish_reason == "eos"
    out = gen.generate("Once", SamplingParams(temperature=0, min_new_tokens=5), n=2)
    assert [len(c.tokens) for c in out] == [5, 5] and {c.finish_reason for c in out} == {"eos"}


def test_nucleus_shortcut_equals_a_full_sort():
    from fabulist.runtime.sampling import nucleus, nucleus_rows

    rng = np.random.default_rng(0)
    for trial in range(500):
        logits = rng.normal(0, rng.uniform(0.5, 6), 4096)
        if trial % 3 == 0:
            logits = np.round(logits, 1)  # many ties
        probs, top_p = np.exp(logits - logits.max()), rng.uniform(0.1, 1.0)
        order = np.argsort(-probs, kind="stable")
        full = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p * probs.sum())) + 1]
        assert set(nucleus(probs, top_p).tolist()) == set(full.tolist())
        assert set(np.flatnonzero(nucleus_rows(probs[None], top_p)[0]).tolist()) == set(full.tolist())


def test_batched_sampling_equals_row_by_row():
    from fabulist.runtime.sampling import next_tokens

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (6, 4096))
    logits[2] = np.round(logits[2])  # ties
    logits[4] = rng.normal(0, 0.05, 4096)  # flat: the nucleus needs the whole row
    for params in (SamplingParams(temperature=0.8, top_p=0.9), SamplingParams(top_k=40, top_p=0.95),
                   SamplingParams(temperature=1.2, repetition_penalty=1.3)):  # fmt: skip
        seen = [[1, 2, 3]] * 6
        batch = next_tokens(logits, params, [np.random.default_rng(i) for i in range(6)], seen)
        rows = [next_token(logits[i], params, np.random.default_rng(i), seen[i]) for i in range(6)]
        assert batch.tolist() == rows


def test_generation_defaults_come_from_the_folder_then_the_preset(tmp_path):
    from fabulist.runtime.sampling import PRESETS, generation_defaults, preset

    assert generation_defaults(tmp_path) == PRESETS["fable"] == {"temperature": 0.8, "top_p": 0.95,
                                                                  "max_new_tokens": 400}  # fmt: skip
    qwen = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05,
            "bos_token_id": 151643}  # fmt: skip
    (tmp_path / "generation_config.json").write_text(json.dumps(qwen))
    assert generation_defaults(tmp_path) == {"temperature": 0.7, "top_p": 0.8, "top_k": 20,
                                             "repetition_penalty": 1.05, "max_new_tokens": 400}  # fmt: skip
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": False, "top_p": "high"}))
    assert generation_defaults(tmp_path) == {**PRESETS["fable"], "temperature": 0.0}  # a string is ignored
    (tmp_path / "generation_config.json").write_text("[1, 2]")
    assert generation_defaults(tmp_path, "judge") == {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 400}
    assert preset("quality", seed=3).top_p == 1.0 and preset("quality", seed=3).seed == 3


def test_generate_samples_as_the_folder_asks_unless_told(onnx_model, tmp_path):
    """A folder whose generation_config.json says greedy is decoded greedily; --temperature overrides it."""
    import shutil

    from click.testing import CliRunner

    from fabulist.cli import main

    folder = shutil.copytree(onnx_model, tmp_path / "m")
    (folder / "generation_config.json").write_text(json.dumps({"do_sample": False, "max_new_tokens": 12}))
    given = (
        "--character",
        "fox",
        "--trait",
        "brave",
        "--setting",
        "a forest",
        "--conflict",
        "a storm",
        "--resolution",
        "a friend helps",
        "--moral",
        "Be kind.",
    )  # fmt: skip (no element left to draw)
    args = ["generate", "--model", str(folder), "--quant", "fp32", "--json", *given]
    runs = [json.loads(CliRunner().invoke(main, [*args, "--seed", str(s)]).stdout) for s in (1, 2)]
    texts = [r["completions"][0]["text"] for r in runs]
    assert texts[0] == texts[1] and all(r["completions"][0]["new_tokens"] <= 12 for r in runs)  # greedy
    sampled = [json.loads(CliRunner().invoke(main, [*args, "--seed", str(s), "--temperature", "1.5"]).stdout)
               for s in (1, 2)]  # fmt: skip
    assert sampled[0]["completions"][0]["text"] != sampled[1]["completions"][0]["text"]
