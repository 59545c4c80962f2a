"""Speculative decoding: a small draft model proposes k tokens, the target scores them in one call.

    fabulist generate --model runs/f15m --draft runs/f1m --temperature 0.8 --seed 1

The draft and the target must share the tokenizer. Each round the draft samples up to k tokens one by
one; the target scores all of them (and the token that follows) in one forward pass; the standard
acceptance rule (Leviathan et al. 2023, Chen et al. 2023) keeps drafted token t with probability
min(1, p(t) / q(t)) and at the first rejection draws from norm(max(0, p - q)); when all k are kept, one
more token comes from p. The output then has the target's distribution exactly, whatever the draft; with
greedy decoding (p and q all mass on their argmax) it is the target's own greedy text, token for token.
p and q are the distributions the plain sampler draws from (`sampling.probabilities`: temperature,
top-k, top-p, repetition penalty), so --draft changes speed only.

The crux is the KV cache: a model must take several tokens in one call and forget rejected ones. A
`Scorer` does both: `extend(tokens)` appends tokens to its cache and returns the logits after each one,
`truncate(length)` drops the cache past `length` tokens. ONNX (optimum's graph, a plain session with the
cache in numpy, cut by slicing) and llama.cpp (`logits_all`, and its own `n_tokens` rollback: the next
eval removes the cache cells past it) both can.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fabulist.runtime.backends import BackendError, read_config
from fabulist.runtime.sampling import SamplingParams, probabilities


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """One id from a normalised (V,) distribution by inverse CDF (one uniform draw)."""
    cumulative = np.cumsum(probs)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(probs) - 1))


def accept(p: np.ndarray, q: np.ndarray, drafted: list[int], rng: np.random.Generator) -> tuple[int, int]:
    """(tokens kept, the token that follows them): p (k+1, V) the target's distributions before each
    drafted token and after the last, q (k, V) the draft's the tokens were drawn from."""
    for i, tok in enumerate(drafted):
        if q[i, tok] > 0 and rng.random() * q[i, tok] < p[i, tok]:  # u < p/q without dividing by zero
            continue
        residual = np.maximum(p[i] - q[i], 0.0)
        return i, draw(residual if residual.sum() > 0 else p[i], rng)
    return len(drafted), draw(p[len(drafted)], rng)


class OnnxScorer:
    """An optimum-layout ONNX decoder whose cache lives in numpy, so it can be cut back."""

    def __init__(self, path: Path, config: dict, threads: int | None = None):
        import onnxruntime as ort

        from fabulist.ort_session import session_options

        try:
            options = session_options(threads)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types for a bad file
            raise BackendError(f"cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        layers = config["num_hidden_layers"]
        kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        past = next(i for i in self.session.get_inputs() if i.name == "past_key_values.0.key")
        dtype = np.float16 if "float16" in past.type else np.float32
        self.empty = np.zeros((1, kv_heads, 0, head_dim), dtype=dtype)
        self.names = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
        self.context = config["max_position_embeddings"]
        self.reset()

    def reset(self) -> None:
        self.cache = [self.empty] * len(self.names)
        self.length = 0

    def extend(self, tokens: list[int]) -> np.ndarray:
        """Logits (len(tokens), V) after each of the tokens, which join the cache."""
        n = len(tokens)
        feed = dict(zip(self.names, self.cache, strict=True))
        feed["input_ids"] = np.array([tokens], dtype=np.int64)
        if "attention_mask" in self.inputs:
            feed["attention_mask"] = np.ones((1, self.length + n), dtype=np.int64)
        if "position_ids" in self.inputs:
            feed["position_ids"] = np.arange(self.length, self.length + n, dtype=np.int64)[None, :]
        logits, *present = self.session.run(None, feed)
        self.cache, self.length = present, self.length + n
        return logits[0].astype(np.float32, copy=False)

    def truncate(self, length: int) -> None:
        self.cache = [np.ascontiguousarray(c[:, :, :length]) for c in self.cache]
        self.length = min(self.length, length)


class LlamaScorer:
    """A GGUF through llama-cpp-python with every position's logits kept, rolled back by `n_tokens`."""

    def __init__(self, path: Path, context: int, threads: int | None = None):
        import os

        import llama_cpp

        try:
            threads = threads or os.cpu_count()
            self.llm = llama_cpp.Llama(str(path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                                       verbose=False, logits_all=True, seed=0)  # fmt: skip
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load {path}: {exc}") from None
        self.context = context

    @property
    def length(self) -> int:
        return self.llm.n_tokens

    def reset(self) -> None:
        self.llm.reset()

    def extend(self, tokens: list[int]) -> np.ndarray:
        start = self.llm.n_tokens
        self.llm.eval(tokens)
        return np.array(self.llm.scores[start : start + len(tokens)], dtype=np.float32)

    def truncate(self, length: int) -> None:
        self.llm.n_tokens = min(self.llm.n_tokens, length)  # eval drops the cache cells past it


def load_scorer(model_dir: Path, fmt: str, quant: str | None, threads: int | None = None):
    """A scorer over the folder's artifact: optimum's ONNX graph (the cache must be cuttable) or a GGUF."""
    from fabulist.runtime.load import artifact

    config = read_config(Path(model_dir))
    if fmt == "gguf":
        return LlamaScorer(artifact(Path(model_dir), fmt, quant), config["max_position_embeddings"], threads)
    return OnnxScorer(artifact(Path(model_dir), fmt, quant, graph="optimum"), config, threads)


def speculate(target, draft, prompt_ids: list[int], params: SamplingParams, eos: int, k: int = 4,
              stats: dict | None = None, index: int = 0) -> list[int]:  # fmt: skip
    """New token ids (end of text not included) from `target`, drafted by `draft` k at a time; `index`:
    which completion of the seed this is (its random stream, as the Generator's n completions)."""
    if params.stop or params.min_new_tokens:
        raise BackendError("speculative decoding takes no stop strings or min_new_tokens; drop --draft")
    room = min(target.context, draft.context) - len(prompt_ids)
    limit = min(params.max_new_tokens, room)
    if limit < 1:
        raise BackendError(f"the prompt is {len(prompt_ids)} tokens; no room left in the context")
    rng = np.random.default_rng(None if params.seed is None else [params.seed, index])
    target.reset(), draft.reset()
    done, out, rounds, kept, drafted_total = list(prompt_ids), [], 0, 0, 0
    while len(out) < limit:
        budget = min(k, limit - len(out) - 1)  # the round adds up to budget + 1 tokens
        drafted, q = [], []
        logits = draft.extend(done[draft.length :])[-1] if budget else None
        for j in range(budget):
            q.append(probabilities(logits[None, :], params, [done + drafted])[0])
            drafted.append(draw(q[-1], rng))
            if drafted[-1] == eos or j == budget - 1:
                break
            logits = draft.extend(drafted[-1:])[-1]
        scored = target.extend(done[target.length :] + drafted)[-(len(drafted) + 1) :]
        p = np.stack(
            [probabilities(row[None, :], params, [done + drafted[:i]])[0] for i, row in enumerate(scored)]
        )
        n, nxt = accept(p, np.array(q) if q else p[:0], drafted, rng)
        new = [*drafted[:n], nxt]
        rounds, kept, drafted_total = rounds + 1, kept + n, drafted_total + len(drafted)
        if eos in new:
            out += new[: new.index(eos)]
            break
        out += new
        done += new
        target.truncate(len(done) - 1)  # the cache keeps what was kept; the new token is fed next round
        draft.truncate(min(draft.length, len(done) - 1))
    if stats is not None:
        stats.update(rounds=rounds, drafted=drafted_total, drafted_kept=kept, tokens=len(out[:limit]))
    return out[:limit]


def generate_drafted(gen, model_dir: Path, draft_dir: Path, fmt: str, quant: str | None, prompt: str,
                     params: SamplingParams, n: int = 1, threads: int | None = None,
                     k: int = 4) -> list:  # fmt: skip
    """n completions of `prompt` by the target in `model_dir` (whose Generator `gen` gives the tokenizer),
    drafted by the model in `draft_dir` (same format and quantization)."""
    from tokenizers import Tokenizer

    from fabulist.runtime.detok import StreamDecoder
    from fabulist.runtime.engine import Completion

    theirs = Path(draft_dir) / "tokenizer.json"
    if not theirs.is_file() or Tokenizer.from_file(str(theirs)).get_vocab() != gen.tok.get_vocab():
        raise BackendError(
            f"{draft_dir} does not share the target's tokenizer; a draft must use the same one"
        )
    target = load_scorer(model_dir, fmt, quant, threads)
    draft = load_scorer(draft_dir, fmt, quant, threads)
    ids, out = gen.encode(prompt), []
    for i in range(n):
        stats, start = {}, time.perf_counter()
        tokens = speculate(target, draft, ids, params, gen.eos, k, stats, index=i)
        seconds = time.perf_counter() - start
        decoder = StreamDecoder(gen.tok, gen.specials)
        text = "".join(decoder.push(t) for t in tokens) + decoder.flush()
        reason = "length" if len(tokens) >= params.max_new_tokens else "eos"
        stats.update(tokens_per_s=round(len(tokens) / seconds, 1), new_tokens=len(tokens), load_s=0.0,
                     ttft_s=0.0, prompt_tokens=len(ids))  # fmt: skip
        out.append(Completion(text, tokens, reason, None, stats))
    return out
