"""Planning an export: the dispatch table, the memory budget, and bad requests."""

import subprocess
import sys

import pytest

from fabulist.export import plan as pl
from fabulist.train.presets import get

SPECIAL = {"bos": 1, "eos": 0, "pad": 3}


def config(preset: str, vocab: int = 4096) -> dict:
    return {"model_type": "llama", **get(preset).llama_config(vocab, SPECIAL)}


def test_plan_table():
    assert pl.plan("all", "int4") == [("onnx", "int4"), ("gguf", "q4_0"), ("gguf", "q4_k_m")]
    assert len(pl.plan("all", "all")) == 7
    assert pl.plan("gguf", "fp16") == [("gguf", "f16")]
    with pytest.raises(
        pl.PlanError, match="unknown quantization 'int3'; choose from fp32, fp16, int8, int4, auto, all"
    ):
        pl.plan("all", "int3")
    with pytest.raises(pl.PlanError, match="fp16 is GGUF only"):
        pl.plan("onnx", "fp16")
    assert pl.plan("all", "auto") == [("onnx", "auto")]  # mixed 4/8-bit: ONNX only (export/mixed.py)
    with pytest.raises(pl.PlanError, match=r"auto is ONNX only\); try --format onnx"):
        pl.plan("gguf", "auto")


@pytest.mark.parametrize(
    ("text", "value"), [("6GB", 6_000_000_000), ("512MiB", 512 * 2**20), ("1.5 gb", 1.5e9)]
)
def test_parse_bytes(text, value):
    assert pl.parse_bytes(text) == value


def test_parameters_match_the_preset_count():
    for name in ("fable-1m", "fable-5m", "mobilellm-350m"):
        assert pl.parameters(config(name)) == get(name).parameters(4096)


def test_memory_estimate_parts():
    cfg = config("fable-5m")
    est = pl.memory(cfg, "onnx", 10_000_000, 512, 6_000_000_000)
    assert est["kv_cache"] == 2 * 8 * 4 * 32 * 512 * 4  # K+V x layers x kv heads x head_dim x ctx x fp32
    assert est["overhead"] == pl.OVERHEAD_BYTES + 1_000_000
    assert est["total"] == 10_000_000 + est["kv_cache"] + est["overhead"] and est["fits"]


def test_budget_names_what_fits():
    cfg = config("mobilellm-350m")
    assert not pl.estimate(cfg, "onnx", "fp32", 2048, 1_000_000_000)["fits"]  # 1.27 GB of fp32 weights
    assert "gguf q4_0" in pl.what_fits(cfg, 2048, 1_000_000_000)
    assert (
        pl.what_fits(cfg, 2048, 380_000_000) == "nothing fits at context 2048; gguf q4_0 fits at context 1024"
    )
    assert pl.what_fits(cfg, 2048, 300_000_000) == "nothing fits this budget, even at 4 bits and context 256"


def run_export(*args):
    cmd = [sys.executable, "-m", "fabulist.cli", "export", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_cli_refuses_bad_input(tmp_path, tiny_model):
    cases = [
        ((str(tmp_path),), f"error: {tmp_path} is not a model folder (no config.json)"),
        ((str(tiny_model), "--memory-budget", "lots"), "error: bad memory budget 'lots'"),
        ((str(tiny_model), "--memory-budget", "100MB"), "over the 100MB budget; nothing fits"),
        ((str(tiny_model), "--context", "100000"), "error: --context 100000 is outside 1..256"),
    ]
    for args, expected in cases:
        result = run_export(*args)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert expected in result.stderr.strip().splitlines()[-1], result.stderr
    assert not (tiny_model / "onnx").exists() and not (tiny_model / "gguf").exists()


def test_missing_tokenizer_and_other_architecture(tmp_path, tiny_model):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(pl.PlanError, match=r"tokenizer\.json is missing"):
        pl.read_config(folder)
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(pl.PlanError, match="model_type 'gpt2' is not supported; supported: llama, qwen2"):
        pl.read_config(folder)
