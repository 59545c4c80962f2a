"""A lean llama.cpp decode loop over llama-cpp-python's C API: one `llama_decode` per step for a whole batch.

    from fabulist.runtime.llamacpp import LlamaCpp
    llm = LlamaCpp("runs/f5m/gguf/model-q4_k_m.gguf", context=512, threads=2)
    logits = llm.start_batch([[1, 5, 9], [1, 7]], new_tokens=64)  # (2, vocab): prefill each prompt
    logits = llm.advance([12, 40])                                  # (2, vocab): one token per row

Why not llama-cpp-python's `Llama.eval`: per token it trims the cache, refills its batch token by token in
Python, records the token in its own history and reads the logits back through more ctypes calls, and it
holds one sequence. Here the batch's token and position arrays are numpy views on llama.cpp's own batch
buffers, so a step is one slice assignment, one `llama_decode` and a numpy view on llama.cpp's logits
(valid until the next call: read or copy it before calling again).

Each row of a batch is its own sequence (seq_id = row index), with its own KV stream (`kv_unified` off: a
row attends to its own cells, not to every row's). Rows with the same prompt share one prefill: the
first row decodes it and `llama_memory_seq_cp` copies its cache to the others. The context (KV cache) is
made for one sequence at load and made again, for more, when a larger batch arrives; the weights stay.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

import numpy as np

PREFILL_CHUNK = 512  # prompt tokens per llama_decode: llama-cpp-python's default n_batch
_backend_ready = False


def _error(message: str) -> Exception:
    from fabulist.runtime.backends import BackendError  # backends imports this module: import here

    return BackendError(message)


def _lib():
    """llama_cpp, with its log callback quiet below errors (what `Llama(verbose=False)` sets) and the
    ggml backend initialised once per process."""
    global _backend_ready
    import llama_cpp
    from llama_cpp import _logger

    _logger.set_verbose(False)
    if not _backend_ready:
        llama_cpp.llama_backend_init()
        _backend_ready = True
    return llama_cpp


class LlamaCpp:
    """A GGUF model and one llama.cpp context; `start_batch` / `start` prefill, `advance` decodes a step."""

    batched = True

    def __init__(self, model_path: str | Path, context: int, threads: int | None = None, exact_cache=False):
        """exact_cache: keep the KV cache in f32 (llama.cpp's default is f16), for exact parity."""
        from llama_cpp._utils import suppress_stdout_stderr

        lib = _lib()
        path = Path(model_path)
        if not path.is_file():
            raise _error(f"{path}: file not found")
        params = lib.llama_model_default_params()
        params.n_gpu_layers, params.load_mode = 0, lib.LLAMA_LOAD_MODE_MMAP  # as Llama() loads it
        with suppress_stdout_stderr():  # a bad file makes llama.cpp print its loader's error lines
            self.model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise _error(f"cannot load {path}: llama.cpp cannot read it as a GGUF model")
        self.lib, self.path, self.context = lib, path, context
        self.threads = threads or os.cpu_count()  # llama-cpp-python's own default is half the cores
        self.exact_cache = exact_cache
        self.vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model))
        self.kv_bytes = self._kv_bytes()  # for the generator's memory check before a batch
        self.max_seqs = lib.llama_max_parallel_sequences()
        self.ctx = self.batch = None
        self.seqs = self.rows = self.longest = 0
        self._view: tuple[int, int, np.ndarray] | None = None  # (address, rows, logits view)
        self._make_context(1)

    def _kv_bytes(self) -> int:
        """Bytes of KV cache one token of one sequence holds (all layers' keys and values, as f32): the
        head size from the GGUF's `<arch>.attention.key_length` where it has one (Qwen3, Gemma: not
        hidden / heads)."""
        m, lib = self.model, self.lib
        key_length = self._meta(f"{self._meta('general.architecture')}.attention.key_length")
        head_dim = int(key_length) if key_length else lib.llama_model_n_embd(m) // lib.llama_model_n_head(m)
        return 2 * lib.llama_model_n_layer(m) * lib.llama_model_n_head_kv(m) * head_dim * 4

    def _meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None when the file has no such key."""
        buf = ctypes.create_string_buffer(256)
        if self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf)) < 0:
            return None
        return buf.value.decode()

    def check_vocab(self, vocab: int) -> None:
        if self.vocab != vocab:
            raise _error(f"the GGUF has {self.vocab} tokens but config.json says vocab_size {vocab}")

    def _make_context(self, seqs: int) -> None:
        """A context whose KV cache holds `seqs` sequences of `context` tokens each, and its batch."""
        from llama_cpp._utils import suppress_stdout_stderr

        lib = self.lib
        self._free_context()
        p = lib.llama_context_default_params()
        p.n_ctx = self.context * seqs
        p.n_batch = p.n_ubatch = min(p.n_ctx, max(PREFILL_CHUNK, seqs))
        p.n_seq_max, p.kv_unified = seqs, False
        p.n_threads = p.n_threads_batch = self.threads
        p.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as Llama(flash_attn=False): same numbers
        p.no_perf = True
        if self.exact_cache:
            p.type_k = p.type_v = lib.GGML_TYPE_F32
        with suppress_stdout_stderr():  # its warnings (a context padded past the trained one) are noise here
            with_ctx = lib.llama_init_from_model(self.model, p)
        if not with_ctx:
            raise _error(f"cannot make a llama.cpp context of {p.n_ctx} tokens for {self.path}")
        self.ctx, self.seqs = with_ctx, seqs
        self.memory = lib.llama_get_memory(with_ctx)
        self.per_seq = min(self.context, lib.llama_n_ctx_seq(with_ctx))
        size = p.n_batch
        self.batch = lib.llama_batch_init(size, 0, 1)
        as_array = np.ctypeslib.as_array
        self._token = as_array(self.batch.token, shape=(size,))
        self._pos = as_array(self.batch.pos, shape=(size,))
        self._wants = as_array(self.batch.logits, shape=(size,))  # 1: return this token's logits
        as_array(self.batch.n_seq_id, shape=(size,))[:] = 1
        self._seq = [self.batch.seq_id[i] for i in range(size)]  # each token's (one) sequence id
        self._view = None

    def _decode(self, n: int) -> None:
        self.batch.n_tokens = n
        code = self.lib.llama_decode(self.ctx, self.batch)
        if code != 0:
            raise _error(f"llama_decode failed (code {code}) on {n} token(s) of {self.path.name}")

    def can_batch(self, prompts: list[list[int]], new_tokens: int) -> bool:
        """Whether `start_batch` takes these prompts as one batch: llama.cpp holds at most
        `max_seqs` (256) sequences in one context; each row has its own cells, so lengths may differ."""
        return len(prompts) <= self.max_seqs

    def start_batch(self, prompts: list[list[int]], new_tokens: int) -> np.ndarray:
        """Prefill each prompt as its own sequence (identical prompts once); next-token logits (B, vocab).
        new_tokens is what the caller may ask to follow; the KV cache holds the model's whole context."""
        if self.model is None:
            raise _error("the llama.cpp backend is closed")
        n = len(prompts)
        if not 1 <= n <= self.max_seqs:
            raise _error(f"llama.cpp decodes 1 to {self.max_seqs} sequences at once, not {n}; ask for fewer")
        longest = max(len(p) for p in prompts)
        if min(len(p) for p in prompts) < 1 or longest > self.context:
            raise _error(f"prompts must hold 1 to {self.context} tokens (the model's context), not {longest}")
        if n > self.seqs:
            self._make_context(n)
        else:
            self.lib.llama_memory_clear(self.memory, True)
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, prompt in enumerate(prompts):
            groups.setdefault(tuple(prompt), []).append(row)
        logits = np.empty((n, self.vocab), dtype=np.float32)
        for prompt, rows in groups.items():
            logits[rows] = self._prefill(list(prompt), rows[0])
            for row in rows[1:]:  # the same prompt: copy the first row's cache (done at the next decode)
                self.lib.llama_memory_seq_cp(self.memory, rows[0], row, -1, -1)
        for row in range(n):  # from here on, batch slot i is row i's one new token
            self._seq[row][0] = row
        self._wants[:n] = 1
        self._pos[:n] = [len(p) for p in prompts]
        self.rows, self.longest, self._view = n, longest, None
        return logits

    def _prefill(self, prompt: list[int], seq: int) -> np.ndarray:
        """Decode one prompt into sequence `seq` in chunks; the logits after its last token (a copy)."""
        chunk = len(self._token)
        for at in range(0, len(prompt), chunk):
            part = prompt[at : at + chunk]
            self._token[: len(part)] = part
            self._pos[: len(part)] = np.arange(at, at + len(part))
            self._wants[: len(part)] = 0
            self._wants[len(part) - 1] = at + len(part) == len(prompt)
            for i in range(len(part)):
                self._seq[i][0] = seq
            self._decode(len(part))
        row = self.lib.llama_get_logits_ith(self.ctx, len(part) - 1)
        return np.ctypeslib.as_array(row, shape=(self.vocab,)).copy()

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray:
        """n sequences continuing the same prompt: one prefill, its cache copied to the other n - 1."""
        return self.start_batch([prompt_ids] * n, new_tokens)

    def advance(self, tokens: list[int]) -> np.ndarray:
        """One token per row, one llama_decode for all; (B, vocab) logits, a view valid until the next
        call."""
        n = self.rows
        if self.ctx is None:
            raise _error("the llama.cpp backend is closed")
        if self.longest >= self.per_seq:
            raise _error(f"the model's context of {self.per_seq} tokens is full; ask for fewer new tokens")
        self._token[:n] = tokens
        self._decode(n)
        self._pos[:n] += 1
        self.longest += 1
        address = ctypes.cast(self.lib.llama_get_logits(self.ctx), ctypes.c_void_p).value
        if self._view is None or self._view[0] != address:  # llama.cpp reallocates its output buffer
            floats = (ctypes.c_float * (n * self.vocab)).from_address(address)
            self._view = (address, n, np.frombuffer(floats, dtype=np.float32).reshape(n, self.vocab))
        return self._view[2]

    def _free_context(self) -> None:
        if self.batch is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        self._view = None

    def close(self) -> None:
        """Free the context, its batch and the model now (a second call does nothing)."""
        if getattr(self, "model", None) is None:
            return
        self._free_context()
        self.lib.llama_model_free(self.model)
        self.model = None

    def __del__(self):
        with contextlib.suppress(Exception):  # at interpreter exit llama_cpp may already be gone
            self.close()
