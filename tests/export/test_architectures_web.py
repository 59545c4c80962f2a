"""The browser column of bring-your-own-model: tiny folders of each architecture (test_architectures.py's
builders), exported to optimum's ONNX graph, run by transformers.js 4.3.2 on onnxruntime-web's wasm
kernels (android-demo/tests/plain.mjs) give PyTorch's greedy tokens (fp32) and onnxruntime's (int8), and
transformers.js's tokenizer encodes the probe texts as `tokenizers` does from the same tokenizer.json.

An architecture transformers.js could not run would be held to its expected one-line refusal in REFUSED
(and the README's table says so), never skipped: today every one of the five runs."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fabulist.bench.architectures import make_folder

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DEMO = Path(__file__).resolve().parents[2] / "android-demo"
ARCHES = {  # test_architectures.CONFIGS name -> what it stands for in the README's table
    "smollm2": "llama (SmolLM2-135M)",
    "mobilellm": "llama deep-thin (MobileLLM-125M)",
    "qwen2.5": "qwen2 (Qwen2.5-0.5B)",
    "qwen3": "qwen3 (Qwen3-0.6B)",
    "gemma3": "gemma3_text (Gemma-3-270M)",
}
REFUSED: dict[tuple[str, str], str] = {}  # (architecture, quant) -> transformers.js's expected error
# over 32 tokens: past the tiny Gemma's sliding window, so the browser's local-attention mask is exercised
PROMPT = "Once upon a time, a caf\u00e9 fox lived by the river. Every morning it walked to the old mill."
NEW = 16
PROBES = [
    "Digits 0123456789, 12,345.67 and 2024-01-31",
    "Caf\u00e9 na\u00efve fa\u00e7ade \u00c5ngstr\u00f6m",
    "Emoji \U0001f98a\U0001f319 and \u4f60\u597d",
    "spaces   and\ttabs\n\n\nnewlines  ",
    "<|im_start|>user\nHi<|im_end|>",
    "<bos>Hi<eos><pad>",
]


def run_plain(folder: Path, ids: list[int]) -> dict:
    """android-demo/tests/plain.mjs on folder: {results: {quant: {tokens}|{error}}, probes: [...]}."""
    if not shutil.which("node") or not (DEMO / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.fail("node and android-demo/node_modules are needed: cd android-demo && npm ci")
    args = ["node", "tests/plain.mjs", "--model", str(folder), "--ids", json.dumps(ids),
            "--quants", "fp32,int8,int8-fold", "--max", str(NEW), "--probes", json.dumps(PROBES)]  # fmt: skip
    proc = subprocess.run(args, cwd=DEMO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _eos(folder: Path) -> list[int]:
    eos = json.loads((folder / "generation_config.json").read_text())["eos_token_id"]
    return eos if isinstance(eos, list) else [eos]


def torch_greedy(folder: Path, ids: list[int]) -> list[int]:
    """PyTorch fp32 greedy (transformers' generate), without the end-of-text token it stops at."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    eos = _eos(folder)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos[0])  # fmt: skip
    new = out[0, len(ids) :].tolist()
    return new[:-1] if new and new[-1] in eos else new


def ort_greedy(folder: Path, quant: str, ids: list[int]) -> list[int]:
    """onnxruntime (native CPU) greedy on the same graph transformers.js loads."""
    from fabulist.export.onnx import OnnxLM, optimum_path

    eos = set(_eos(folder))
    out = OnnxLM(folder / optimum_path(*quant.split("-"))).greedy(ids, NEW, eos)
    return out[:-1] if out and out[-1] in eos else out


@pytest.fixture(scope="module", params=list(ARCHES))
def browser(request, tmp_path_factory):
    """(name, folder, prompt ids, plain.mjs's answer) of one architecture, exported to ONNX fp32, int8 and
    int8-fold (the browser's default, which folds onnxruntime-genai's builder graph where the builder takes
    the architecture)."""
    from tokenizers import Tokenizer

    from fabulist.export.onnx import export_onnx

    name = request.param
    folder = make_folder(name, tmp_path_factory.mktemp(name) / "model")
    export_onnx(folder, ["fp32", "int8"], validate=False, progress=False, fast=False)  # optimum's graph only
    export_onnx(folder, ["int8"], validate=False, progress=False, fast=False, method="fold")
    ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(PROMPT, add_special_tokens=False).ids
    assert len(ids) > 32
    return name, folder, ids, run_plain(folder, ids)


def _ran(name: str, quant: str, got: dict) -> bool:
    """True when the browser ran this precision; an expected refusal is asserted here instead."""
    if (name, quant) in REFUSED:
        assert REFUSED[(name, quant)] in got.get("error", ""), (name, quant, got)
        return False
    assert "error" not in got, (name, quant, got["error"])
    return True


def test_browser_fp32_greedy_equals_pytorch(browser):
    name, folder, ids, got = browser
    if _ran(name, "fp32", got["results"]["fp32"]):
        assert got["results"]["fp32"]["tokens"] == torch_greedy(folder, ids), name


def test_browser_int8_greedy_equals_onnxruntime(browser):
    name, folder, ids, got = browser
    if _ran(name, "int8", got["results"]["int8"]):
        assert got["results"]["int8"]["tokens"] == ort_greedy(folder, "int8", ids), name


def test_browser_int8_fold_greedy_equals_onnxruntime(browser):
    name, folder, ids, got = browser
    if _ran(name, "int8-fold", got["results"]["int8-fold"]):
        assert got["results"]["int8-fold"]["tokens"] == ort_greedy(folder, "int8-fold", ids), name


def test_browser_tokenizer_equals_tokenizers_on_probes(browser):
    from tokenizers import Tokenizer

    name, folder, _, got = browser
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert [p["text"] for p in got["probes"]] == PROBES
    for probe in got["probes"]:
        assert probe.get("ids") == tok.encode(probe["text"], add_special_tokens=False).ids, (name, probe)
