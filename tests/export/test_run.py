"""`fabulist export --format all --quant all` as one call: every artifact written, recorded in the manifest
and held to one PyTorch reference that is built once (not once per exporter or artifact)."""

import json

from fabulist.export import run
from fabulist.export import validate as va


def test_export_all_builds_one_reference_and_validates_every_artifact(fresh_tiny_model, monkeypatch):
    loads = []
    real = va.load_reference

    def counted(model_dir):
        loads.append(model_dir)
        return real(model_dir)

    monkeypatch.setattr(va, "load_reference", counted)
    artifacts = run.export_model(fresh_tiny_model, "all", "all", progress=False)

    assert len(loads) == 1
    assert sorted((a["format"], a["quant"]) for a in artifacts) == sorted([
        ("onnx", "fp32"), ("onnx", "int8"), ("onnx", "int4"), ("onnx-genai", "fp32"), ("onnx-genai", "int4"),
        ("gguf", "f16"), ("gguf", "q8_0"), ("gguf", "q4_0"), ("gguf", "q4_k_m"),
    ])  # fmt: skip
    # one validation pass: the same held-out positions for every artifact, whatever engine runs it
    assert len({a["validation"]["positions"] for a in artifacts}) == 1
    assert all(a["validation"]["tokenizer_mismatches"] == [] for a in artifacts if a["format"] == "gguf")
    fp32 = next(a for a in artifacts if a["quant"] == "fp32")
    assert fp32["gate"] is None and fp32["validation"]["greedy_match"] is True
    manifest = json.loads((fresh_tiny_model / "export_manifest.json").read_text())
    assert sorted(a["path"] for a in manifest["artifacts"]) == sorted(a["path"] for a in artifacts)
