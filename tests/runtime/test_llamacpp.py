"""runtime/llamacpp.py, the lean batched llama.cpp loop, on a real GGUF: batched rows equal each prompt
decoded alone (and llama-cpp-python's own `Llama.eval`), shared prefills, the context limit, close()."""

import numpy as np
import pytest

from fabulist import fable_format as ff
from fabulist.runtime.backends import BackendError, LlamaCppBackend
from fabulist.runtime.llamacpp import LlamaCpp
from fabulist.runtime.load import load_generator
from fabulist.runtime.sampling import SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PROMPTS = [[1, 40, 41, 42, 43, 44, 45], [1, 90, 91], [1, 40, 41, 42, 43, 44, 45], [1, 7, 8, 9, 10]]


def greedy(backend, prompts: list[list[int]], steps: int) -> tuple[list[list[int]], np.ndarray]:
    """Greedy tokens per row, and the last step's logits (a copy)."""
    logits = backend.start_batch(prompts, steps)
    out: list[list[int]] = [[] for _ in prompts]
    for _ in range(steps):
        picks = logits.argmax(axis=1).tolist()
        for row, tok in zip(out, picks, strict=True):
            row.append(tok)
        logits = backend.advance(picks)
    return out, logits.copy()


def eval_greedy(path, prompt: list[int], steps: int) -> list[int]:
    """The same greedy loop on llama-cpp-python's high-level Llama.eval (f32 KV cache), one sequence."""
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, n_threads=1, verbose=False, type_k=0, type_v=0)
    llm.eval(prompt)
    out = []
    for _ in range(steps):
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        out.append(int(row.argmax()))
        llm.eval(out[-1:])
    llm.close()
    return out


@pytest.fixture(scope="module")
def f32(onnx_model):
    return onnx_model / "gguf" / "model-f32.gguf"


def test_batched_rows_equal_each_prompt_alone(f32):
    backend = LlamaCpp(f32, 256, threads=1, exact_cache=True)
    batched, last = greedy(backend, PROMPTS, 24)
    alone = [greedy(backend, [p], 24) for p in PROMPTS]
    assert batched == [tokens[0] for tokens, _ in alone]
    for row, (_, logits) in enumerate(alone):  # the same numbers, within llama.cpp's float tolerance
        np.testing.assert_allclose(last[row], logits[0], rtol=0, atol=1e-3)
    assert batched[0] == batched[2] and batched[0] != batched[1]
    assert batched[0] == eval_greedy(f32, PROMPTS[0], 24)  # what llama-cpp-python's own eval decodes
    assert backend.seqs == 4  # the context was made again for four sequences
    assert backend.kv_bytes == 2 * 2 * 2 * 16 * 4  # K and V x 2 layers x 2 KV heads x head size 16 x f32
    backend.close()


def test_rows_of_one_prompt_share_its_prefill(f32):
    backend = LlamaCpp(f32, 256, threads=1, exact_cache=True)
    logits = backend.start(PROMPTS[1], 3, 8).copy()
    assert logits.shape == (3, backend.vocab)
    assert (logits[0] == logits[1]).all() and (logits[0] == logits[2]).all()
    # each row now continues from the copied cache on its own token: as that token after the prompt alone
    step = backend.advance([5, 6, 5]).copy()
    assert (step[0] == step[2]).all() and not (step[0] == step[1]).all()
    for row, tok in ((0, 5), (1, 6)):
        backend.start_batch([PROMPTS[1]], 8)
        np.testing.assert_allclose(step[row], backend.advance([tok])[0], rtol=0, atol=1e-3)
    backend.close()


def test_a_full_context_is_a_one_line_error(f32):
    backend = LlamaCpp(f32, 12, threads=1)
    backend.start_batch([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], 2)
    backend.advance([11])
    backend.advance([12])  # 12 tokens held: the context is full, the next token has no cell
    with pytest.raises(BackendError, match=r"^the model's context of 12 tokens is full; ask for fewer new"):
        backend.advance([13])
    with pytest.raises(BackendError, match=r"^prompts must hold 1 to 12 tokens .* not 13$"):
        backend.start_batch([list(range(1, 14))], 1)
    backend.close()


def test_close_frees_the_model_and_a_later_call_is_an_error(f32):
    backend = LlamaCpp(f32, 64, threads=1)
    backend.start_batch([[1, 2, 3]], 4)
    backend.close()
    assert backend.model is None and backend.ctx is None and backend.batch is None
    backend.close()  # a second close does nothing
    with pytest.raises(BackendError, match=r"^the llama.cpp backend is closed$"):
        backend.advance([4])
    with pytest.raises(BackendError, match=r"^the llama.cpp backend is closed$"):
        backend.start_batch([[1, 2]], 4)


def test_a_bad_file_is_a_one_line_error(tmp_path, capfd):
    bad = tmp_path / "model-q4_0.gguf"
    bad.write_bytes(b"GGUF not really")
    with pytest.raises(BackendError, match=r"^cannot load .*model-q4_0\.gguf: llama.cpp cannot read it"):
        LlamaCppBackend(bad, 64)
    assert capfd.readouterr().err == ""  # llama.cpp's loader lines do not reach the terminal
    with pytest.raises(BackendError, match=r"no-such\.gguf: file not found$"):
        LlamaCppBackend(tmp_path / "no-such.gguf", 64)


def test_seeded_batch_equals_the_onnx_backends(onnx_model):
    """The same sampler semantics everywhere: f32 GGUF and optimum's fp32 ONNX graph, one seeded batch."""
    prompt = ff.prompt({"character": "Fox", "moral": "Kindness is rewarded."})
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=4, max_new_tokens=40)
    gguf = load_generator(onnx_model, "gguf", "f32")
    onnx = load_generator(onnx_model, "onnx", "fp32", graph="optimum")
    assert gguf.backend.batched and gguf.backend.exact_cache
    tokens = [c.tokens for c in gguf.generate(prompt, params, n=3)]
    assert tokens == [c.tokens for c in onnx.generate(prompt, params, n=3)]
    assert len({tuple(t) for t in tokens}) == 3
