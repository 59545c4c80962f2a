"""`fabulist data split`: duplicates dropped, prompts never in both splits, Parquet that `datasets` loads."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from fabulist.cli import main
from fabulist.data.split import is_valid, split_dataset
from fabulist.records import COLUMNS

from .test_stats import change_one_word, record, text_of, write_jsonl

N_UNIQUE = 60


def fables() -> list[dict]:
    """60 distinct fables over 40 prompts (every third prompt used twice), then 2 exact and 2 near copies."""
    records = [record(i, text_of(100 + i), prompt_hash=f"p{i % 40:015d}") for i in range(N_UNIQUE)]
    records.append(record(900, "  " + records[5]["fable"].upper() + "\n", prompt_hash="exact-copy-1"))
    records.append(record(901, records[6]["fable"], prompt_hash="exact-copy-2"))
    records.append(record(902, change_one_word(records[7]["fable"]), prompt_hash="near-copy-1"))
    records.append(record(903, change_one_word(records[8]["fable"], at=20), prompt_hash="near-copy-2"))
    return records


@pytest.fixture
def source(tmp_path):
    records = fables()
    write_jsonl(tmp_path / "fables.jsonl", records)
    return tmp_path / "fables.jsonl", records


def read(path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_split_counts_dedup_and_prompts(source, tmp_path):
    path, _ = source
    summary = split_dataset(path, tmp_path / "out", valid_fraction=0.3, seed=0)
    train, valid = read(tmp_path / "out" / "train.parquet"), read(tmp_path / "out" / "valid.parquet")
    assert summary["records_in"] == N_UNIQUE + 4
    assert summary["dropped"] == {"exact_duplicates": 2, "near_duplicates": 2}
    assert len(train) + len(valid) == N_UNIQUE
    assert (summary["train"]["records"], summary["valid"]["records"]) == (len(train), len(valid))
    assert len(train) > 0 and len(valid) > 0
    train_prompts, valid_prompts = {r["prompt_hash"] for r in train}, {r["prompt_hash"] for r in valid}
    assert not train_prompts & valid_prompts
    assert summary["train"]["prompts"] + summary["valid"]["prompts"] == 40
    assert not any("copy" in p for p in train_prompts | valid_prompts)  # the duplicates are gone
    assert summary["train"]["fraction"] + summary["valid"]["fraction"] == pytest.approx(1)
    assert all(is_valid(r["prompt_hash"], 0, 0.3) for r in valid)


def test_split_json_and_rows(source, tmp_path):
    path, records = source
    split_dataset(path, tmp_path / "out", valid_fraction=0.3, seed=7)
    summary = json.loads((tmp_path / "out" / "split.json").read_text())
    assert summary["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["seed"] == 7 and summary["valid_fraction"] == 0.3 and summary["near_threshold"] == 0.8
    assert summary["columns"] == list(COLUMNS)
    first = {
        r["prompt"]: r
        for r in read(tmp_path / "out" / "train.parquet") + read(tmp_path / "out" / "valid.parquet")
    }
    original = records[0]
    row = first[original["prompt"]]
    assert row["fable"] == original["fable"] and row["elements"] == original["elements"]
    assert row["shown"] == original["shown"] and json.loads(row["sampling"]) == original["sampling"]
    assert row["beginning"] is None and row["llm_output_tokens"] == original["llm_output_tokens"]
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_split_is_deterministic(source, tmp_path):
    path, _ = source

    def prompts(seed, name):
        split_dataset(path, tmp_path / name, valid_fraction=0.3, seed=seed)
        return [r["prompt_hash"] for r in read(tmp_path / name / "valid.parquet")]

    assert prompts(0, "a") == prompts(0, "b")
    assert set(prompts(0, "a2")) != set(prompts(1, "c"))


def test_is_valid_fraction():
    share = sum(is_valid(f"{i:016x}", 0, 0.05) for i in range(20_000)) / 20_000
    assert share == pytest.approx(0.05, abs=0.006)


def test_no_near_dedup_keeps_near_copies(source, tmp_path):
    path, _ = source
    summary = split_dataset(path, tmp_path / "out", valid_fraction=0.3, near_dedup=False)
    assert summary["dropped"] == {"exact_duplicates": 2, "near_duplicates": 0}
    assert summary["train"]["records"] + summary["valid"]["records"] == N_UNIQUE + 2


def test_datasets_loads_both_splits(source, tmp_path, monkeypatch):
    path, _ = source
    for name, value in {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    summary = split_dataset(path, tmp_path / "out", valid_fraction=0.3)
    import datasets

    files = {
        "train": str(tmp_path / "out" / "train.parquet"),
        "validation": str(tmp_path / "out" / "valid.parquet"),
    }
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf" / "datasets"))
    assert loaded["train"].num_rows == summary["train"]["records"]
    assert loaded["validation"].num_rows == summary["valid"]["records"]
    assert loaded["train"].column_names == list(COLUMNS)
    assert loaded["validation"][0]["elements"].keys() == set(record(0, "")["elements"])


def test_cli_split_and_force(source, tmp_path):
    path, _ = source
    out = tmp_path / "out"
    args = ["data", "split", str(path), "--out", str(out), "--valid-fraction", "0.3"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "dropped 2 exact and 2 near duplicates" in first.stdout
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1
    assert "train.parquet exists; pass --force" in again.stderr
    forced = CliRunner().invoke(main, [*args, "--force", "--seed", "3"])
    assert forced.exit_code == 0
    assert json.loads((out / "split.json").read_text())["seed"] == 3


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "file not found"),
        ("\n\n", [], "no fables in the file"),
        ('{"fable": "a b", "prompt_hash": "x"}\n{"fable": \n', [], "in.jsonl:2: not valid JSON"),
        (
            '{"fable": "a b", "prompt_hash": "x", "seed": "s"}\n',
            [],
            "record 1: field 'seed' must be a number",
        ),
        ('{"fable": "a", "prompt_hash": "x", "elements": ["fox"]}\n', [], "field 'elements' must map"),
        ('{"fable": "a b", "prompt_hash": "x"}\n', ["--valid-fraction", "0"], "between 0 and 1"),
        ('{"fable": "a b", "prompt_hash": "x"}\n', ["--valid-fraction", "1"], "between 0 and 1"),
        ('{"fable": "a b", "prompt_hash": "x"}\n', ["--valid-fraction", "-0.2"], "between 0 and 1"),
    ],
)
def test_cli_refusals_are_one_line(tmp_path, content, args, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "split", str(path), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "train.parquet").exists()  # nothing written for a refused input


def test_refuses_out_that_is_a_file(source, tmp_path):
    path, _ = source
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["data", "split", str(path), "--out", str(tmp_path / "file")])
    assert result.exit_code == 1 and "is a file" in result.stderr
