"""Tiny Hugging Face fable models, built here (no downloads): random weights, a real trained tokenizer."""

import pytest

from tests.builders import make_model_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """2 layers, dim 64, 4 heads, 2 KV heads, vocab 512: dims not multiples of 256 (K-quant fallbacks)."""
    return make_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def fresh_tiny_model(tmp_path):
    """A private copy for tests that write artifacts into the model folder."""
    return make_model_dir(tmp_path / "model")


@pytest.fixture(scope="session")
def tiny_model_256(tmp_path_factory):
    """Dims that are multiples of 256, so Q4_K_M applies to every matrix."""
    return make_model_dir(tmp_path_factory.mktemp("tiny-256"), hidden=256, heads=4, kv_heads=2, ffn=512)


def train_briefly(folder, steps=80, lr=2e-3, seed=0):
    """A make_model_dir model taught the fable format for a few steps (fabulist.bench.architectures); the
    folder."""
    from fabulist.bench.architectures import train_briefly as train

    train(folder, steps, lr, seed)
    return folder


@pytest.fixture(scope="module")
def trained_tiny_model(tmp_path_factory):
    """A tiny model trained briefly on fables (train_briefly): for tests that compare quantization
    methods against their gates."""
    return train_briefly(make_model_dir(tmp_path_factory.mktemp("trained-tiny")))
