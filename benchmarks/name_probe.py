"""How likely a model is to follow "named"/"called" with a lower-case word where a name belongs.

    .venv/bin/python benchmarks/name_probe.py --valid out/default/split/valid.parquet MODEL [MODEL ...]

The quality bar's nameless-introduction check ("a goose named asked") fails about 3% of introductions in
fable-5m v2, against 0.5% in v1, and the teacher never writes "named" + a lower-case word. This measures the
cause directly, without sampling noise: over the first --fables validation fables (full header, PyTorch fp32),
at every "named"/"called" whose next token in the text starts a capitalised name, the probability the model
gives all tokens that do not start with a capital, at the quality bar's temperature (0.8). Printed per model
and word; --json writes the same.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def probe(model_dir: str, texts: list[str], temperature: float) -> dict[str, float]:
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    capital = np.array([tok.decode([i]).lstrip()[:1].isupper() for i in range(tok.get_vocab_size())])
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    context = model.config.max_position_embeddings
    mass: dict[str, list[float]] = {"named": [], "called": []}
    for text in texts:
        enc = tok.encode(text)
        ids = enc.ids[:context]
        spots = [(i, text[a:b].strip()) for i, (a, b) in enumerate(enc.offsets[: len(ids) - 1])
                 if text[a:b].strip() in mass and capital[ids[i + 1]]]  # fmt: skip
        if not spots:
            continue
        with torch.no_grad():
            p = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0] / temperature, -1).numpy()
        for i, word in spots:
            mass[word].append(float(p[i][~capital].sum()))
    return {w: float(np.mean(v)) for w, v in mass.items() if v} | {"positions": sum(map(len, mass.values()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model folders (fabulist train output)")
    ap.add_argument("--valid", required=True, help="a split's valid.parquet")
    ap.add_argument("--fables", type=int, default=300)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--json", help="write the results here")
    opts = ap.parse_args()

    import pyarrow.parquet as pq

    from fabulist import fable_format as ff

    rows = pq.read_table(opts.valid).slice(0, opts.fables).to_pylist()
    texts = [ff.training_text(r) for r in rows]
    out = {m: probe(m, texts, opts.temperature) for m in opts.models}
    print(f"{'model':<50}{'named':>9}{'called':>9}{'positions':>11}")
    for m, r in out.items():
        print(f"{m[-50:]:<50}{r.get('named', 0):>9.2%}{r.get('called', 0):>9.2%}{r['positions']:>11}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
