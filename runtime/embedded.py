"""Models that ship inside the runtime package (runtime/models/<name>/), and how a --model value resolves.

fabulist generate                       # the default embedded model
fabulist generate --model fable-5m      # an embedded model by name
fabulist generate --model runs/f5m      # any exported folder
"""

from __future__ import annotations

import json
from pathlib import Path

from fabulist.artifacts import MANIFEST
from fabulist.runtime.backends import BackendError

MODELS = Path(__file__).parent / "models"
DEFAULT = "fable-5m"


def embedded() -> dict[str, Path]:
    """Name -> folder of each model shipped in the package."""
    if not MODELS.is_dir():
        return {}
    return {p.name: p for p in sorted(MODELS.iterdir()) if (p / MANIFEST).is_file()}


def resolve(model: str | Path | None) -> Path:
    """A folder for --model: None is the default embedded model, a bare name an embedded one."""
    models = embedded()
    if model is None:
        if DEFAULT not in models:
            raise BackendError(
                f"the default model {DEFAULT} is not in this installation ({MODELS}); pass --model FOLDER"
            )
        return models[DEFAULT]
    path = Path(model)
    if path.is_dir():
        return path
    if str(model) in models:
        return models[str(model)]
    known = ", ".join(models) or "none"
    raise BackendError(f"{model}: no such folder, and no embedded model by that name (embedded: {known})")


def describe(folder: Path) -> dict:
    """Name, size, artifacts and provenance of a model folder, for `fabulist models`."""
    manifest = json.loads((folder / MANIFEST).read_text())
    training_path = folder / "training.json"
    training = json.loads(training_path.read_text()) if training_path.is_file() else {}
    files = [f for f in folder.rglob("*") if f.is_file()]
    return {
        "name": folder.name,
        "path": str(folder),
        "default": folder.parent == MODELS and folder.name == DEFAULT,
        "bytes": sum(f.stat().st_size for f in files),
        "artifacts": [
            f"{a['format']} {a['quant']}: {a['path']} ({a['bytes'] / 1e6:.1f} MB)"
            for a in manifest["artifacts"]
        ],
        "parameters": training.get("parameters"),
        "preset": training.get("preset"),
        "tokens_seen": training.get("tokens_seen"),
        "data_sha256": training.get("data_sha256"),
        "valid_ppl": training.get("final_valid_ppl"),
        "card": str(folder / "README.md") if (folder / "README.md").is_file() else None,
    }
