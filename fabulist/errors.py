"""The one exception type that crosses the CLI boundary, and the bad-environment errors that may too.

Library code raises a subclass with a message that says what was wrong and what to do; the CLI prints it
as one line on stderr and exits non-zero, without a traceback. `one_line` is that boundary's single
mapping: a FabulistError, an OSError of a documented kind (a path that is missing, unreadable, read-only,
full, a folder where a file was meant), text that is not UTF-8 and memory running out each become one
line; anything else is a bug and keeps its traceback.
"""

import errno

# OSErrors that mean "this path or this disk cannot be used", not "the program is wrong".
_PATH_ERRNOS = {
    errno.ENOENT: "not found",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (free some space, or write elsewhere)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many symbolic links",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "folder not empty",
    errno.EBUSY: "device or resource busy",
    errno.ENXIO: "no such device",
}


class FabulistError(Exception):
    """A user-facing error: bad input, a missing file, an impossible request."""


def one_line(exc: BaseException) -> str | None:
    """The one-line message for an exception that is bad input or a bad environment; None for a bug."""
    if isinstance(exc, FabulistError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS:
        where = next((str(p) for p in (exc.filename, exc.filename2) if p is not None), None)
        what = _PATH_ERRNOS[exc.errno]
        return f"{where}: {what}" if where else what
    if isinstance(exc, UnicodeDecodeError):
        return f"a file or an argument is not valid UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in exc.reason:
        return "an argument or a path is not valid UTF-8 (bytes the file system cannot name)"
    if isinstance(exc, MemoryError):
        return "out of memory: ask for less (fewer completions, shorter texts, smaller batches)"
    return None
