"""Backends for the Generator: ONNX Runtime over an optimum-layout graph, and llama.cpp over GGUF.

ONNX: either graph `fabulist export` writes — optimum's (`onnx/model*.onnx`: input_ids, attention_mask,
position_ids, past_key_values.{i}.key/value -> logits, present.{i}.key/value) or onnxruntime-genai's
builder graph (`onnx-genai/*/model.onnx`: the same without position_ids; rotary positions come from the
attention mask inside GroupQueryAttention). The prompt is
prefilled in one call; the cache then stays in ONNX Runtime's own OrtValues, bound as the next step's
inputs through IO binding, so no step copies it through numpy. n completions of one prompt share one
prefill: its cache is repeated n times once, then all n advance together as a batch. Prompts of different
lengths run as one batch too (`start_batch`), padded and masked so each row's logits are its prompt's
alone: optimum's graph is left-padded with per-row position ids, genai's right-padded (see there why).

llama.cpp: runtime/llamacpp.py's decode loop over llama-cpp-python's C API, one llama_decode per step for
all n sequences (identical prompts prefilled once). An f32 GGUF runs with an f32 KV cache (exact parity
with PyTorch); the others with llama.cpp's default f16 cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fabulist import artifacts
from fabulist.errors import FabulistError
from fabulist.runtime.llamacpp import LlamaCpp


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
        self.mask = np.zeros((0, 0), dtype=np.int64)  # (rows, tokens so far): 0 hides a pad slot
        self.next_position = np.zeros(0, dtype=np.int64)  # per row: its own count of real tokens

    def check_vocab(self, vocab: int) -> None:
        width = self.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != vocab:
            raise BackendError(f"the ONNX graph has {width} logits but config.json says vocab_size {vocab}")

    def _run(self, input_ids: np.ndarray, past: list, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """One forward pass: input_ids and positions (B, new), mask (B, past + new); the cache it
        returns stays in ONNX Runtime's OrtValues for the next call."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", input_ids)
        if "attention_mask" in self.inputs:
            binding.bind_cpu_input("attention_mask", mask)
        if "position_ids" in self.inputs:
            binding.bind_cpu_input("position_ids", positions)
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
        return self.start_batch([list(prompt_ids)] * n, new_tokens)

    def start_batch(self, prompts: list[list[int]], new_tokens: int) -> np.ndarray:
        """Prefill several prompts as one left-padded batch: a shorter prompt's row starts with pad slots
        that its attention mask hides, and its positions count from its own first token, so its logits
        equal the prompt's alone (within float tolerance: tests/runtime/test_batch.py). Each distinct
        prompt is prefilled once; rows that repeat one get copies of its cache.

        One padded call rather than one call per prompt and a left-padded merge of their caches: for 10
        fable-5m prompts of 7-24 tokens (int4, 1 thread, a busy machine, best of 15) the padded call took
        83 ms and the ten calls plus the merge 187 ms; the pad slots cost less than nine more runs."""
        unique = list(dict.fromkeys(tuple(p) for p in prompts))
        width = max(len(p) for p in unique)
        ids = np.zeros((len(unique), width), dtype=np.int64)
        mask = np.zeros((len(unique), width), dtype=np.int64)
        positions = np.ones((len(unique), width), dtype=np.int64)  # pad slots: any position, masked
        for r, p in enumerate(unique):
            ids[r, width - len(p) :], mask[r, width - len(p) :] = p, 1
            positions[r, width - len(p) :] = np.arange(len(p))
        empty = np.zeros((len(unique), self.kv_heads, 0, self.head_dim), dtype=self.dtype)
        logits = self._run(ids, [(empty, empty)] * self.layers, mask, positions)
        rows = [unique.index(tuple(p)) for p in prompts]
        if rows != list(range(len(unique))):  # share the prefill: copy each prompt's cache to its rows
            self.past = [(k.numpy()[rows], v.numpy()[rows]) for k, v in self.past]
            logits, mask = logits[rows], mask[rows]
        self.mask = mask
        self.next_position = np.array([len(p) for p in prompts], dtype=np.int64)
        return logits

    def advance(self, tokens: list[int]) -> np.ndarray:
        self.mask = np.concatenate([self.mask, np.ones((len(tokens), 1), dtype=np.int64)], axis=1)
        positions = self.next_position[:, None].copy()
        self.next_position += 1
        return self._run(np.array(tokens, dtype=np.int64)[:, None], self.past, self.mask, positions)


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
            genai_config = json.loads((folder / "genai_config.json").read_text())["model"]
            self.vocab = genai_config["vocab_size"]
            self.pad = genai_config.get("pad_token_id")  # genai's attention mask: 0 where a token is pad
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
        # get_logits hands back a fresh float32 (n, tokens, vocab) copy: its last position is a view, and
        # no astype is needed (the binding's type is float32 whatever the graph computes in)
        return self.gen.get_logits()[:, -1]

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

    def can_batch(self, prompts: list[list[int]], new_tokens: int) -> bool:
        """Whether `start_batch` can run these prompts as one batch: a ragged one needs a pad id that no
        prompt holds and the longest prompt plus new_tokens within the context (genai counts every row as
        long as the batch's longest, pads included, and refuses a max_length past the context)."""
        if len({tuple(p) for p in prompts}) == 1:
            return True
        widest = max(len(p) for p in prompts)
        fits = widest + new_tokens <= self.context
        return self.pad is not None and fits and not any(self.pad in p for p in prompts)

    def start_batch(self, prompts: list[list[int]], new_tokens: int) -> np.ndarray:
        """Prompts of different lengths as one batch (check `can_batch` first), RIGHT-padded with the pad id.
        genai's attention mask is 0 on pad tokens; GroupQueryAttention takes each row's length from it and
        writes the row's next key right after its own last token (over the pad slots), and genai returns
        each row's logits at its own last real token: each row's logits equal its prompt's alone
        (tests/runtime/test_batch.py). Left padding, genai's own habit, gives the shorter rows wrong logits
        on CPU (GroupQueryAttention reads a padded prompt as right-padded); prefilling all but each row's
        last token and feeding the last ones as one step matched at first, then let a row's logits drift by
        up to 0.1 with what its neighbours sampled (fable-5m int4), so neither is used."""
        if len({tuple(p) for p in prompts}) == 1:
            return self.start(prompts[0], len(prompts), new_tokens)
        widest = max(len(p) for p in prompts)
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=widest + new_tokens, batch_size=len(prompts), do_sample=False)
        self.gen = self.og.Generator(self.model, params)
        ids = np.full((len(prompts), widest), self.pad, dtype=np.int32)
        for r, p in enumerate(prompts):
            ids[r, : len(p)] = p
        self.gen.append_tokens(ids)
        self.forced = np.full((len(prompts), self.vocab), -np.inf, dtype=np.float32)
        return self._logits()

    def advance(self, tokens: list[int]) -> np.ndarray:
        forced, gen = self.forced, self.gen
        if len(tokens) == 1:  # one row, the usual case: scalar indexing, no index arrays to build
            forced[0, tokens[0]] = 0.0
            gen.set_logits(forced)
            gen.generate_next_token()
            forced[0, tokens[0]] = -np.inf
        else:
            rows = np.arange(len(tokens))
            forced[rows, tokens] = 0.0
            gen.set_logits(forced)
            gen.generate_next_token()
            forced[rows, tokens] = -np.inf
        return self._logits()


class LlamaCppBackend(LlamaCpp):
    """A GGUF through runtime/llamacpp.py's lean batched decode loop. An f32 GGUF keeps an f32 KV cache
    (exact parity with PyTorch); the others llama.cpp's default f16 cache."""

    def __init__(self, model_path: str | Path, context: int, threads: int | None = None):
        super().__init__(model_path, context, threads, exact_cache=artifacts.is_exact_gguf(model_path))


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
