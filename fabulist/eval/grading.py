"""Judge every completion of an evaluation run, through the cache, and write the judgments.

    fabulist eval judge runs/eval/int4 [--judge-model gpt-4.1] [--judge-base-url URL] [--concurrency 4]

Reads `RUN/completions.jsonl`; writes `RUN/judgments.jsonl` (one line per completion: its grade, or the
error that made it a judge failure) and `RUN/judge.json` (judge, prompt version, requests, cache hits,
failures, the tokens and cost of this run's requests, and the tokens the cached grades once cost).
Grades come from the SQLite cache (`RUN/judge-cache.sqlite` by default) when they are there; only the
rest are requested, and each is cached as it arrives.
"""

from __future__ import annotations

import json
from pathlib import Path

from fabulist.data.teachers.base import Budget, load_prices, price_for
from fabulist.errors import FabulistError
from fabulist.eval import cache as gc
from fabulist.eval import evalset
from fabulist.eval import judge as jd
from fabulist.eval.generate import load_completions
from fabulist.records import dumps, read_json, read_jsonl, write_atomic

JUDGMENTS = "judgments.jsonl"
SUMMARY = "judge.json"


def items(run_dir: str | Path, judge: jd.Judge, prompts_file: str | None = None) -> list[dict]:
    """One judge item per completion, with its cache key."""
    by_id = {p.id: p for p in evalset.load(prompts_file)}
    out = []
    for c in load_completions(run_dir):
        p = by_id[c["prompt_id"]]
        task, story = p.task, p.story(c["text"])
        key = gc.key(model=judge.model, base_url=judge.base_url, version=jd.spec()["version"],
                     params=judge.params, task=task, story=story)  # fmt: skip
        out.append({"prompt_id": p.id, "sample": c["sample"], "task": task, "story": story, "key": key})
    return out


class GradingError(FabulistError):
    """A judge run that graded nothing: every request failed."""


def run(run_dir: str | Path, judge: jd.Judge, cache_path: str | Path | None = None,
        prices: str | None = None, prompts_file: str | None = None) -> dict:  # fmt: skip
    """Grade what the cache lacks; write the judgments and the summary; return the summary."""
    run_dir = Path(run_dir)
    todo, rows, hits = [], {}, 0
    price = price_for(judge.model, load_prices(prices)) or (0.0, 0.0)
    budget = Budget(*price)
    requests = failures = 0
    cached = [0, 0]  # tokens the cached grades once cost
    with gc.GradeCache(cache_path or run_dir / "judge-cache.sqlite") as store:
        for item in items(run_dir, judge, prompts_file):
            got = store.get(item["key"])
            if got is None:
                todo.append(item)
            else:
                hits += 1
                cached[0] += got["input_tokens"]
                cached[1] += got["output_tokens"]
                rows[item["key"]] = _row(item, got["grade"], None)
        for outcome in judge.outcomes(todo, budget):
            requests += outcome.attempts
            item = outcome.prompt
            if outcome.record is None:
                failures += 1
                rows[item["key"]] = _row(item, None, outcome.error)
                continue
            r = outcome.record
            store.put(item["key"], r["grade"], r["input_tokens"], r["output_tokens"])
            rows[item["key"]] = _row(item, r["grade"], None)
    ordered = sorted(rows.values(), key=lambda r: (r["prompt_id"], r["sample"]))
    write_atomic(run_dir / JUDGMENTS, "".join(dumps(r) + "\n" for r in ordered))
    summary = {"judge_model": judge.model, "base_url": judge.base_url, "prompt_version": jd.spec()["version"],
               "params": judge.params, "structured_output": jd.MODES[judge.mode], "completions": len(rows),
               "graded": len(rows) - failures, "failures": failures, "cache_hits": hits, "requests": requests,
               "input_tokens": budget.input_tokens, "output_tokens": budget.output_tokens,
               "cost_usd": round(budget.cost, 6), "price_known": price != (0.0, 0.0),
               "cached_input_tokens": cached[0], "cached_output_tokens": cached[1]}  # fmt: skip
    write_atomic(run_dir / SUMMARY, json.dumps(summary, indent=1))
    return summary


def _row(item: dict, grade: dict | None, error: str | None) -> dict:
    return {"prompt_id": item["prompt_id"], "sample": item["sample"], "grade": grade, "error": error}


def load(run_dir: str | Path) -> tuple[list[dict], dict] | None:
    """(judgments, summary) of a judged run, or None when it was never judged."""
    run_dir = Path(run_dir)
    if not (run_dir / JUDGMENTS).exists():
        return None
    return list(read_jsonl(run_dir / JUDGMENTS)), read_json(run_dir / SUMMARY)
