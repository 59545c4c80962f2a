"""Calibration text for the quantizers that look at activations (GPTQ): training-format fables from the
training region, never the reserved evaluation region that export validation measures on.

    fabulist export runs/X --quant int4 --method gptq [--calib train.parquet]

Without --calib the texts are the frozen file calib.json beside this module: fables for training-region
prompts, written once by the procedural teacher and frozen here (like heldout.json), so an export's
calibration, and with it the GPTQ artifact, never changes when the story grammar does (the export stage
does not import the data stage; `benchmarks/quant_methods.py --freeze-calib` rewrites the file).
With --calib FILE (the training data: a fables JSONL or a Parquet split, as `fabulist train --data` reads)
its first records are used, as the model was trained on them; a record whose text is one of export
validation's held-out probes (heldout.json) is skipped, so calibration never sees what validation measures.
"""

from __future__ import annotations

import json
from pathlib import Path

from fabulist import fable_format as ff
from fabulist.export.errors import ExportError

CALIB_TEXTS = 64  # x up to 256 tokens: ~16k positions, over 30x the widest matrix's input width (512)
CALIB_TOKENS = 256
FROZEN = "calib.json"


def calibration_texts(path: str | Path | None = None, n: int = CALIB_TEXTS) -> tuple[list[str], str]:
    """(n training-format texts, a note saying where they came from) from FILE or the frozen default."""
    if path is None:
        from importlib import resources

        frozen = json.loads((resources.files("fabulist.export") / FROZEN).read_text(encoding="utf-8"))
        texts = frozen["texts"][:n]
        return texts, f"calibration: {len(texts)} frozen training-region fables ({FROZEN})"
    path = Path(path)
    probes = _probes()
    texts, skipped = [], 0
    for record in _records(path):
        text = ff.training_text(record)
        if text in probes:
            skipped += 1
            continue
        texts.append(text)
        if len(texts) == n:
            break
    if not texts:
        raise ExportError(f"--calib {path}: no training-region fable records in it")
    note = f"calibration: the first {len(texts)} fables of {path.name}"
    return texts, note + (f" ({skipped} held-out validation probes skipped)" if skipped else "")


def _records(path: Path):
    """Fable records of a .parquet or .jsonl file, read lazily (a training split is ~10^5 records)."""
    from fabulist.records import RecordError, read_jsonl

    if not path.is_file():
        raise ExportError(f"--calib {path}: file not found")
    columns = ("fable", "elements", "shown", "variant", "elements_text")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            wanted = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=256, columns=wanted):
                yield from (_decoded(r, path) for r in batch.to_pylist())
        else:
            yield from (_decoded(r, path) for r in read_jsonl(path, ("fable",)))
    except ExportError:
        raise
    except RecordError as e:  # a JSONL line that is not a fable record, named by file and line
        raise ExportError(f"--calib {e}") from None
    except Exception as e:  # pyarrow and json raise many types for a file that is not what it claims
        raise ExportError(f"--calib {path}: not a fables JSONL or Parquet file ({type(e).__name__})") from e


def _decoded(record: dict, path: Path) -> dict:
    for key in ("elements", "shown", "elements_text"):
        if isinstance(record.get(key), str):  # a Parquet split may store them as JSON strings
            record[key] = json.loads(record[key])
    if not isinstance(record.get("fable"), str) or not any(
        isinstance(record.get(k), dict) for k in ("elements", "elements_text")
    ):
        raise ExportError(f"--calib {path}: records need 'fable' and 'elements' (or 'elements_text')")
    return record


def _probes() -> set[str]:
    """Every held-out text export validation may measure on (all sets of heldout.json)."""
    from importlib import resources

    sets = json.loads((resources.files("fabulist.export") / "heldout.json").read_text(encoding="utf-8"))
    return {t for texts in sets["texts"].values() for t in texts}
