"""Each engine the suite measures, loaded the way its users load it, behind one call: `run(ids, n)`.

    from fabulist.bench.engines import ENGINES
    load_s, run = ENGINES["llama"](model_dir, "gguf/model-q4_0.gguf", threads=2)
    ttft, decode = run(prompt_ids, 129)   # prefill, then greedy until 129 tokens are new (no early stop)

`ttft` is the time from the call to the first new token, `decode` the time of the n - 1 tokens after it,
both taken inside the engine's own loop (so a long prefill's noise does not leak into the decode time).

Engines: `ours` (fabulist.runtime's Generator on any artifact), `llama` (llama-cpp-python's generate),
`genai` (onnxruntime-genai's own generator), `optimum` (ORTModelForCausalLM.generate) and `torch`
(transformers' AutoModelForCausalLM.generate, fp32: Llama, Qwen2/3, Gemma 3). Each is imported inside its
loader, so the worker process of a row holds only that engine's libraries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from fabulist import artifacts

Run = Callable[[list[int], int], tuple[float, float]]


def _context(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["max_position_embeddings"]


def load_ours(model_dir: Path, artifact: str, threads: int) -> tuple[float, Run]:
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.sampling import SamplingParams

    found = artifacts.by_path(artifact)
    graph = found.graph if found.format == "onnx" else "auto"
    gen = load_generator(model_dir, found.format, found.quant, threads, graph)
    texts: dict[tuple, str] = {}
    stamps: list[float] = []
    advance = gen.backend.advance

    def timed_advance(tokens):  # called once a token is chosen, before the next step's logits
        stamps.append(time.perf_counter())
        return advance(tokens)

    gen.backend.advance = timed_advance

    def run(ids: list[int], n: int) -> tuple[float, float]:
        text = texts.setdefault(tuple(ids), gen.tok.decode(ids, skip_special_tokens=False))
        if gen.plain is not None:  # the very ids every engine gets: no BOS added, no decode round trip
            gen.encode = lambda _text: list(ids)
        stamps.clear()
        t = time.perf_counter()
        gen.generate(text, SamplingParams(temperature=0, max_new_tokens=n, min_new_tokens=n))
        end = time.perf_counter()
        return stamps[0] - t, end - stamps[0]

    return gen.load_seconds, run


def load_llama(model_dir: Path, artifact: str, threads: int) -> tuple[float, Run]:
    import llama_cpp

    t = time.perf_counter()
    llm = llama_cpp.Llama(str(model_dir / artifact), n_ctx=_context(model_dir), n_threads=threads,
                          n_threads_batch=threads, verbose=False)  # fmt: skip
    load = time.perf_counter() - t

    def run(ids: list[int], n: int) -> tuple[float, float]:
        llm.reset()  # or generate() reuses the cached prompt and skips the prefill
        t = first = time.perf_counter()
        for i, _ in enumerate(llm.generate(ids, top_k=1, temp=0.0, reset=True), 1):
            if i == 1:
                first = time.perf_counter()
            if i == n:
                break
        return first - t, time.perf_counter() - first

    return load, run


def load_genai(model_dir: Path, artifact: str, threads: int) -> tuple[float, Run]:
    import onnxruntime_genai as og

    t = time.perf_counter()
    config = og.Config(str((model_dir / artifact).parent))
    config.clear_providers()
    options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    load = time.perf_counter() - t

    def run(ids: list[int], n: int) -> tuple[float, float]:
        t = time.perf_counter()
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + n, min_length=len(ids) + n)
        gen = og.Generator(model, params)
        gen.append_tokens(ids)  # the prefill; its logits give the first token
        first = time.perf_counter()
        while not gen.is_done():
            gen.generate_next_token()
        return first - t, time.perf_counter() - first

    return load, run


def load_optimum(model_dir: Path, artifact: str, threads: int) -> tuple[float, Run]:
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    from fabulist.ort_session import session_options

    torch.set_num_threads(threads)
    options = session_options(threads)  # accurate integer matmuls, as our runtime runs them
    t = time.perf_counter()
    model = ORTModelForCausalLM.from_pretrained(model_dir, subfolder="onnx", file_name=Path(artifact).name,
                                                session_options=options, use_cache=True)  # fmt: skip
    head_dim = getattr(model.config, "head_dim", None)
    if head_dim and getattr(model, "embed_size_per_head", head_dim) != head_dim:
        # optimum-onnx 0.1 sizes the empty cache as hidden/heads for all but Gemma: Qwen3's head_dim
        # (128 x 16 heads > hidden 1024) fails its first call, so the row could not be measured
        model.embed_size_per_head = head_dim
    return time.perf_counter() - t, _hf_run(model)


def load_torch(model_dir: Path, artifact: str, threads: int) -> tuple[float, Run]:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()  # Llama, Qwen, Gemma
    return time.perf_counter() - t, _hf_run(model)


class _Stamps:
    """A transformers streamer that records when each new token arrives (the first put is the prompt)."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _hf_run(model) -> Run:
    import torch

    def run(ids: list[int], n: int) -> tuple[float, float]:
        x, stamps = torch.tensor([ids]), _Stamps()
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=model.config.pad_token_id,
                           streamer=stamps)  # fmt: skip
        end = time.perf_counter()
        return stamps.times[1] - t, end - stamps.times[1]

    return run


ENGINES: dict[str, Callable[[Path, str, int], tuple[float, Run]]] = {
    "ours": load_ours, "llama": load_llama, "genai": load_genai, "optimum": load_optimum, "torch": load_torch,
}  # fmt: skip
