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
    """Teach a make_model_dir model the fable format for a few steps (the frozen calibration fables, never
    the validation probes), so its next-token distributions are peaked as a trained model's are: random
    weights give near-flat ones, on which a gate of top-1 agreement measures noise."""
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    from fabulist.export.calib import calibration_texts

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = [e.ids[:128] for e in tok.encode_batch(calibration_texts()[0], add_special_tokens=False)]
    width = min(map(len, rows))
    ids = torch.tensor([r[:width] for r in rows])  # (64, width)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend (5 s here vs minutes on a busy box)
    model = LlamaForCausalLM.from_pretrained(folder).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        batch = ids[(step * 8) % len(ids) :][:8]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def trained_tiny_model(tmp_path_factory):
    """A tiny model trained briefly on fables (train_briefly): for tests that compare quantization
    methods against their gates."""
    return train_briefly(make_model_dir(tmp_path_factory.mktemp("trained-tiny")))
