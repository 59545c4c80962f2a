"""Exclusive locks on outputs (a fables file, a judge cache, a training run), so two runs never share one.

    with locks.exclusive(out, "`fabulist data generate`"):   # a second run gets one line naming the PID
        ...

The lock is `fcntl.flock` on `<target>.lock` beside the target (symlinks resolved), a file that holds the
holder's PID for that message. The kernel drops the lock when its process dies, so a crash never leaves a
stale lock: a leftover file is only a name, locked again by the next run. Where `fcntl` is missing
(Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fabulist.errors import FabulistError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class LockError(FabulistError):
    """Another process holds the lock on an output."""


def lock_path(target: str | Path) -> Path:
    target = Path(target).resolve()
    return target.with_name(target.name + ".lock")


class Lock:
    """An exclusive, non-blocking lock on `target`, taken when made; `release` (or the `with` block's end)
    removes the lock file and lets go."""

    def __init__(self, target: str | Path, what: str):
        resolved = Path(target).resolve()
        if resolved.exists() and not (resolved.is_file() or resolved.is_dir()):  # /dev/null, a FIFO
            raise LockError(f"{target} is not a regular file or folder; give a path to write to")
        self.path = lock_path(target)
        self.fd = _acquire(self.path, target, what)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked: a waiting opener then sees the file is gone
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def exclusive(target: str | Path, what: str) -> Lock:
    """`with exclusive(out, what):` holds the lock for the block; LockError if another process has it."""
    return Lock(target, what)


def _acquire(path: Path, target: str | Path, what: str) -> int | None:
    if fcntl is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                raise LockError(
                    f"{target} is in use by another {what} (pid {pid}); wait for it to finish or stop it"
                ) from None
            raise LockError(f"cannot lock {path} ({exc.strerror})") from None
        try:  # the holder may have removed the file between our open and our lock: then lock the new one
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:  # a full disk: no lock, no leftover file, and the error names the output
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    return fd
