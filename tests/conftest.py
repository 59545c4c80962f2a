"""Fixtures shared across stages."""

import pytest


@pytest.fixture(scope="session")
def answering_gguf(tmp_path_factory):
    """A tiny GGUF exported by the project, taught to answer as a judge and as a teacher, for tests that run
    it behind llama-cpp-python's real OpenAI-compatible server (tests.llama_server)."""
    from tests.llama_server import train_answering_model

    return train_answering_model(tmp_path_factory.mktemp("answering-model"))
