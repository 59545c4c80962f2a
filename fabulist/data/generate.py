"""Run a teacher over a prompts file and append one fable per prompt, exactly once, resumably.

    fabulist data generate --prompts prompts.jsonl -o fables.jsonl [--teacher procedural|openai]

The output is append-only: records are flushed and fsynced as they are written (one at a time for a
network teacher, in small groups for the offline one). A rerun skips prompts already in the output; a
torn last line from a crash is cut off and that fable written again, never duplicated. Failed prompts
go to the errors file (`fables.errors.jsonl`) with the reason, and are retried by the next run.
Before anything is written: the output, prompts and errors files must be three different files, an
existing output (and errors file) must be one of ours, and no other run may hold the output's lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from fabulist import elements as el
from fabulist import locks
from fabulist.data.teachers.base import Budget, Teacher
from fabulist.records import AppendLog, RecordError, read_jsonl

PROMPT_REQUIRED = ("prompt_hash", "variant", "elements", "prompt")
FABLE_REQUIRED = ("prompt_hash", "fable")
ERROR_REQUIRED = ("prompt_hash", "error")


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


def default_errors_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".errors.jsonl")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links too); paths not there yet compare resolved."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_distinct(prompts: Path, out: Path, errors: Path) -> None:
    """Refuse to append fables or errors into the prompts, or errors into the fables."""
    pairs = [(out, prompts, "-o", "--prompts"), (errors, prompts, "--errors", "--prompts"),
             (errors, out, "--errors", "-o")]  # fmt: skip
    for a, b, name_a, name_b in pairs:
        if same_file(a, b):
            raise RecordError(
                f"{name_a} {a} is the same file as {name_b} {b}; give {name_a} a file of its own"
            )


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

    if limit is not None and limit < 1:  # 0 or less would still write one fable (see `pending`)
        raise RecordError(f"--limit must be at least 1, not {limit}")
    out_path = Path(out_path)
    errors_path = Path(errors_path) if errors_path else default_errors_path(out_path)
    check_distinct(Path(prompts_path), out_path, errors_path)
    budget = budget or Budget()
    prompts = load_prompts(prompts_path)
    summary = Summary(prompts=len(prompts))
    start = time.perf_counter()
    done: set[str] = set()
    with (
        locks.exclusive(out_path, "`fabulist data generate` run"),
        AppendLog(
            out_path, FABLE_REQUIRED, each=lambda r: done.add(r["prompt_hash"]), kind="fables file"
        ) as out,
        AppendLog(errors_path, ERROR_REQUIRED, kind="fabulist errors file", create=False) as errors,
    ):
        summary.repaired_bytes = out.repaired_bytes
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
