"""`fabulist ladder run`: prepare the shared data and tokenizer, run every rung, write the report.

    fabulist ladder run default --data split/train.parquet --valid split/valid.parquet --out runs/ladder

OUT/data/ holds what every rung trains on: the training fables (the first ones of --data that hold the
largest token budget plus 10% when train_fables is "auto", so no rung sees a fable twice and nobody
tokenizes 100k fables per rung), the first valid_fables validation fables, and one tokenizer trained on
(up to 20,000 of) those training fables. data.json records the sources' sha256: a rerun with other data
in the same OUT is refused. OUT/rungs/NAME/ is each rung (see rung.py); OUT/ladder.json, ladder.md and
the plots are the report (see report.py), rewritten at the end of every run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from fabulist.ladder import rung as rg
from fabulist.ladder.config import LadderConfig, LadderError
from fabulist.records import dumps, file_sha256, write_atomic

TOKENIZER_FABLES = 20_000
SAMPLE = 500  # fables whose token count estimates tokens per fable


def _subset_size(cfg: LadderConfig, tok, docs: list[str]) -> int:
    """How many training fables the ladder keeps (see the module doc)."""
    if cfg.train_fables == "all":
        return len(docs)
    if isinstance(cfg.train_fables, int):
        return min(cfg.train_fables, len(docs))
    sample = docs[:SAMPLE]
    per_doc = sum(len(e.ids) for e in tok.encode_batch(sample, add_special_tokens=False)) / len(sample)
    wanted = max(r.tokens for r in cfg.rungs) * (cfg.context + 1) / cfg.context
    return min(len(docs), math.ceil(1.1 * wanted / per_doc) + cfg.batch_size)


def prepare_data(cfg: LadderConfig, data: Path, valid: Path, out: Path) -> rg.Data:
    """The shared training/validation subsets and tokenizer in OUT/data (made once, then checked)."""
    from fabulist.train import data as td
    from fabulist.train import tokenizer as tk

    folder = out / "data"
    paths = rg.Data(folder / "train.jsonl", folder / "valid.jsonl", folder / "tokenizer" / "tokenizer.json")
    for path, flag in ((data, "--data"), (valid, "--valid")):
        if not path.is_file():
            raise LadderError(f"{flag} {path}: file not found")
    source = {"data_sha256": file_sha256(data), "valid_sha256": file_sha256(valid),
              "vocab_size": cfg.vocab_size, "train_fables": cfg.train_fables,
              "valid_fables": cfg.valid_fables,
              "largest_budget": max(r.tokens for r in cfg.rungs)}  # fmt: skip
    manifest = folder / "data.json"
    if manifest.exists():
        before = json.loads(manifest.read_text())
        if {k: before.get(k) for k in source} != source:
            changed = ", ".join(k for k in source if before.get(k) != source[k])
            raise LadderError(f"{out} was made from other data or data settings ({changed}); use a new --out")
        return paths
    rg.log(f"reading {data}")
    records = td.read_records(data)
    docs = td.documents(records)
    rg.log(f"training a {cfg.vocab_size}-token tokenizer on {min(len(docs), TOKENIZER_FABLES):,} fables")
    tok = tk.train_tokenizer(docs[:TOKENIZER_FABLES], cfg.vocab_size)
    keep = _subset_size(cfg, tok, docs)
    valid_records = td.read_records(valid)[: cfg.valid_fables]
    write_atomic(paths.train, "".join(dumps(r) + "\n" for r in records[:keep]))
    write_atomic(paths.valid, "".join(dumps(r) + "\n" for r in valid_records))
    tk.save(tok, paths.tokenizer.parent, cfg.context)
    counts = {
        "train_records": keep,
        "train_source_records": len(records),
        "valid_records": len(valid_records),
    }
    write_atomic(manifest, json.dumps({**source, "data": str(data), "valid": str(valid), **counts}, indent=1))
    rg.log(f"kept {keep:,} of {len(records):,} training fables and {len(valid_records):,} validation fables")
    return paths


def run_ladder(cfg: LadderConfig, data: str | Path, valid: str | Path, out: str | Path,
               judge: dict | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Run (or finish) every rung and write the report; returns the report (ladder.json's content)."""
    from fabulist.ladder import report

    out = Path(out)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.json", json.dumps(cfg.raw, indent=1))
    paths = prepare_data(cfg, Path(data), Path(valid), out)
    rows = []
    for i, rung in enumerate(cfg.rungs, 1):
        steps = cfg.steps(rung)
        rg.log(f"({i}/{len(cfg.rungs)}) {rung.name}: {rung.family}, {rung.parameters(cfg.vocab_size):,} "
               f"parameters, {steps} steps ({steps * cfg.batch_size * cfg.context:,} tokens)")  # fmt: skip
        row = rg.run_rung(cfg, rung, paths, out / "rungs" / rung.name, judge, progress)
        rg.log(f"{rung.name}: {_summary(row)}")
        rows.append(row)
    return report.write(cfg, rows, out, seconds=time.perf_counter() - start)


def _summary(row: dict) -> str:
    speed = row["speed"].get("tg128_tok_s")
    return (f"valid loss {row['valid_loss']:.3f}, quality {row['quality']['quality_score']:.1%}, "
            f"{'-' if speed is None else f'{speed:,.0f}'} tok/s; "
            + ", ".join(f"{k} {v}" for k, v in row["actions"].items()))  # fmt: skip
