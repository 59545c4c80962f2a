"""Run a teacher over a prompts file and append one fable per prompt, exactly once, resumably.

    fabulist data generate --prompts prompts.jsonl -o fables.jsonl [--teacher procedural|openai]

The output is append-only: records are flushed and fsynced as they are written (one at a time for a
network teacher, in small groups for the offline one). A rerun skips prompts already in the output; a
torn last line from a crash is cut off and that fable written again, never duplicated. Failed prompts
go to the errors file (`fables.errors.jsonl`) with the reason, and are retried by the next run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from fabulist.data import elements as el
from fabulist.data.records import AppendLog, RecordError, read_jsonl
from fabulist.data.teachers.base import Budget, Teacher

PROMPT_REQUIRED = ("prompt_hash", "variant", "elements", "prompt")


@dataclass
class Summary:
    prompts: int = 0
    already_done: int = 0
    written: int = 0
    failed: int = 0
    retries: int = 0
    repaired_bytes: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    stopped_by_budget: bool = False

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def load_prompts(path: str | Path) -> list[dict]:
    """Read and check a prompts file; a bad line raises RecordError naming the file and line."""
    prompts = []
    for number, prompt in enumerate(read_jsonl(path, PROMPT_REQUIRED), 1):
        ids = prompt["elements"]
        if not isinstance(ids, dict) or set(ids) != set(el.KINDS):
            raise RecordError(f"{path}:{number}: 'elements' must name all of {', '.join(el.KINDS)}")
        for kind in el.KINDS:
            if ids[kind] not in el.index(kind):
                raise RecordError(f"{path}:{number}: unknown {kind} {ids[kind]!r}")
        prompts.append(prompt)
    if not prompts:
        raise RecordError(f"{path}: no prompts (make some with `fabulist data prompts`)")
    return prompts


def done_hashes(path: Path) -> set[str]:
    """prompt_hash of every record already in the output (which must be well-formed)."""
    if not path.exists():
        return set()
    return {r["prompt_hash"] for r in read_jsonl(path, ("prompt_hash", "fable"))}


def default_errors_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".errors.jsonl")


def pending(prompts: Iterable[dict], done: set[str], limit: int | None) -> list[dict]:
    """Prompts not yet written, each hash once, at most `limit` of them."""
    todo, seen = [], set(done)
    for prompt in prompts:
        if prompt["prompt_hash"] not in seen:
            seen.add(prompt["prompt_hash"])
            todo.append(prompt)
            if limit is not None and len(todo) >= limit:
                break
    return todo


def generate(
    prompts_path: str | Path,
    out_path: str | Path,
    teacher: Teacher,
    budget: Budget | None = None,
    errors_path: str | Path | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Summary:
    """Write a fable for every prompt not yet in `out_path`; return what happened."""
    from tqdm import tqdm

    out_path = Path(out_path)
    errors_path = Path(errors_path) if errors_path else default_errors_path(out_path)
    budget = budget or Budget()
    prompts = load_prompts(prompts_path)
    summary = Summary(prompts=len(prompts))
    start = time.perf_counter()
    with AppendLog(out_path) as out, AppendLog(errors_path) as errors:
        summary.repaired_bytes = out.repaired_bytes
        done = done_hashes(out_path)
        summary.already_done = len(done & {p["prompt_hash"] for p in prompts})
        todo = pending(prompts, done, limit)
        bar = tqdm(total=len(todo), unit="fable", disable=not progress, dynamic_ncols=True)
        buffer: list[dict] = []
        last_flush = time.perf_counter()
        try:
            for outcome in teacher.outcomes(todo, budget):
                summary.retries += outcome.attempts - 1
                if outcome.record is None:
                    summary.failed += 1
                    errors.append([_error_record(outcome, teacher.name)])
                else:
                    buffer.append(outcome.record)
                now = time.perf_counter()
                if len(buffer) >= teacher.flush_every or now - last_flush > 0.5:
                    summary.written += out.append(buffer)
                    bar.update(len(buffer))
                    buffer, last_flush = [], now
                    if budget.price_in or budget.price_out:
                        bar.set_postfix_str(f"${budget.cost:.4f}", refresh=False)
                if outcome.record is None:
                    bar.update(1)
        finally:
            summary.written += out.append(buffer)
            bar.update(len(buffer))
            bar.close()
    summary.input_tokens, summary.output_tokens = budget.input_tokens, budget.output_tokens
    summary.cost_usd = round(budget.cost, 6)
    summary.stopped_by_budget = budget.exhausted and summary.written + summary.failed < len(todo)
    summary.seconds = time.perf_counter() - start
    return summary


def _error_record(outcome, teacher_name: str) -> dict:
    return {
        "prompt_hash": outcome.prompt["prompt_hash"],
        "error": outcome.error,
        "attempts": outcome.attempts,
        "teacher": teacher_name,
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def summary_dict(summary: Summary) -> dict:
    return {**asdict(summary), "rate_per_s": round(summary.rate, 1), "seconds": round(summary.seconds, 3)}
