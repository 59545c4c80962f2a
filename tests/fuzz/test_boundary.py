"""The CLI boundary's one mapping (`fabulist.errors.one_line`): documented bad input becomes one line, a bug
keeps its traceback.

Tests run as root in CI, and root reads and writes past permission bits, so EACCES cannot be provoked
through the file system here: these tests raise the OS's own exception types inside a command of the real
`Group` instead (the full and read-only disks of test_disk.py are real).
"""

import errno
import os

import click
import pytest
from click.testing import CliRunner

from fabulist.cli import Group


def group_raising(exc: BaseException) -> click.Group:
    @click.group(cls=Group)
    def top() -> None:
        pass

    @top.command("go")
    def go() -> None:
        raise exc

    return top


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (
            PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/f.jsonl"),
            "/data/f.jsonl: permission denied",
        ),
        (
            IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "/data"),
            "/data: is a folder, not a file",
        ),
        (OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/x"), "/mnt/ro/x: read-only file system"),
        (
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
            "no space left on the device (free some space, or write elsewhere)",
        ),
    ],
)
def test_documented_os_errors_are_one_line(exc, line):
    result = CliRunner().invoke(group_raising(exc), ["go"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr == f"error: {line}\n"


def test_text_that_is_not_utf8_is_one_line():
    try:
        b"ok \xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        decode_error = exc
    result = CliRunner().invoke(group_raising(decode_error), ["go"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "error: a file or an argument is not valid UTF-8 text (invalid start byte at byte 3)\n"
    )


@pytest.mark.parametrize(
    "exc", [ValueError("a bug"), KeyError("vocab_size"), OSError(errno.EIO, "I/O error"), RecursionError()]
)
def test_a_bug_keeps_its_traceback(exc):
    result = CliRunner().invoke(group_raising(exc), ["go"])
    assert result.exception is exc  # not turned into a line: CliRunner hands the exception itself back


def test_an_argument_that_is_not_utf8_is_one_line():
    from fabulist.cli import main

    result = CliRunner().invoke(
        main, ["generate", "--character", b"fox\xff".decode("utf-8", "surrogateescape")]
    )
    assert result.exit_code == 2
    assert result.stderr == "error: argument b'fox\\xff' is not valid UTF-8 text\n"
