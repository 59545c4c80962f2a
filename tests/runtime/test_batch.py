"""Prompts of different lengths decoded as one batch: each row's logits equal its prompt's alone (both ONNX
graphs, fp32 and int4), so a seeded row gives the tokens the same prompt and seed give alone, whatever
rows share its batch."""

import numpy as np
import pytest

from fabulist import fable_format as ff
from fabulist.runtime.engine import Row
from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PROMPTS = [
    ff.prompt({"character": "Fox", "moral": "Kindness is rewarded."}),
    ff.prompt({}, "Once"),
    ff.prompt({"character": "Owl", "setting": "Forest"}, "The owl sat on a branch and looked at the moon"),
    ff.prompt({"character": "Fox", "moral": "Kindness is rewarded."}),  # a repeat: shares its prefill
]
GRAPHS = [("optimum", "fp32"), ("optimum", "int4"), ("genai", "fp32"), ("genai", "int4")]


def greedy_logits(backend, prompts: list[list[int]], steps: int) -> list[np.ndarray]:
    """(rows, vocab) logits after the prompt and after each of `steps` greedy tokens."""
    out = [backend.start_batch(prompts, steps + 1)]
    for _ in range(steps):
        out.append(backend.advance(out[-1].argmax(axis=1).tolist()))
    return out


@pytest.mark.parametrize(("graph", "quant"), GRAPHS)
def test_a_padded_row_has_its_prompts_logits(onnx_model, graph, quant):
    gen = load_generator(onnx_model, "onnx", quant, graph=graph)
    prompts = [gen.encode(p) for p in PROMPTS]
    assert len({len(p) for p in prompts}) == 3  # ragged
    batch = greedy_logits(gen.backend, prompts, 6)
    for r, ids in enumerate(prompts):
        alone = greedy_logits(gen.backend, [ids], 6)
        for step, (b, a) in enumerate(zip(batch, alone, strict=True)):
            assert np.abs(b[r] - a[0]).max() < 1e-4, (r, step)


@pytest.mark.parametrize(("graph", "quant"), GRAPHS)
def test_a_seeded_row_gives_its_tokens_alone_whatever_its_neighbours(onnx_model, graph, quant):
    gen = load_generator(onnx_model, "onnx", quant, graph=graph)
    params = [
        SamplingParams(temperature=1.0, top_p=0.9, seed=4, max_new_tokens=40),
        SamplingParams(temperature=0.7, top_k=20, seed=5, max_new_tokens=25, stop=(" the",)),
        SamplingParams(temperature=0, max_new_tokens=30),
        SamplingParams(temperature=1.0, top_p=0.9, seed=6, max_new_tokens=40, min_new_tokens=10),
    ]
    batch = gen.generate_batch(PROMPTS, params)
    alone = [gen.generate(p, q)[0] for p, q in zip(PROMPTS, params, strict=True)]
    assert [c.tokens for c in batch] == [c.tokens for c in alone]
    assert [c.text for c in batch] == [c.text for c in alone]
    assert [c.finish_reason for c in batch] == [c.finish_reason for c in alone]
    assert [len(c.tokens) <= q.max_new_tokens for c, q in zip(batch, params, strict=True)] == [True] * 4
    assert len(batch[3].tokens) >= 10 and batch[0].tokens != batch[3].tokens


@pytest.mark.parametrize("graph", ["optimum", "genai"])
def test_a_batch_whose_padded_length_passes_the_context(onnx_model, graph):
    """A short prompt with a long limit beside a long prompt: the padded batch would run past the context.
    Optimum's graph takes it (positions are per row; the mask may be longer than the context); genai sizes
    every row to the widest prompt plus the new tokens, so it refuses and the Generator splits the batch.
    Either way every row gets its own text."""
    gen = load_generator(onnx_model, "onnx", "fp32", graph=graph)
    short, long = gen.encode(PROMPTS[1]), gen.encode(PROMPTS[2])
    params = [SamplingParams(seed=1, max_new_tokens=256 - len(short), min_new_tokens=200),
              SamplingParams(seed=2, max_new_tokens=9)]  # fmt: skip
    rows = [gen.row(p, q) for p, q in zip(PROMPTS[1:3], params, strict=True)]
    assert gen.batches(rows) == ([[0, 1]] if graph == "optimum" else [[0], [1]])
    if graph == "genai":
        assert gen.backend.can_batch([short, long], 256 - len(long))
        assert not gen.backend.can_batch([short, long], 256 - len(short))
    batch = gen.generate_batch(PROMPTS[1:3], params)
    alone = [gen.generate(p, q)[0] for p, q in zip(PROMPTS[1:3], params, strict=True)]
    assert [c.tokens for c in batch] == [c.tokens for c in alone]
    assert len(batch[0].tokens) >= 200 and len(batch[0].tokens) + len(long) > 256


@pytest.mark.parametrize("graph", ["genai", "optimum"])
def test_rows_keep_their_logits_beside_rows_that_sample(onnx_model, graph):
    """INT4, the shipped fable-5m's genai graph (and the tiny model's optimum graph: the embedded folder's
    optimum graph changes with the export work): in a ragged batch whose rows each feed their own sampled
    tokens, every row's logits at every step equal its prompt's alone fed the same tokens. (A genai prefill
    that fed each row's last prompt token as a separate step passed the greedy check above on the tiny
    model, yet on fable-5m drifted by up to 0.17 and changed a seeded row's text at its 45th token.)"""
    from fabulist.runtime.embedded import resolve

    gen = load_generator(resolve(None) if graph == "genai" else onnx_model, "onnx", "int4", graph=graph)
    asks = [({"character": "Fox", "trait": "Brave", "setting": "Forest"}, None), ({}, "A crow"),
            ({"character": "Owl"}, "The owl sat on a branch and looked at the moon for a long time"),
            ({"moral": "Kindness is rewarded."}, "Once")]  # fmt: skip
    prompts = [gen.encode(ff.prompt(labels, beginning)) for labels, beginning in asks]
    params = [SamplingParams(temperature=1.0, seed=s, max_new_tokens=60, min_new_tokens=60) for s in range(4)]
    tokens = [c.tokens for c in gen.decode([Row(p, q) for p, q in zip(prompts, params, strict=True)])]
    assert [len(t) for t in tokens] == [60] * 4
    batch = [gen.backend.start_batch(prompts, 60)]
    for k in range(59):
        batch.append(gen.backend.advance([t[k] for t in tokens]))
    for r, ids in enumerate(prompts):
        alone = [gen.backend.start(ids, 1, 60)]
        for k in range(59):
            alone.append(gen.backend.advance([tokens[r][k]]))
        worst = max(float(np.abs(b[r] - a[0]).max()) for b, a in zip(batch, alone, strict=True))
        assert worst < 1e-4, (r, worst)
        assert gen.decode([Row(ids, params[r])])[0].tokens == tokens[r]  # and alone, the same text


def test_top_p_and_top_k_draws_equal_the_whole_row_inverse_cdf():
    """After top-k/top-p the draw runs over the nonzero ids only: its tokens must be the ones the inverse
    CDF over the whole row gives, or seeded texts change. (The nucleus itself against a full sort:
    test_sampling_detok.py.)"""
    from fabulist.runtime.sampling import _weights, next_tokens

    rng = np.random.default_rng(1)
    for trial in range(600):
        logits = rng.normal(0, rng.uniform(0.3, 6), (4, 4096))
        if trial % 3 == 0:
            logits = np.round(logits, 1)  # ties at the nucleus boundary
        top_p, top_k = float(rng.choice([0.5, 0.95, 1.0])), int(rng.choice([0, 5, 40]))
        params = SamplingParams(temperature=float(rng.uniform(0.3, 1.5)), top_p=top_p, top_k=top_k)
        probs = _weights(logits, params)
        whole = np.cumsum(probs, axis=1)
        draws = [np.random.default_rng(trial * 10 + i) for i in range(4)]
        u = np.array([d.random() for d in draws]) * whole[:, -1]
        want = np.minimum((whole <= u[:, None]).sum(axis=1), 4095)
        got = next_tokens(logits, params, [np.random.default_rng(trial * 10 + i) for i in range(4)])
        assert got.tolist() == want.tolist(), trial
