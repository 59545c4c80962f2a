"""Backends for the Generator: ONNX Runtime over an optimum-layout graph, and llama.cpp over GGUF.

ONNX: the graph `fabulist export` writes (`onnx/model*.onnx`): inputs input_ids, attention_mask,
position_ids, past_key_values.{i}.key/value; outputs logits, present.{i}.key/value. The prompt is
prefilled in one call; the cache then stays in ONNX Runtime's own OrtValues, bound as the next step's
inputs through IO binding, so no step copies it through numpy. n completions of one prompt share one
prefill: its cache is repeated n times once, then all n advance together as a batch.

llama.cpp: llama-cpp-python's low-level eval with its own KV cache; one sequence at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fabulist.errors import FabulistError


class BackendError(FabulistError):
    """An artifact that cannot be loaded."""


class OnnxBackend:
    batched = True

    def __init__(self, model_path: str | Path, config: dict, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"cannot load {model_path}: {str(exc).splitlines()[0][:200]}") from None
        self.context = config["max_position_embeddings"]
        self.layers = config["num_hidden_layers"]
        self.kv_heads = config["num_key_value_heads"]
        self.head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.cache_names = [
            (f"past_key_values.{i}.key", f"past_key_values.{i}.value") for i in range(self.layers)
        ]
        self.present = [(f"present.{i}.key", f"present.{i}.value") for i in range(self.layers)]
        self.past: list = []
        self.length = 0

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
        return outputs[0].numpy()[:, -1, :]

    def start(self, prompt_ids: list[int], n: int) -> np.ndarray:
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=np.float32)
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


class LlamaCppBackend:
    batched = False

    def __init__(self, model_path: str | Path, context: int, threads: int | None = None):
        import llama_cpp

        if not Path(model_path).exists():
            raise BackendError(f"{model_path}: file not found")
        try:
            self.llm = llama_cpp.Llama(str(model_path), n_ctx=context, n_threads=threads, verbose=False,
                                       logits_all=False, seed=0)  # fmt: skip
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load {model_path}: {exc}") from None
        self.context = context

    def _last_logits(self) -> np.ndarray:
        return np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float32)[None, :]

    def start(self, prompt_ids: list[int], n: int) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(prompt_ids)
        return self._last_logits()

    def advance(self, tokens: list[int]) -> np.ndarray:
        self.llm.eval(tokens[:1])
        return self._last_logits()


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.exists():
        raise BackendError(f"{model_dir}: no config.json (not an exported model folder)")
    return json.loads(path.read_text())
