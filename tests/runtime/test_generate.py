"""The torch-free runtime on a real ONNX graph: parity with PyTorch, batching, seeds, limits, the CLI."""

import json
import subprocess
import sys

import pytest

from fabulist import fable_format as ff
from fabulist.export.validate import torch_greedy
from fabulist.runtime.engine import GenerationError
from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams
from tests.builders import make_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PROMPT = ff.prompt({"character": "Fox", "moral": "Kindness is rewarded."})


@pytest.mark.parametrize(
    ("fmt", "quant", "graph", "path"),
    [
        ("onnx", "fp32", "optimum", "onnx/model.onnx"),
        ("onnx", "fp32", "auto", "onnx-genai/fp32/model.onnx"),
        ("gguf", "f32", "auto", "gguf/model-f32.gguf"),
    ],
)
def test_greedy_matches_pytorch(onnx_model, fmt, quant, graph, path):
    """Full precision on every backend and graph: the same greedy text as PyTorch, token for token."""
    gen = load_generator(onnx_model, fmt, quant, graph=graph)
    assert gen.artifact == onnx_model / path
    ids = gen.encode(PROMPT)
    out = gen.generate(PROMPT, SamplingParams(temperature=0, max_new_tokens=48))[0]
    reference = torch_greedy(onnx_model, ids, 48)
    eos = gen.eos
    assert out.tokens == [t for t in reference if t != eos][: len(out.tokens)]
    assert out.finish_reason == ("eos" if eos in reference else "length")
    assert len(out.tokens) >= 8


def test_genai_generator_samples_what_our_sampler_chose(onnx_model):
    """The genai backend (forced logits) and a plain session on optimum's graph: same seeded batch."""
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=4, max_new_tokens=40)
    fast = load_generator(onnx_model, "onnx", "fp32", graph="genai")
    plain = load_generator(onnx_model, "onnx", "fp32", graph="optimum")
    assert type(fast.backend).__name__ == "GenaiBackend" and type(plain.backend).__name__ == "OnnxBackend"
    assert [c.tokens for c in fast.generate(PROMPT, params, n=4)] == [
        c.tokens for c in plain.generate(PROMPT, params, n=4)
    ]


@pytest.mark.parametrize(("fmt", "quant"), [("onnx", "int4"), ("gguf", "q4_0")])
def test_quantized_backends_generate_seeded_text(onnx_model, fmt, quant):
    gen = load_generator(onnx_model, fmt, quant)
    params = SamplingParams(temperature=0.9, top_p=0.9, seed=5, max_new_tokens=30)
    first, second = gen.generate(PROMPT, params, n=2)
    assert first.tokens and first.tokens != second.tokens
    assert [c.tokens for c in gen.generate(PROMPT, params, n=2)] == [first.tokens, second.tokens]


def test_batch_is_seeded_and_matches_one_by_one(onnx_model):
    gen = load_generator(onnx_model, "onnx", "fp32")
    params = SamplingParams(temperature=1.0, top_k=50, seed=11, max_new_tokens=24)
    batch = gen.generate(PROMPT, params, n=3)
    again = gen.generate(PROMPT, params, n=3)
    assert [c.tokens for c in batch] == [c.tokens for c in again]
    assert len({tuple(c.tokens) for c in batch}) == 3
    single = gen._run(PROMPT, params, [1])[0]  # the second sequence alone: same seed stream, same tokens
    assert single.tokens == batch[1].tokens


def test_context_limits_and_stop_strings(onnx_model):
    gen = load_generator(onnx_model, "onnx", "fp32")
    with pytest.raises(GenerationError, match=r"the prompt is \d+ tokens but the model's context is 256"):
        gen.generate(ff.prompt({}, "fox " * 300), SamplingParams())
    clipped = gen.generate(PROMPT, SamplingParams(temperature=0, max_new_tokens=10_000))[0]
    assert clipped.clipped_to == 256 - len(gen.encode(PROMPT))
    free = gen.generate(PROMPT, SamplingParams(seed=2, max_new_tokens=60))[0]
    stop = free.text[5:8]
    cut = gen.generate(PROMPT, SamplingParams(seed=2, max_new_tokens=60, stop=(stop,)))[0]
    assert cut.finish_reason == "stop" and stop not in cut.text and free.text.startswith(cut.text)


NO_TORCH = """
import socket, sys
sys.modules["torch"] = None          # importing torch or transformers now fails
sys.modules["transformers"] = None
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from fabulist.cli import main
main()
"""


def test_cli_runs_without_torch_or_network(onnx_model):
    args = ["generate", "--model", str(onnx_model), "--format", "onnx", "--quant", "fp32",
            "--character", "fox", "--seed", "3", "--max-new-tokens", "20", "-n", "2", "--json"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-1500:]
    out = json.loads(result.stdout)
    assert out["elements"]["character"] == "Fox" and len(out["elements"]) == 6
    assert len(out["completions"]) == 2 and all(c["new_tokens"] >= 1 for c in out["completions"])
    again = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120
    )
    assert json.loads(again.stdout)["completions"] == [
        {**c, "stats": json.loads(again.stdout)["completions"][i]["stats"]}
        for i, c in enumerate(out["completions"])
    ]


def test_cli_bad_input_is_one_line(onnx_model, tmp_path):
    cases = [
        (["--model", str(tmp_path)], f"error: {tmp_path}: no config.json"),
        (["--model", str(onnx_model), "--format", "gguf", "--quant", "q8_0"],
         "no gguf q8_0 artifact (present: onnx fp32, onnx int4, gguf f32, gguf q4_0); make it with"),
        (["--model", str(onnx_model), "--quant", "int8"], "no onnx int8 artifact"),
        (["--model", str(onnx_model), "--quant", "fp32", "--prompt", "fox " * 300], "the prompt is"),
    ]  # fmt: skip
    for args, expected in cases:
        cmd = [sys.executable, "-m", "fabulist.cli", "generate", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr.strip().splitlines()[-1]


def _copy(model, dest, skip=()):
    import shutil

    shutil.copytree(model, dest, ignore=shutil.ignore_patterns(*skip))
    return dest


@pytest.mark.parametrize("fmt", ["onnx", "gguf"])
def test_corrupt_or_mismatched_files_are_clear_errors(onnx_model, tmp_path, fmt):
    from fabulist.runtime.backends import BackendError

    quant = {"onnx": "fp32", "gguf": "f32"}[fmt]
    broken = _copy(onnx_model, tmp_path / "broken")
    path = load_generator(broken, fmt, quant).artifact
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # a download cut short
    with pytest.raises(BackendError, match="cannot load"):
        load_generator(broken, fmt, quant)
    other = _copy(onnx_model, tmp_path / "other", skip=("tokenizer.json",))
    big = make_model_dir(tmp_path / "big", vocab=1024)  # a tokenizer from a model with a larger vocabulary
    (other / "tokenizer.json").write_bytes((big / "tokenizer.json").read_bytes())
    with pytest.raises(BackendError, match="the tokenizer belongs to another model"):
        load_generator(other, fmt, quant)
    (other / "tokenizer.json").write_text("{not json")
    with pytest.raises(BackendError, match="not a valid tokenizer"):
        load_generator(other, fmt, quant)


def test_stats_and_artifact_on_the_cli(onnx_model):
    cmd = [sys.executable, "-m", "fabulist.cli", "generate", "--model", str(onnx_model), "--quant", "int4",
           "--character", "fox", "--seed", "1", "--max-new-tokens", "16", "--stats"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "onnx-genai/int4/model.onnx: load" in last and "tok/s" in last and "first token" in last
