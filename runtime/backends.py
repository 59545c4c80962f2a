"""Backends for the Generator: ONNX Runtime over an optimum-layout graph, and llama.cpp over GGUF.

ONNX: either graph `fabulist export` writes — optimum's (`onnx/model*.onnx`: input_ids, attention_mask,
position_ids, past_key_values.{i}.key/value -> logits, present.{i}.key/value) or onnxruntime-genai's
builder graph (`onnx-genai/*/model.onnx`: the same without position_ids; rotary positions come from the
attention mask inside GroupQueryAttention). The prompt is
prefilled in one call; the cache then stays in ONNX Runtime's own OrtValues, bound as the next step's
inputs through IO binding, so no step copies it through numpy. n completions of one prompt share one
prefill: its cache is repeated n times once, then all n advance together as a batch.

llama.cpp: llama-cpp-python's low-level eval with its own KV cache; one sequence at a time. An f32 GGUF
runs with an f32 KV cache (exact parity with PyTorch); the others with llama.cpp's default f16 cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fabulist.errors import FabulistError


class BackendError(FabulistError):
    """An artifact that cannot be loaded."""


class OnnxBackend:
    batched = True

    def __init__(self, model_path: str | Path, config: dict, threads: int | None = None):
        import onnxruntime as ort

        from fabulist.ort_session import session_options

        try:
            self.session = ort.InferenceSession(
                str(model_path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"cannot load {model_path}: {str(exc).splitlines()[0][:200]}") from None
        self.context = config["max_position_embeddings"]
        self.layers = config["num_hidden_layers"]
        self.kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
        self.head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        self.kv_bytes = kv_bytes_per_token(config)  # for the generator's memory check before a batch
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.cache_names = [
            (f"past_key_values.{i}.key", f"past_key_values.{i}.value") for i in range(self.layers)
        ]
        self.present = [(f"present.{i}.key", f"present.{i}.value") for i in range(self.layers)]
        missing = {"input_ids", *(n for pair in self.cache_names for n in pair)} - self.inputs
        if missing:
            raise BackendError(
                f"{model_path} is not a KV-cache decoder for this config (no {sorted(missing)[0]})"
            )
        past = next(i for i in self.session.get_inputs() if i.name == "past_key_values.0.key")
        self.dtype = np.float16 if "float16" in past.type else np.float32
        self.past: list = []
        self.length = 0

    def check_vocab(self, vocab: int) -> None:
        width = self.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != vocab:
            raise BackendError(f"the ONNX graph has {width} logits but config.json says vocab_size {vocab}")

    def _run(self, input_ids: np.ndarray, past: list, past_len: int) -> np.ndarray:
        batch, new = input_ids.shape
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", input_ids)
        if "attention_mask" in self.inputs:
            binding.bind_cpu_input("attention_mask", np.ones((batch, past_len + new), dtype=np.int64))
        if "position_ids" in self.inputs:
            positions = np.arange(past_len, past_len + new, dtype=np.int64)
            binding.bind_cpu_input("position_ids", np.broadcast_to(positions, (batch, new)).copy())
        for (k_name, v_name), (k, v) in zip(self.cache_names, past, strict=True):
            for name, value in ((k_name, k), (v_name, v)):
                if isinstance(value, np.ndarray):
                    binding.bind_cpu_input(name, value)
                else:
                    binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits")
        for k_name, v_name in self.present:
            binding.bind_output(k_name)
            binding.bind_output(v_name)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        self.past = [(outputs[1 + 2 * i], outputs[2 + 2 * i]) for i in range(self.layers)]
        return outputs[0].numpy()[:, -1, :].astype(np.float32, copy=False)

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray:
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self.dtype)
        logits = self._run(np.array([prompt_ids], dtype=np.int64), [(empty, empty)] * self.layers, 0)
        self.length = len(prompt_ids)
        if n > 1:  # share the prefill: repeat the cache once, then advance as a batch
            self.past = [
                (np.repeat(k.numpy(), n, axis=0), np.repeat(v.numpy(), n, axis=0)) for k, v in self.past
            ]
            logits = np.repeat(logits, n, axis=0)
        return logits

    def advance(self, tokens: list[int]) -> np.ndarray:
        logits = self._run(np.array(tokens, dtype=np.int64)[:, None], self.past, self.length)
        self.length += 1
        return logits


class GenaiBackend:
    """onnxruntime-genai's generator over its builder graph, with the Generator's own sampling.

    Its decoder keeps one preallocated KV buffer per layer that past and present share, which on CPU
    decodes several times faster than feeding the cache back through a plain session, and it batches the
    n completions of one prompt. It accepts a batch's tokens only once, so each step we hand it logits
    that allow only the tokens our sampler chose (`set_logits`) and let its greedy search append them:
    sampling, seeds and stop rules stay the Generator's, the same on every backend.
    """

    batched = True

    def __init__(self, model_path: str | Path, config: dict, threads: int | None = None):
        import onnxruntime_genai as og

        folder = Path(model_path).parent
        try:
            cfg = og.Config(str(folder))
            cfg.clear_providers()  # CPU
            if threads:
                options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
                cfg.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
            self.model = og.Model(cfg)
            self.vocab = json.loads((folder / "genai_config.json").read_text())["model"]["vocab_size"]
        except Exception as exc:  # onnxruntime-genai raises RuntimeError with the ORT message
            raise BackendError(f"cannot load {model_path}: {str(exc).splitlines()[0][:200]}") from None
        self.og = og
        self.context = config["max_position_embeddings"]
        self.kv_bytes = kv_bytes_per_token(config)  # for the generator's memory check before a batch

    def check_vocab(self, vocab: int) -> None:
        if self.vocab != vocab:
            raise BackendError(
                f"the ONNX graph has {self.vocab} logits but config.json says vocab_size {vocab}"
            )

    def _logits(self) -> np.ndarray:
        return self.gen.get_logits()[:, -1, :].astype(np.float32, copy=False)

    def close(self) -> None:
        """Free the generator and the model now. A long-lived process (`fabulist serve`) that leaves them to
        interpreter exit gets onnxruntime-genai's "instances ... were leaked" report on stderr."""
        self.gen = self.model = None

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray:
        params = self.og.GeneratorParams(self.model)
        # The KV buffer is allocated for max_length tokens: only what this request can reach, not the
        # whole context (mobilellm-350m at 2,112 tokens: ~300 MB less peak RSS, and a sooner first token).
        total = min(self.context, len(prompt_ids) + new_tokens)
        params.set_search_options(max_length=total, batch_size=n, do_sample=False)
        self.gen = self.og.Generator(self.model, params)
        self.gen.append_tokens(np.array([prompt_ids] * n, dtype=np.int32))
        self.forced = np.full((n, self.vocab), -np.inf, dtype=np.float32)
        return self._logits()

    def advance(self, tokens: list[int]) -> np.ndarray:
        rows = np.arange(len(tokens))
        self.forced[rows, tokens] = 0.0
        self.gen.set_logits(self.forced)
        self.gen.generate_next_token()
        self.forced[rows, tokens] = -np.inf
        return self._logits()


class LlamaCppBackend:
    batched = False

    def __init__(self, model_path: str | Path, context: int, threads: int | None = None):
        import llama_cpp

        if not Path(model_path).exists():
            raise BackendError(f"{model_path}: file not found")
        try:
            threads = threads or os.cpu_count()  # llama-cpp-python's own default is half the cores
            exact = {"type_k": 0, "type_v": 0} if Path(model_path).name.endswith("-f32.gguf") else {}
            self.llm = llama_cpp.Llama(
                str(model_path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                verbose=False, logits_all=False, seed=0, **exact,
            )  # fmt: skip
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load {model_path}: {exc}") from None
        self.context = context
        self.vocab = self.llm.n_vocab()

    def check_vocab(self, vocab: int) -> None:
        if self.llm.n_vocab() != vocab:
            raise BackendError(
                f"the GGUF has {self.llm.n_vocab()} tokens but config.json says vocab_size {vocab}"
            )

    def _last_logits(self) -> np.ndarray:
        # llama-cpp-python keeps no scores without logits_all; read the last row from the context itself
        import llama_cpp

        row = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(self.vocab,)).astype(np.float32)[None, :]

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(prompt_ids)
        return self._last_logits()

    def advance(self, tokens: list[int]) -> np.ndarray:
        self.llm.eval(tokens[:1])
        return self._last_logits()


def kv_bytes_per_token(config: dict) -> int:
    """Bytes of KV cache one token of one sequence holds (keys and values of every layer, float32)."""
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * 4


def read_config(model_dir: Path) -> dict:
    """The folder's config.json, checked by the one model-folder reader (fabulist.model_folder)."""
    from fabulist.model_folder import read_config as read_checked

    path = model_dir / "config.json"
    if not path.exists():
        raise BackendError(f"{model_dir}: no config.json (not an exported model folder)")
    return read_checked(model_dir)
