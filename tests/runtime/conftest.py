"""A tiny exported model for runtime tests: random weights, our tokenizer, optimum's ONNX graph."""

import pytest

from tests.export.conftest import make_model_dir


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory):
    """A model folder with onnx/model.onnx (fp32, KV cache) exported by optimum-onnx."""
    from optimum.exporters.onnx import main_export

    folder = make_model_dir(tmp_path_factory.mktemp("runtime-model"))
    main_export(
        str(folder), output=str(folder / "onnx"), task="text-generation-with-past", local_files_only=True
    )
    return folder
