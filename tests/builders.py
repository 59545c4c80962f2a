"""Builders the tests of several stages share (the fixtures that use them live in the conftest files): tiny
Hugging Face fable models with random weights and a real trained tokenizer, and small corpora written by
the project's own prompt sampler and procedural teacher. No downloads."""

from fabulist import elements as el
from fabulist.data import prompts as pr
from fabulist.data.teachers import procedural
from fabulist.export.validate import heldout_texts
from fabulist.records import fable_record
from fabulist.train import tokenizer as tk
from fabulist.train.presets import Preset


def make_model_dir(folder, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=512, seed=0):
    """A LlamaForCausalLM folder as `fabulist train` writes it, with random (seeded) weights."""
    from fabulist.train.folder import random_folder

    tok = tk.train_tokenizer(heldout_texts(40, seed=7), vocab_size=vocab)
    preset = Preset("tiny", hidden, layers, heads, kv_heads, ffn, context=256, lr=1e-3)
    return random_folder(folder, preset, tok, seed=seed, std=0.08)


def make_fables(count: int, seed: int) -> list[dict]:
    records = []
    for p in pr.sample(count, seed=seed):
        story = {k: el.lookup(k, p["elements"][k]) for k in el.KINDS}
        text = procedural.write_fable(story, p["index"], opening_seed=p["opening_seed"])
        records.append(fable_record(p, text, teacher="procedural", llm_name="procedural", input_tokens=0,
                                    output_tokens=0, seconds=0.0, sampling={}, seed=seed))  # fmt: skip
    return records


def assert_plot(path, min_width=320, min_height=240) -> tuple[int, int]:
    """A PNG that decodes whole (not only a PNG header), at least this large, with something drawn on it
    (not one flat colour); returns (width, height)."""
    from matplotlib import image

    pixels = image.imread(str(path))  # raises on a truncated or corrupt file
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height, f"{path}: {width}x{height}"
    assert pixels[..., :3].std() > 0.02, f"{path}: a blank image"
    return width, height
