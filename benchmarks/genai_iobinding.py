"""Prototype measurement: onnxruntime-genai's builder graph run by plain onnxruntime with IO binding, against
onnxruntime-genai's own greedy loop and the GenaiBackend's round trip (set_logits / generate_next_token /
get_logits), on one model, interleaved.

    python -m fabulist.bench.genai_iobinding runtime/models/fable-5m --threads 1 --repeats 9

The question it answers: is the genai round trip the floor of our runtime's per-token cost on that graph?
`SharedKVDecoder` keeps one preallocated KV buffer per layer that the graph's past inputs and present
outputs are both bound to (GroupQueryAttention's past_present_share_buffer, as genai itself runs it), binds
the token and the logits to numpy buffers once, and per step writes the token, rebinds the attention mask
(a view of one preallocated row of ones) and runs: no copy of the cache or the logits. Batch 1 only: a
measurement, not a backend. Each loop decodes 128 greedy tokens after a 64-token prompt with end-of-text
held back (as the suite's min_new_tokens does) and all three must decode the same tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

PROMPT, NEW = 64, 129


class SharedKVDecoder:
    """The builder graph on an onnxruntime session: past and present bound to the same buffers."""

    def __init__(self, folder: Path, threads: int):
        import onnxruntime as ort

        from fabulist.ort_session import session_options

        self.ort = ort
        model = json.loads((folder / "genai_config.json").read_text())["model"]
        decoder = model["decoder"]
        self.layers, self.vocab = decoder["num_hidden_layers"], model["vocab_size"]
        self.kv_shape = (decoder["num_key_value_heads"], decoder["head_size"])
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), session_options(threads), providers=["CPUExecutionProvider"]
        )

    def start(self, prompt: list[int], total: int) -> np.ndarray:
        ort, heads, size = self.ort, *self.kv_shape
        self.cache = [
            ort.OrtValue.ortvalue_from_numpy(np.zeros((1, heads, total, size), np.float32))
            for _ in range(2 * self.layers)
        ]
        b = self.binding = self.session.io_binding()
        for i in range(self.layers):
            for j, kind in enumerate(("key", "value")):
                b.bind_ortvalue_input(f"past_key_values.{i}.{kind}", self.cache[2 * i + j])
                b.bind_ortvalue_output(f"present.{i}.{kind}", self.cache[2 * i + j])
        self.ones = np.ones((1, total), np.int64)
        b.bind_cpu_input("input_ids", np.array([prompt], np.int64))
        b.bind_cpu_input("attention_mask", self.ones[:, : len(prompt)])
        b.bind_output("logits")
        self.session.run_with_iobinding(b)
        first = b.get_outputs()[-1].numpy()[:, -1]  # the outputs come back in binding order
        self.token, self.logits = np.zeros((1, 1), np.int64), np.empty((1, 1, self.vocab), np.float32)
        self.bound = [ort.OrtValue.ortvalue_from_numpy(a) for a in (self.token, self.logits)]
        b.bind_ortvalue_input("input_ids", self.bound[0])
        b.bind_ortvalue_output("logits", self.bound[1])
        self.length = len(prompt)
        return first

    def advance(self, token: int) -> np.ndarray:
        self.token[0, 0] = token
        self.length += 1
        self.binding.bind_cpu_input("attention_mask", self.ones[:, : self.length])
        self.session.run_with_iobinding(self.binding)
        return self.logits[:, -1]


def pick(row: np.ndarray, eos: int) -> int:
    held = row.copy()
    held[eos] = -np.inf
    return int(held.argmax())


def loops(folder: Path, threads: int, ids: list[int]) -> dict:
    """name -> a loop that returns (process CPU seconds, wall seconds, tokens) of NEW - 1 decode steps."""
    import onnxruntime_genai as og

    cfg = og.Config(str(folder))
    cfg.clear_providers()
    options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    cfg.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(cfg)
    eos, total = 0, len(ids) + NEW  # the fable models' end-of-text id
    vocab = json.loads((folder / "genai_config.json").read_text())["model"]["vocab_size"]
    shared = SharedKVDecoder(folder, threads)

    def own():
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=total, min_length=total)
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        out, c, w = [], time.process_time(), time.perf_counter()
        while not gen.is_done():
            gen.generate_next_token()
            out.append(int(gen.get_next_tokens()[0]))
        return time.process_time() - c, time.perf_counter() - w, out

    def round_trip():
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=total, batch_size=1)
        gen = og.Generator(model, params)
        gen.append_tokens(np.array([ids], np.int32))
        forced = np.full((1, vocab), -np.inf, np.float32)
        out = [pick(gen.get_logits()[0, -1], eos)]
        c, w = time.process_time(), time.perf_counter()
        for _ in range(NEW - 1):
            forced[0, out[-1]] = 0.0
            gen.set_logits(forced)
            gen.generate_next_token()
            forced[0, out[-1]] = -np.inf
            out.append(pick(gen.get_logits()[0, -1], eos))
        return time.process_time() - c, time.perf_counter() - w, out

    def iobinding():
        out = [pick(shared.start(ids, total)[0], eos)]
        c, w = time.process_time(), time.perf_counter()
        for _ in range(NEW - 1):
            out.append(pick(shared.advance(out[-1])[0], eos))
        return time.process_time() - c, time.perf_counter() - w, out

    return {"genai own loop": own, "genai round trip (ours)": round_trip, "ort io binding": iobinding}


def main(argv: list[str] | None = None) -> None:
    from fabulist.bench.worker import prompt_ids

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    ids = prompt_ids(args.model_dir, PROMPT)
    runs = loops(args.model_dir / "onnx-genai" / "int4", args.threads, ids)
    best = {k: [math.inf, math.inf] for k in runs}
    tokens = {}
    for r in range(args.repeats):
        for name in list(runs)[r % 3 :] + list(runs)[: r % 3]:
            cpu, wall, tokens[name] = runs[name]()
            best[name] = [min(best[name][0], cpu), min(best[name][1], wall)]
    runs.clear()  # free genai's model now: at interpreter exit it reports it as leaked
    same = len({tuple(t) for t in tokens.values()}) == 1
    print(f"{args.model_dir}, {args.threads} thread(s), best of {args.repeats}; same tokens: {same}")
    for name, (cpu, wall) in best.items():
        print(f"  {name:26s} {1000 * wall / (NEW - 1):.3f} ms/token wall, {1000 * cpu / (NEW - 1):.3f} CPU")


if __name__ == "__main__":
    main()
