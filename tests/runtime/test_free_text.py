"""Free-text elements end to end: TinyFabulist records imported, split, trained on (a tiny model, a few
steps), exported and asked for any character, setting and moral; and a list-trained model that warns."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fabulist import fable_format as ff
from fabulist.train.trainer import TrainConfig, train

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "tf1-sample.jsonl"
SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
         "intermediate_size": 64}  # fmt: skip
ASK = ["--character", "industrious beaver", "--setting", "arctic ice floe",
       "--moral", "Humility earns admiration."]  # fmt: skip
HEADER = "Character: Industrious beaver\nTrait: "  # the trait is drawn from the list, as today
NOTE = "was trained on list values only"


def fabulist(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fabulist.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)


def tiny_run(data: Path, valid: Path, out: Path) -> Path:
    """A 2-layer, dim-32 model trained for 4 steps and exported to ONNX fp32 (optimum's graph only)."""
    from fabulist.export.onnx import export_onnx

    cfg = TrainConfig(preset="tiny", shape=SHAPE, data=str(data), valid=str(valid), out=str(out),
                      vocab_size=512, context=512, batch_size=4, max_steps=4, warmup_steps=1, lr=3e-3,
                      eval_every=100, eval_fables=0, save_every=100, seed=1)  # fmt: skip
    train(cfg, progress=False)
    export_onnx(out, ["fp32"], validate=False, progress=False, fast=False)
    return out


def ask(model: Path, cwd: Path) -> tuple[dict, list[str]]:
    """`fabulist generate` with free-text elements: its JSON and its stderr lines."""
    r = fabulist("generate", "--model", str(model), "--quant", "fp32", "--graph", "optimum", "--seed", "1",
                 "--max-new-tokens", "8", "--json", *ASK, cwd=cwd)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout), r.stderr.splitlines()


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """`fabulist data import` of the 34 TF1 fixture records, then `fabulist data split`; the split folder."""
    folder = tmp_path_factory.mktemp("tf1")
    imported, split = folder / "imported.jsonl", folder / "split"
    r = fabulist("data", "import", str(FIXTURE), "-o", str(imported), cwd=folder)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("read 34 records: wrote 34 fables")
    r = fabulist("data", "split", str(imported), "--out", str(split), "--valid-fraction", "0.2", cwd=folder)
    assert r.returncode == 0, r.stderr
    return split


def test_a_model_trained_on_imported_fables_takes_free_text(split, tmp_path):
    import pyarrow.parquet as pq

    rows, valid = (pq.read_table(split / f"{name}.parquet").to_pylist() for name in ("train", "valid"))
    assert (len(rows), len(valid)) == (28, 6)
    # the free-text fields come through the split: elements as text, the "Moral:" line flag, provenance
    assert rows[0]["elements"] is None and rows[0]["elements_text"] == {
        "character": "woodpecker", "trait": "optimistic", "setting": "enchanted greenhouse",
        "conflict": "sabotage of a festival or event",
        "resolution": "a new tradition of annual peace gathering",
        "moral": "compassion reveals hidden beauty",
    }  # fmt: skip
    assert sum(not r["moral_line"] for r in rows + valid) == 31  # as the import counted
    assert json.loads(rows[0]["source"])["line"] == 1 and json.loads(rows[0]["source"])["format"] == "tf1"

    model = tiny_run(split / "train.parquet", split / "valid.parquet", tmp_path / "run")
    training = json.loads((model / "training.json").read_text())
    assert training["elements"] == "free-text" and training["free_text_documents"] == len(rows)
    assert json.loads((model / "fable_format.json").read_text())["elements"] == "free-text"
    out, stderr = ask(model, tmp_path)
    assert out["prompt"].startswith("<|prompt|>" + HEADER)
    assert "\nSetting: Arctic ice floe\n" in out["prompt"]
    assert out["prompt"].endswith("\nMoral: Humility earns admiration.<|story|>")
    assert not [line for line in stderr if NOTE in line]
    assert len(out["completions"]) == 1 and out["completions"][0]["new_tokens"] >= 1


def test_a_list_trained_model_says_so_and_still_generates(split, tmp_path):
    """The same fables, each under the header of list elements (ids from the prompt sampler)."""
    import pyarrow.parquet as pq

    from fabulist.data import prompts as pr

    paths = []
    for name in ("train", "valid"):
        rows = pq.read_table(split / f"{name}.parquet").to_pylist()
        for row, p in zip(rows, pr.sample(len(rows), seed=3, variants={"full": 1.0}), strict=True):
            row.update(elements=p["elements"], shown=p["shown"], elements_text=None, variant="full")
        paths.append(tmp_path / f"{name}-lists.jsonl")
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = tiny_run(paths[0], paths[1], tmp_path / "run")
    assert json.loads((model / "training.json").read_text())["elements"] == "lists"
    assert json.loads((model / "fable_format.json").read_text()) == ff.describe()
    out, stderr = ask(model, tmp_path)
    assert out["prompt"].startswith("<|prompt|>" + HEADER)
    notes = [line for line in stderr if NOTE in line]
    assert notes == [
        "note: run was trained on list values only; the free-text character, setting, moral may be ignored "
        "(models trained on imported fables take any text)"
    ]
    assert out["completions"][0]["new_tokens"] >= 1
    # list values are not free text: no note
    r = fabulist("generate", "--model", str(model), "--quant", "fp32", "--graph", "optimum", "--seed", "1",
                 "--max-new-tokens", "4", "--json", "--character", "fox", "--setting", "Forest",
                 cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0 and NOTE not in r.stderr, r.stderr


def test_the_longest_free_text_is_accepted(onnx_model, tmp_path):
    setting = "a windswept island of black rocks where the tide pools glitter at dawn, far away"
    assert len(setting) == ff.MAX_ELEMENT_CHARS
    r = fabulist("generate", "--model", str(onnx_model), "--quant", "fp32", "--graph", "optimum",
                 "--seed", "2", "--max-new-tokens", "4", "--json", "--setting", setting, "--character", "Owl",
                 cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    prompt = json.loads(r.stdout)["prompt"]
    header_line = "Setting: A windswept island of black rocks where the tide pools glitter at dawn, far away"
    assert f"\n{header_line}\n" in prompt
    assert "<|prompt|>Character: Owl\n" in prompt  # a list label stays the list value: no note for it
    assert [line for line in r.stderr.splitlines() if NOTE in line] == [
        f"note: {onnx_model.name} was trained on list values only; the free-text setting may be ignored "
        "(models trained on imported fables take any text)"
    ]
