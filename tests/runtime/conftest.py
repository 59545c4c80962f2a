"""A tiny model exported by `fabulist export` itself for the runtime tests: random weights, our tokenizer,
optimum's and onnxruntime-genai's ONNX graphs (fp32, int4) and GGUF (f32, q4_0)."""

import pytest

from tests.export.conftest import make_model_dir


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory):
    from fabulist.export.gguf import export_gguf
    from fabulist.export.onnx import export_onnx

    folder = make_model_dir(tmp_path_factory.mktemp("runtime-model"))
    export_onnx(folder, ["fp32", "int4"], validate=False, progress=False)
    export_gguf(folder, ["f32", "q4_0"], validate=False, progress=False)
    return folder
