"""The judge's cache: one SQLite row per graded (judge, prompt, completion), so a rerun costs nothing.

    fabulist eval judge runs/eval/int4 --judge-model gpt-4.1     # a second run sends no request

The key is a hash of the judge model, base URL, judge-prompt version, request parameters, the task and
the completion. Only parsed grades are stored (failures are asked again next time), with the API key
scrubbed from them. Each grade is committed as it arrives, so an interrupted run resumes where it
stopped. Used from one thread, by one process at a time (a second gets one line naming the holder).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from fabulist import locks
from fabulist.errors import FabulistError
from fabulist.records import scrub


def key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CacheError(FabulistError):
    """A --judge-cache path that is not a judge cache."""


class GradeCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise CacheError(f"{self.path} is not a regular file; give --judge-cache a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = locks.exclusive(self.path, "judge run using this cache")
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS grades (key TEXT PRIMARY KEY, grade TEXT NOT NULL, "
                "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL)"
            )
            self.db.commit()
        except sqlite3.DatabaseError as exc:  # another file, a corrupt database, a full or read-only disk
            self.lock.release()
            raise CacheError(
                f"{self.path}: not a usable judge cache ({exc}); give another --judge-cache or remove it"
            ) from None

    def get(self, k: str) -> dict | None:
        query = "SELECT grade, input_tokens, output_tokens FROM grades WHERE key = ?"
        row = self.db.execute(query, (k,)).fetchone()
        if row is None:
            return None
        try:
            grade = json.loads(row[0])
        except ValueError:  # a row damaged by hand: grade it again
            return None
        return {"grade": grade, "input_tokens": row[1], "output_tokens": row[2]}

    def put(self, k: str, grade: dict, input_tokens: int, output_tokens: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?)",
            (k, json.dumps(scrub(grade), ensure_ascii=False), input_tokens, output_tokens),
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()
        self.lock.release()

    def __enter__(self) -> GradeCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
