"""The mobile demo (android-demo/): a tiny exported model, the web app built from it, and the tools both need.

`./quickstart.sh test` installs the tools (Debian's chromium and Android build tools, `npm ci` in
android-demo/); without them these tests fail and say what to install.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import make_model_dir

DEMO = Path(__file__).resolve().parents[2] / "android-demo"
# Chrome's own services (update.googleapis.com, accounts.google.com, ... seen here), which the browser
# process calls by itself whatever the page does; the page's, worker's and service worker's own requests
# are checked separately, and all of them must be local.
CHROME_SERVICES = (".google.com", ".googleapis.com", ".gstatic.com", ".gvt1.com")
INSTALL = "run ./quickstart.sh test, which installs it (or: cd android-demo && npm ci)"


def need_node() -> None:
    if not shutil.which("node"):
        pytest.fail(f"node is not installed: {INSTALL}")
    for pkg in ("@huggingface/transformers", "onnxruntime-web", "playwright-core"):
        if not (DEMO / "node_modules" / pkg / "package.json").is_file():
            pytest.fail(f"android-demo/node_modules has no {pkg}: {INSTALL}")


def run_node(*args: str, timeout: int = 600) -> dict:
    """Run a script of android-demo/ with node and return the JSON object it prints last."""
    need_node()
    proc = subprocess.run(["node", *args], cwd=DEMO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"node {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_app(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    need_node()
    args = ["node", "scripts/build.mjs", "--model", str(model), "--out", str(out), *extra]
    env = {**os.environ, "FABULIST_PYTHON": sys.executable}  # describes the format for folders without one
    return subprocess.run(args, cwd=DEMO, capture_output=True, text=True, timeout=300, env=env)


def python_greedy(model_dir, quant: str, prompt: str, n: int) -> tuple[list[int], list[int]]:
    """(prompt ids, greedy tokens) from the torch-free runtime on optimum's graph (int8-fold included), as
    transformers.js."""
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.sampling import SamplingParams

    gen = load_generator(model_dir, "onnx", quant, graph="optimum")
    done = gen.generate(prompt, SamplingParams(temperature=0.0, max_new_tokens=n))[0]
    return gen.encode(prompt), done.tokens


# Where two runtimes run the same integer graph with different kernels (dynamic INT8: onnxruntime-web's
# WebAssembly kernels against the CPU's own), their logits differ honestly by a little: this much at most.
INT8_LOGIT_TOLERANCE = 0.25


def last_logits(model_dir, quant: str, prompt_ids: list[int]):
    """The Python side's prompt last-position logits on optimum's graph (the session the runtime opens)."""
    from fabulist.export.onnx import FILES, OnnxLM

    return OnnxLM(model_dir / "onnx" / FILES[quant]).logits(prompt_ids)[-1]


def assert_tokens_agree(model_dir, quant: str, prompt: str, js_tokens: list[int], n: int) -> list[int]:
    """transformers.js's greedy tokens = the Python runtime's. fp32 and int4 compute the same arithmetic on
    both sides: the same tokens, exactly. Dynamic INT8's integer kernels differ by CPU, so there: the same
    tokens up to the first step where the Python side's two best logits are within twice
    INT8_LOGIT_TOLERANCE (a near-tie either side may break its way); a split anywhere else fails.
    Returns the prompt's ids."""
    ids, tokens = python_greedy(model_dir, quant, prompt, n)
    assert len(tokens) > 0
    if quant != "int8":
        assert js_tokens == tokens, (quant, prompt)
        return ids
    margins = greedy_margins(model_dir, quant, ids, len(tokens))
    for i, (a, b) in enumerate(zip(js_tokens, tokens, strict=False)):
        if a != b:
            assert margins[i] < 2 * INT8_LOGIT_TOLERANCE, (prompt, i, margins[i])
            return ids
    assert js_tokens == tokens, (prompt, js_tokens, tokens)
    return ids


def assert_greedy_agrees(model_dir, quant: str, prompt: str, js: dict, n: int) -> None:
    """assert_tokens_agree, the same prompt ids, and for INT8 the prompt's last logits within
    INT8_LOGIT_TOLERANCE of the Python side's everywhere."""
    import numpy as np

    ids = assert_tokens_agree(model_dir, quant, prompt, js["tokens"], n)
    assert js["prompt_ids"] == ids, (quant, prompt)
    if quant == "int8":
        gap = float(
            np.abs(np.asarray(js["logits"], dtype=np.float32) - last_logits(model_dir, quant, ids)).max()
        )
        assert gap <= INT8_LOGIT_TOLERANCE, (prompt, gap)


def greedy_margins(model_dir, quant: str, ids: list[int], n: int) -> list[float]:
    """The gap between the two best logits at each of n greedy steps (Python side)."""
    import numpy as np

    from fabulist.export.onnx import FILES, OnnxLM

    lm = OnnxLM(model_dir / "onnx" / FILES[quant])
    logits, past = lm.step(ids, None)
    out = []
    for _ in range(n):
        top = np.sort(logits[-1])[-2:]
        out.append(float(top[1] - top[0]))
        logits, past = lm.step([int(logits[-1].argmax())], past)
    return out


def outside(asked: list[str]) -> list[str]:
    """What the refusing proxy of tests/e2e.mjs was asked for, less Chrome's own services."""
    hosts = [r.removeprefix("CONNECT ").split("://")[-1].split("/")[0].split(":")[0] for r in asked]
    return [r for r, h in zip(asked, hosts, strict=True) if not h.endswith(CHROME_SERVICES)]


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """A tiny random model exported as `fabulist export` does for transformers.js: fp32, int8 and int4, and
    int8 `fold` (the browser's default, onnx/model_int8_fold.onnx)."""
    from fabulist.export.onnx import export_onnx

    folder = make_model_dir(tmp_path_factory.mktemp("demo-model"))
    export_onnx(folder, ["fp32", "int8", "int4"], validate=False, progress=False, fast=False)
    export_onnx(folder, ["int8"], validate=False, progress=False, fast=False, method="fold")
    return folder


@pytest.fixture(scope="session")
def web_app(demo_model, tmp_path_factory):
    """The web app built from the tiny model (every precision)."""
    out = tmp_path_factory.mktemp("web") / "www"
    proc = build_app(demo_model, out)
    assert proc.returncode == 0, proc.stderr
    return out
