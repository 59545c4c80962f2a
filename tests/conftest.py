"""Fixtures shared across stages."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def answering_gguf(tmp_path_factory):
    """A tiny GGUF exported by the project, taught to answer as a judge and as a teacher, for tests that run
    it behind llama-cpp-python's real OpenAI-compatible server (tests.llama_server)."""
    from tests.llama_server import train_answering_model

    return train_answering_model(tmp_path_factory.mktemp("answering-model"))


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, site): the wheel built from this tree, installed without dependencies into a folder of its
    own. With PYTHONPATH=site and a working directory outside the repository, `fabulist` is what a user of
    the wheel gets (the dependencies come from the test environment)."""
    root = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
             "-w", str(root / "dist")]  # fmt: skip
    r = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wheel = next((root / "dist").glob("fabulist-*.whl"))
    site = root / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                        str(site), str(wheel)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return wheel, site


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory):
    """A tiny model exported by `fabulist export` itself, for the runtime and evaluation tests: random
    weights, our tokenizer, optimum's and onnxruntime-genai's ONNX graphs (fp32, int4), GGUF (f32, q4_0)."""
    from fabulist.export.gguf import export_gguf
    from fabulist.export.onnx import export_onnx
    from tests.builders import make_model_dir

    folder = make_model_dir(tmp_path_factory.mktemp("runtime-model"))
    export_onnx(folder, ["fp32", "int4"], validate=False, progress=False)
    export_gguf(folder, ["f32", "q4_0"], validate=False, progress=False)
    return folder
