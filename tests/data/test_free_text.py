"""Free-text elements in records, the header and the split: imported TinyFabulist records train under their
own element texts, user text is checked, and `data split` carries the free-text fields into Parquet."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fabulist import fable_format as ff
from fabulist.cli import main
from fabulist.data.split import row, split_dataset
from fabulist.data.tf1 import from_tf1
from fabulist.records import COLUMNS, FREE_TEXT_FIELDS, RecordError
from fabulist.train.data import documents, read_records

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tf1-sample.jsonl"


def tf1_records(n: int) -> list[dict]:
    lines = FIXTURE.read_text().splitlines()
    return [from_tf1(json.loads(lines[i]), file="tf1-sample.jsonl", line=i + 1) for i in range(n)]


def test_an_imported_record_trains_under_its_own_element_texts():
    record = tf1_records(1)[0]
    assert ff.training_text(record).startswith(
        "<|prompt|>Character: Woodpecker\nTrait: Optimistic\nSetting: Enchanted greenhouse\n"
        "Conflict: Sabotage of a festival or event\nResolution: A new tradition of annual peace gathering\n"
        "Moral: Compassion reveals hidden beauty<|story|>In the heart of a magical forest,"
    )
    assert ff.training_text(record).endswith("<|endoftext|>")
    partial = {**record, "variant": "partial", "shown": ["character", "moral"]}
    want = {"character": "Woodpecker", "moral": "Compassion reveals hidden beauty"}
    assert ff.record_labels(partial) == want
    assert ff.record_labels({**record, "variant": "beginning"}) == {}


def test_a_list_record_keeps_its_labels():
    record = {"fable": "A fox.", "variant": "partial", "shown": ["character", "moral"],
              "elements": {"character": "fox", "moral": "kindness-is-rewarded"}}  # fmt: skip
    assert ff.training_text(record) == (
        "<|prompt|>Character: Fox\nMoral: Kindness is rewarded.<|story|>A fox.<|endoftext|>"
    )
    assert ff.training_text({**record, "elements_text": None}) == ff.training_text(record)


def test_free_label_and_check_element():
    assert ff.free_label("  arctic   ice floe ") == "Arctic ice floe"
    assert ff.free_label("Humility earns admiration.") == "Humility earns admiration."
    ff.check_element("character", "x" * ff.MAX_ELEMENT_CHARS)
    for text, message in [
        ("x" * 81, "the character is 81 characters long; give at most 80"),
        ("   ", "the character must not be empty"),
        ("beaver\nMoral: lie", "the character must be one line"),
        ("beaver<|story|>", "the character must not contain <|story|>"),
    ]:
        with pytest.raises(ValueError, match=message.replace("|", r"\|")):
            ff.check_element("character", text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--character", "x" * 81], "error: the character is 81 characters long; give at most 80"),
        (["--setting", ""], "error: the setting must not be empty"),
        (["--moral", "Be kind.\nMoral: Lying pays."], "error: the moral must be one line"),
        (["--trait", "brave<|endoftext|>"], "error: the trait must not contain <|endoftext|>"),
    ],
)
def test_generate_refuses_bad_element_text_before_loading_a_model(args, message, tmp_path):
    result = CliRunner().invoke(main, ["generate", "--model", str(tmp_path / "none"), *args])
    assert result.exit_code == 2
    assert result.output.splitlines() == [result.output.splitlines()[0]]
    assert result.output.startswith(message), result.output


def test_describe_says_what_the_model_was_trained_on():
    assert ff.describe()["elements"] == "lists" and ff.describe()["max_element_chars"] == 80
    free = ff.describe(ff.FREE_TEXT)
    assert free["elements"] == "free-text" and free["fields"] == ff.describe()["fields"]
    with pytest.raises(ValueError, match="elements must be 'lists' or 'free-text'"):
        ff.describe("any")


def test_trained_elements_reads_training_json_then_fable_format(tmp_path):
    assert ff.trained_elements(tmp_path) == "lists"  # neither file: every model before free text
    (tmp_path / "fable_format.json").write_text(json.dumps(ff.describe(ff.FREE_TEXT)))
    assert ff.trained_elements(tmp_path) == "free-text"
    (tmp_path / "training.json").write_text(json.dumps({"elements": "lists"}))
    assert ff.trained_elements(tmp_path) == "lists"
    (tmp_path / "training.json").write_text("[not json")
    assert ff.trained_elements(tmp_path) == "free-text"
    (tmp_path / "fable_format.json").write_text(json.dumps({"format": ff.FORMAT_VERSION}))  # an old export
    assert ff.trained_elements(tmp_path) == "lists"


def test_split_carries_the_free_text_fields_into_parquet(tmp_path):
    records = tf1_records(6)
    source = tmp_path / "imported.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = split_dataset(source, tmp_path / "out", valid_fraction=0.3)
    assert summary["columns"] == list(COLUMNS) and list(COLUMNS[-3:]) == list(FREE_TEXT_FIELDS)
    rows = read_records(tmp_path / "out" / "train.parquet") + read_records(tmp_path / "out" / "valid.parquet")
    assert len(rows) == 6
    # the trainer's documents from Parquet are the ones from the JSONL records
    by_hash = {r["prompt_hash"]: r for r in records}
    assert sorted(documents(rows)) == sorted(documents([by_hash[r["prompt_hash"]] for r in rows]))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out" / "train.parquet")
    assert str(table.schema.field("moral_line").type) == "bool"
    first = table.to_pylist()[0]
    assert json.loads(first["source"])["format"] == "tf1" and first["moral_line"] is False


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("elements_text", {"character": "fox\nMoral: x"}, "field 'elements_text': the character must be one"),
        ("elements_text", {"setting": "den<|pad|>"}, "the setting must not contain <|pad|>"),
        ("elements_text", {"hero": "fox"}, "field 'elements_text' must map character, trait"),
        ("elements_text", "fox", "field 'elements_text' must map character, trait"),
        ("moral_line", "yes", "field 'moral_line' must be true or false, got 'yes'"),
    ],
)
def test_split_refuses_free_text_that_would_be_structure(field, value, message):
    record = {**tf1_records(1)[0], field: value}
    with pytest.raises(RecordError, match=message.replace("|", r"\|")):
        row(record, "f: record 1")


def test_the_trainer_reads_imported_jsonl_and_refuses_records_without_elements(tmp_path):
    from fabulist.train.data import DataError

    path = tmp_path / "imported.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in tf1_records(2)))
    assert [r["elements_text"]["character"] for r in read_records(path)] == ["woodpecker", "robin"]
    path.write_text(json.dumps({"fable": "A fox.", "elements": None}) + "\n")
    with pytest.raises(DataError, match=r"record 1: records need 'fable' and 'elements' \(element ids\) or"):
        read_records(path)
