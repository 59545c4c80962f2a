"""The one exception type that crosses the CLI boundary.

Library code raises a subclass with a message that says what was wrong and what to do; the CLI prints it
as one line on stderr and exits non-zero, without a traceback.
"""


class FabulistError(Exception):
    """A user-facing error: bad input, a missing file, an impossible request."""
