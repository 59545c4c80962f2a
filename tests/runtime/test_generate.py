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

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PROMPT = ff.prompt({"character": "Fox", "moral": "Kindness is rewarded."})


def test_greedy_matches_pytorch(onnx_model):
    gen = load_generator(onnx_model, "onnx", "fp32")
    ids = gen.encode(PROMPT)
    out = gen.generate(PROMPT, SamplingParams(temperature=0, max_new_tokens=48))[0]
    reference = torch_greedy(onnx_model, ids, 48)
    eos = gen.eos
    assert out.tokens == [t for t in reference if t != eos][: len(out.tokens)]
    assert out.finish_reason == ("eos" if eos in reference else "length")


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
        (["--model", str(onnx_model), "--format", "gguf"], "does not exist; make it with `fabulist export"),
        (["--model", str(onnx_model), "--quant", "fp32", "--prompt", "fox " * 300], "the prompt is"),
    ]
    for args, expected in cases:
        cmd = [sys.executable, "-m", "fabulist.cli", "generate", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr.strip().splitlines()[-1]
