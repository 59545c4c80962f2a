"""The export stage's user-facing error."""

from fabulist.errors import FabulistError


class ExportError(FabulistError):
    """An artifact that cannot be written or validated: bad input folder, corrupt file, failed write."""
