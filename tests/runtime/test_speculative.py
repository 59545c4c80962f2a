"""Speculative decoding (runtime/speculative.py): the acceptance rule keeps the target's distribution
(statistically, on a small vocabulary), and with real exported models greedy output is the target's own."""

import numpy as np
import pytest

from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams
from fabulist.runtime.speculative import accept, draw, load_scorer, speculate

P = np.array([0.5, 0.3, 0.15, 0.05])
Q = np.array([0.1, 0.2, 0.3, 0.4])  # a bad draft: most of its mass where the target has little


def test_acceptance_rule_gives_the_target_distribution():
    """Draw from q, apply the rule: the token that comes out is distributed as p (chi-square test)."""
    rng, trials = np.random.default_rng(0), 40_000
    counts, kept = np.zeros(4), 0
    for _ in range(trials):
        tok = draw(Q, rng)
        n, nxt = accept(np.stack([P, P]), Q[None, :], [tok], rng)
        counts[tok if n == 1 else nxt] += 1
        kept += n
    chi2 = (((counts - trials * P) ** 2) / (trials * P)).sum()
    assert chi2 < 16.27  # 3 degrees of freedom, p = 0.001
    assert abs(kept / trials - np.minimum(P, Q).sum()) < 0.01  # acceptance rate is sum(min(p, q)) = 0.55


def test_a_perfect_draft_is_always_kept_and_the_next_token_comes_from_p():
    rng = np.random.default_rng(1)
    onehot = np.eye(4)
    assert accept(
        np.stack([onehot[2], onehot[1], onehot[3]]), np.stack([onehot[2], onehot[1]]), [2, 1], rng
    ) == (
        2,
        3,
    )
    # greedy: a rejected draft token is replaced by the target's argmax
    assert accept(np.stack([onehot[0], onehot[1]]), onehot[2][None, :], [2], rng) == (0, 0)


@pytest.fixture(scope="module")
def draft_model(tmp_path_factory):
    """A smaller random model with the same tokenizer as the runtime tests' model."""
    from fabulist.export.gguf import export_gguf
    from fabulist.export.onnx import export_onnx
    from tests.builders import make_model_dir

    folder = make_model_dir(
        tmp_path_factory.mktemp("draft-model"), hidden=32, heads=2, kv_heads=1, ffn=64, seed=3
    )
    export_onnx(folder, ["fp32"], validate=False, progress=False)
    export_gguf(folder, ["f32"], validate=False, progress=False)
    return folder


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(("fmt", "quant"), [("onnx", "fp32"), ("gguf", "f32")])
def test_greedy_speculative_is_the_targets_greedy(onnx_model, draft_model, fmt, quant):
    from fabulist import fable_format as ff

    prompt = ff.prompt({"character": "Fox", "moral": "Kindness is rewarded."})
    alone = load_generator(onnx_model, fmt, quant, graph="optimum" if fmt == "onnx" else "auto")
    params = SamplingParams(temperature=0, max_new_tokens=40)
    expected = alone.generate(prompt, params)[0].tokens
    ids = alone.encode(prompt)
    target = load_scorer(onnx_model, fmt, quant)
    for draft, k in ((load_scorer(draft_model, fmt, quant), 3), (load_scorer(onnx_model, fmt, quant), 4)):
        stats = {}
        assert speculate(target, draft, ids, params, alone.eos, k=k, stats=stats) == expected
        assert stats["tokens"] == len(expected) >= 8
    assert stats["drafted_kept"] >= len(expected) - stats["rounds"] - 1  # its own draft: all kept
    sampled = SamplingParams(temperature=0.9, seed=4, max_new_tokens=30)
    draft = load_scorer(draft_model, fmt, quant)
    first = speculate(target, draft, ids, sampled, alone.eos)
    assert first and speculate(target, draft, ids, sampled, alone.eos) == first  # seeded


@pytest.mark.slow
@pytest.mark.integration
def test_cli_draft_gives_the_targets_greedy_text_and_refuses_another_tokenizer(onnx_model, draft_model):
    import subprocess
    import sys

    fab = [sys.executable, "-m", "fabulist.cli", "generate", "--model", str(onnx_model), "--quant", "fp32",
           "--graph", "optimum", "--temperature", "0", "--max-new-tokens", "24", "--seed", "1"]  # fmt: skip
    alone = subprocess.run(fab, capture_output=True, text=True, timeout=300)
    drafted = subprocess.run([*fab, "--draft", str(draft_model)], capture_output=True, text=True, timeout=300)
    assert alone.returncode == drafted.returncode == 0, drafted.stderr
    assert (
        alone.stdout.strip() and drafted.stdout.split("--- 1/1 ---\n", 1)[1].strip() == alone.stdout.strip()
    )
    other = subprocess.run([*fab, "--draft", "fable-5m"], capture_output=True, text=True, timeout=300)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "does not share the target's tokenizer" in other.stderr


def test_break_even_acceptance_solves_the_round_cost():
    """benchmarks/speculative.py's break-even: at that acceptance a round's expected yield equals its
    cost in target calls; below the cost of k+1 tokens no acceptance pays."""
    from fabulist.bench.speculative import break_even

    for k, c, v in ((4, 0.1, 1.2), (2, 0.05, 1.1), (3, 0.2, 1.5)):
        a = break_even(k, c, v)
        assert 0 < a < 1 and abs(sum(a**i for i in range(k + 1)) - (k * c + v)) < 1e-9
        assert break_even(k, c / 2, v) < a  # a cheaper draft pays at a lower acceptance
    assert break_even(2, 0.5, 3.0) is None and break_even(4, 0.1, 9.9) is None
