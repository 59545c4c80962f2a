"""One row of the benchmark matrix, measured in its own process so that its peak RSS is its own.

    python -m fabulist.bench.worker '{"model_dir": "runs/f5m", "engine": "ours",
        "artifact": "onnx-genai/int4/model.onnx", "threads": 2, "repeats": 3, "contexts": [64, 512]}'

Prints one JSON line. Batch 1, greedy, end-of-text suppressed; prompts are held-out fables in the training
format cut to the needed length (the same token ids for every engine); for a model that is not a fable
model (a SmolLM2, a Qwen, a Gemma), their story text only, as a plain prompt with the model's own BOS.
After one warm-up, llama-bench style:
- load_s: loading the artifact; ttft_s: a 64-token prompt to the first new token;
- pp128/pp512 (prefill tok/s): N prompt tokens / time to the first token after them;
- tg128 (decode tok/s): 128 tokens after the 64-token prompt / (time to 129 new tokens - ttft);
- peak_rss_mb: the process's peak RSS (VmHWM) after the above (before the context sweep);
- kv_tokens: the KV cache length held at that point: the whole context for llama.cpp (allocated at
  load), the longest request so far (prompt + new tokens) for the others (grown, or sized per request);
- decode_ms_by_context: ms per decoded token after a prompt of each length in `contexts`.
Each timing is repeated `repeats` times; the median is reported and [min, max] under `spread`.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
from pathlib import Path

from fabulist import artifacts

TTFT_PROMPT, TG, PP, SWEEP_DECODE = 64, 128, (128, 512), 32


def prompt_ids(model_dir: Path, n: int) -> list[int]:
    """n token ids of held-out training-format fables (cycled when the texts run out)."""
    from tokenizers import Tokenizer

    from fabulist.export.validate import heldout_texts
    from fabulist.runtime.plain import PlainFormat, is_fable_tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    if not is_fable_tokenizer(tok):
        return plain_prompt_ids(tok, PlainFormat.from_folder(model_dir, tok), heldout_texts(8 + n // 64), n)
    ids: list[int] = []
    for text in heldout_texts(8 + n // 64):
        ids += tok.encode(text, add_special_tokens=False).ids
        if len(ids) >= n:
            break
    return (ids * (n // max(len(ids), 1) + 1))[:n]


def plain_prompt_ids(tok, plain, fables: list[str], n: int) -> list[int]:
    """n token ids of the fables' stories as plain text (no format header, no special tokens), the
    model's BOS first when it adds one; the text is cycled, the BOS is not repeated."""
    from fabulist import fable_format as ff

    stories = [t.partition(ff.STORY)[2].replace(ff.EOS, "").strip() for t in fables]
    ids = plain.encode(tok, "\n\n".join(stories))
    head = ids[:1] if plain.bos_id is not None and ids[:1] == [plain.bos_id] else []
    body = ids[len(head) :] or [0]
    return (head + body * ((n - len(head)) // len(body) + 1))[:n]


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a
    worker started by a large driver would report the driver's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(values: list[float]) -> tuple[float, list[float]]:
    return statistics.median(values), [min(values), max(values)]


def repeat(run, ids: list[int], n: int, repeats: int) -> tuple[list[float], list[float]]:
    """(ttfts, decode seconds) of `repeats` runs of n new tokens after ids."""
    runs = [run(ids, n) for _ in range(repeats)]
    return [r[0] for r in runs], [r[1] for r in runs]


def measure(spec: dict) -> dict:
    from fabulist.bench.engines import ENGINES

    model_dir, repeats = Path(spec["model_dir"]), spec.get("repeats", 3)
    context = json.loads((model_dir / "config.json").read_text())["max_position_embeddings"]
    longest = max([TTFT_PROMPT + TG + 1, *PP, *spec.get("contexts", [])])
    ids = prompt_ids(model_dir, min(longest, context))
    load, run = ENGINES[spec["engine"]](model_dir, spec["artifact"], spec["threads"])
    run(ids[:TTFT_PROMPT], 8)  # warm-up
    result, spread = {"load_s": load}, {}
    ttfts, decodes = repeat(run, ids[:TTFT_PROMPT], 1 + TG, repeats)
    reached = TTFT_PROMPT + 1 + TG  # the longest request so far (prompt + new tokens)
    result["ttft_s"], spread["ttft_s"] = summary(ttfts)
    result[f"tg{TG}_tok_s"], spread[f"tg{TG}_tok_s"] = summary([TG / max(d, 1e-9) for d in decodes])
    for n in PP:
        if n + 2 <= context:
            firsts, _ = repeat(run, ids[:n], 2, repeats)
            reached = max(reached, n + 2)
            result[f"pp{n}_tok_s"], spread[f"pp{n}_tok_s"] = summary([n / t for t in firsts])
    result["peak_rss_mb"] = peak_rss_mb()
    kind = artifacts.identify(spec["artifact"])  # None: the PyTorch row's weights
    result["kv_tokens"] = context if kind is not None and kind.format == "gguf" else min(reached, context)
    sweep = {}
    for c in spec.get("contexts", []):
        if c + 1 + SWEEP_DECODE <= context:
            _, decodes = repeat(run, ids[:c], 1 + SWEEP_DECODE, repeats)
            sweep[str(c)] = 1000 * statistics.median(decodes) / SWEEP_DECODE
    if sweep:
        result["decode_ms_by_context"] = sweep
    return {**result, "spread": spread, "repeats": repeats}


def main() -> None:
    print(json.dumps(measure(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
