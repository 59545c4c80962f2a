"""The models the suite measures: random-weight presets (speed and memory do not depend on the weights),
built once into a work folder and exported to every artifact; a trained model folder is exported in place.

    from fabulist.bench.models import prepare
    prepare(Path("benchmarks/work/fable-5m"), presets.get("fable-5m"), context=2112)

Random models share one tokenizer: the trained model's when the run has one (so vocabularies match), or
one trained here on held-out fables. Exports are unvalidated (`fabulist export --quant all` validates).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fabulist import artifacts
from fabulist.train.presets import Preset

ARTIFACTS = tuple(  # what `export --format all --quant all` writes, and what the matrix reads
    artifacts.get(*key).path
    for key in (("onnx", "fp32", "optimum"), ("onnx", "int8", "optimum"), ("onnx", "int4", "optimum"),
                ("onnx", "fp32", "genai"), ("onnx", "int4", "genai"), ("gguf", "f16"), ("gguf", "q8_0"),
                ("gguf", "q4_0"), ("gguf", "q4_k_m"))
)  # fmt: skip
TINY = Preset("tiny", 64, 2, 4, 2, 128, context=256, lr=1e-3)  # --quick: seconds to export and run


def tokenizer(work: Path, source: Path | None, vocab: int):
    """The shared tokenizer: the source model's, else one trained on held-out fables (cached in work)."""
    from fabulist.export.validate import heldout_texts
    from fabulist.train import tokenizer as tk

    if source is not None:
        return tk.load(source)
    path = work / f"tokenizer-{vocab}.json"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        tk.train_tokenizer(heldout_texts(40 if vocab <= 512 else 400), vocab_size=vocab).save(str(path))
    return tk.load(path)


def build(folder: Path, preset: Preset, context: int, tok, seed: int = 0, tokenizer_source: str = "") -> Path:
    """A LlamaForCausalLM folder as `fabulist train` writes it, with random (seeded) weights."""
    from fabulist.train.folder import random_folder

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    random_folder(tmp, preset, tok, context, seed)
    record = {"preset": preset.name, "random_weights": True, "seed": seed, "context": context,
              "tokenizer": tokenizer_source}  # fmt: skip
    (tmp / "preset.json").write_text(json.dumps(record))
    tmp.rename(folder)
    return folder


def exported(model_dir: Path) -> bool:
    return all((model_dir / a).exists() for a in ARTIFACTS)


def export_all(model_dir: Path) -> None:
    """Every artifact the matrix reads, unvalidated, recorded in the folder's export manifest."""
    from fabulist.export.run import export_model

    if not exported(model_dir):
        export_model(model_dir, "all", "all", budget="1000GB", validate=False, progress=False)


def prepare(
    folder: Path, preset: Preset, context: int, source: Path | None = None, vocab: int = 4096
) -> Path:
    """The random-weight model of a preset in folder, built and exported unless it already is (with the
    same context and tokenizer)."""
    want = {
        "preset": preset.name,
        "context": context,
        "tokenizer": str(source.resolve()) if source else f"bpe-{vocab}",
    }
    record = folder / "preset.json"
    have = json.loads(record.read_text()) if record.exists() else {}
    if not (folder / artifacts.WEIGHTS).exists() or any(have.get(k) != v for k, v in want.items()):
        shutil.rmtree(folder, ignore_errors=True)
        tok = tokenizer(folder.parent, source, vocab)
        build(folder, preset, context, tok, tokenizer_source=want["tokenizer"])
    export_all(folder)
    return folder
