"""The fable-quality A/B's start point: a model rebuilt from its GGUF is the model that was exported."""

import pytest
import torch
from safetensors.torch import load_file

from fabulist.bench.fable_quality_ab import hf_from_gguf
from fabulist.export.gguf import export_gguf
from tests.builders import make_model_dir

pytestmark = pytest.mark.slow


def test_rebuilt_from_an_f32_gguf_equals_the_original(tmp_path):
    model = make_model_dir(tmp_path / "model", heads=4, kv_heads=2)
    export_gguf(model, ["f32"], validate=False, progress=False)
    rebuilt = hf_from_gguf(model, model / "gguf" / "model-f32.gguf", tmp_path / "rebuilt")
    want = load_file(model / "model.safetensors")
    got = load_file(rebuilt / "model.safetensors")
    want.pop("lm_head.weight", None)  # tied to the embedding
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():  # Q/K rows back in Hugging Face's order, every value exact
        assert torch.equal(got[name], tensor), name
    assert (rebuilt / "tokenizer.json").read_bytes() == (model / "tokenizer.json").read_bytes()
