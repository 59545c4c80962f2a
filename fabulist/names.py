"""Names that become folders (a packed model, a ladder rung): one plain path component, never a path.

    fabulist models pack runs/default --name fable-5m ...     # lands in MODELS/fable-5m and nowhere else

A name is ASCII letters, digits, '-', '_' and '.', and does not start with '.': so it is never empty, '.',
'..', hidden, or a path that reaches outside the folder it is put in.
"""

from __future__ import annotations

import re

FOLDER_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
RULE = "letters, digits, '-', '_' and '.', not starting with '.'"


def is_folder_name(name: object) -> bool:
    return isinstance(name, str) and FOLDER_NAME.fullmatch(name) is not None
