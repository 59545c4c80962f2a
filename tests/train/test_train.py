"""Training: exact resume, the Hugging Face folder, and a falling validation loss."""

import json

import pytest
import torch
from safetensors.torch import load_file

from fabulist.eval import quality
from fabulist.eval.torch_backend import load_torch_generator
from fabulist.eval.training import KEYS, probe_for
from fabulist.runtime.sampling import preset
from fabulist.train.trainer import TrainConfig, train
from tests.builders import assert_plot

pytestmark = pytest.mark.slow


def config(fables, out, **kw) -> TrainConfig:
    """The default recipe (whole fables per row, loss on the story): with 2,048 tokens the fixture's fables
    are 248-451 tokens long, so every one fits a row of 512."""
    train_path, valid_path = fables
    base = dict(preset="fable-1m", data=str(train_path), valid=str(valid_path), out=str(out), vocab_size=2048,
                context=512, batch_size=4, max_steps=6, warmup_steps=2, lr=3e-3, eval_every=3, save_every=100,
                seed=1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_k_steps_resume_k_steps_equals_2k_straight(fables, tmp_path):
    straight = train(config(fables, tmp_path / "straight"), progress=False)
    first = train(config(fables, tmp_path / "resumed", stop_after=3), progress=False)
    assert not first["complete"] and first["steps"] == 3
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    second = train(config(fables, tmp_path / "resumed"), resume=True, progress=False)
    assert second["complete"] and second["steps"] == 6
    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")
    assert len(losses(tmp_path / "resumed")) == 6
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight["final_valid_loss"] == second["final_valid_loss"]


def test_output_is_a_hugging_face_folder(fables, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "run"
    cfg = config(fables, out, max_steps=12, eval_every=4, packing="stream", context=64, vocab_size=512)
    record = train(cfg, progress=False)
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings
    assert model.config.head_dim == model.config.hidden_size // model.config.num_attention_heads
    assert tok.eos_token == "<|endoftext|>" and tok.convert_tokens_to_ids("<|story|>") is not None
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert record["tokens_seen"] == 12 * 4 * 64 and record["documents"] == 240
    valid = [json.loads(line)["valid_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if "valid_loss" in line]  # fmt: skip
    assert len(valid) == 3 and valid[-1] < valid[0]  # it learns
    assert_plot(out / "loss.png")
    assert (out / "generation_config.json").exists() and (out / "training.json").exists()
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {4, 8, 12}


def test_gradient_accumulation_matches_one_big_batch(fables, tmp_path):
    one = train(config(fables, tmp_path / "one", max_steps=3, eval_every=100), progress=False)
    two = train(config(fables, tmp_path / "two", max_steps=3, eval_every=100, grad_accum=2), progress=False)
    for a, b in zip(losses(tmp_path / "one"), losses(tmp_path / "two"), strict=True):
        assert abs(a - b) < 1e-4
    assert one["final_train_loss"] == pytest.approx(two["final_train_loss"], abs=1e-4)


def test_compiled_training_follows_eager_and_resumes(fables, tmp_path):
    """--compile (loss and AdamW with a tensor learning rate) follows the eager run step for step, and a
    compiled run stopped and resumed finishes like one straight."""
    train(config(fables, tmp_path / "eager", eval_every=100), progress=False)
    train(config(fables, tmp_path / "compiled", eval_every=100, compile=True, stop_after=3), progress=False)
    done = train(
        config(fables, tmp_path / "compiled", eval_every=100, compile=True), resume=True, progress=False
    )
    assert done["complete"]
    for a, b in zip(losses(tmp_path / "eager"), losses(tmp_path / "compiled"), strict=True):
        assert abs(a - b) < 2e-3
    a = load_file(tmp_path / "eager" / "model.safetensors")
    b = load_file(tmp_path / "compiled" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3


def test_evaluations_record_judge_free_quality_without_changing_training(fables, tmp_path):
    """--eval-fables: each evaluation samples fables at fixed evaluation-region prompts and records element
    coverage, distinct-2 and 4-gram repetition in metrics.jsonl, plotted against the validation loss in
    quality.png; the training itself (losses, weights) is exactly that of a run without them."""
    cfg = config(fables, tmp_path / "q", eval_fables=3, eval_max_tokens=24)
    with_q = train(cfg, progress=False, quality=probe_for(cfg))
    without = train(config(fables, tmp_path / "plain", eval_fables=0), progress=False)
    assert losses(tmp_path / "q") == losses(tmp_path / "plain")
    assert with_q["final_valid_loss"] == without["final_valid_loss"]
    a = load_file(tmp_path / "q" / "model.safetensors")
    b = load_file(tmp_path / "plain" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "q" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "quality" in r]
    assert [r["step"] for r in evals] == [3, 6] and all("valid_loss" in r for r in evals)
    for r in evals:
        q = r["quality"]
        assert q["fables"] == 3 and 1 <= q["max_new_tokens"] <= 24
        assert all(0.0 <= q[k] <= 1.0 for k in KEYS)
    assert_plot(tmp_path / "q" / "quality.png")
    assert not (tmp_path / "plain" / "quality.png").exists()
    assert not any("quality" in r for r in map(json.loads, (tmp_path / "plain" / "metrics.jsonl").open()))
    # The last evaluation scored the final weights exactly as `fabulist eval quality --format torch` scores
    # the saved model: same prompts, seeds, sampler and rules, so the same numbers.
    params = preset("quality", seed=0, max_new_tokens=evals[-1]["quality"]["max_new_tokens"])
    saved = quality.run(load_torch_generator(tmp_path / "q"), params=params, progress=False,
                        prompts=quality.eval_prompts(3, 0))["summary"]  # fmt: skip
    assert {k: round(float(saved[k]), 4) for k in KEYS} == {k: evals[-1]["quality"][k] for k in KEYS}
