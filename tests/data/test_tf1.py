"""`fabulist data import` / `export-tf1` on the 34 real TinyFabulist records in fixtures/ (MIT, KlusAI).

Expected values (elements, counts, line numbers, hashes) are read off the fixture by hand and written out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fabulist.cli import main
from fabulist.data import tf1
from fabulist.elements import KINDS
from fabulist.records import dumps, fable_record

from .test_cli_errors import assert_one_line_error, fabulist

FIXTURE = Path(__file__).parent / "fixtures" / "tf1-sample.jsonl"  # a copy of /work/shared/fixtures

TF1_LAYOUT = [
    "language", "prompt", "prompt_hash", "fable", "llm_name", "llm_input_tokens", "llm_output_tokens",
    "llm_inference_time", "host_provider", "host_dc_provider", "host_dc_location", "host_gpu",
    "host_gpu_vram", "host_cost_per_hour", "currency", "generation_datetime", "pipeline_version",
]  # fmt: skip
RECORD_FIELDS = [
    "language", "prompt", "prompt_hash", "fable", "llm_name", "llm_input_tokens", "llm_output_tokens",
    "llm_inference_time", "generation_datetime", "pipeline_version", "teacher", "variant", "elements",
    "shown", "beginning", "sampling", "seed", "elements_text", "moral_line", "source",
]  # fmt: skip


def run(*args: str):
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[list[dict], str]:
    """The fixture imported once: its records and what the command printed (with OUT for the output)."""
    out = tmp_path_factory.mktemp("tf1") / "fables.jsonl"
    result = run("data", "import", str(FIXTURE), "-o", str(out))
    assert result.exit_code == 0, result.output
    return read(out), result.output.replace(str(out.parent), "OUT")


# ---- the 34 fixture records --------------------------------------------------------------------------


def test_all_34_fixture_records_import(imported):
    records, output = imported
    assert output == (
        "read 34 records: wrote 34 fables to OUT/fables.jsonl (31 without a 'Moral:' line), "
        "0 errors to OUT/fables.errors.jsonl\n"
    )
    assert len(records) == 34
    assert [r["source"]["line"] for r in records] == list(range(1, 35))
    assert all(list(r) == RECORD_FIELDS for r in records)
    assert {r["teacher"] for r in records} == {"tinyfabulist"}
    assert {r["variant"] for r in records} == {"full"}
    assert all(r["elements"] is None and len(r["elements_text"]) == 6 for r in records)
    versions = [r["pipeline_version"] for r in records]
    assert (versions.count("1.0"), versions.count("1.102.250412"), versions.count(None)) == (30, 2, 2)
    assert len({r["llm_name"] for r in records}) == 11  # ten families, DeepSeek twice
    # Lines 12/30 and 25/26 are one prompt each, written by two models: one prompt hash each.
    assert len({r["prompt_hash"] for r in records}) == 32
    assert records[11]["prompt_hash"] == records[29]["prompt_hash"]
    assert records[24]["prompt_hash"] == records[25]["prompt_hash"]


def test_parsed_elements_of_some_records(imported):
    records, _ = imported
    assert records[0]["elements_text"] == {
        "character": "woodpecker",
        "trait": "optimistic",
        "setting": "enchanted greenhouse",
        "conflict": "sabotage of a festival or event",
        "resolution": "a new tradition of annual peace gathering",
        "moral": "compassion reveals hidden beauty",
    }
    assert records[4]["elements_text"]["setting"] == "mountains"  # "a mountains where our story unfolds"
    assert records[11]["elements_text"] == {  # the prompt has "one&#x27;s fears"
        "character": "grasshopper",
        "trait": "sensible",
        "setting": "deserted village",
        "conflict": "forced to confront one's fears",
        "resolution": "ancient enemies sign a pact",
        "moral": "courtesy is never wasted",
    }
    assert records[14]["elements_text"]["resolution"] == "the cunning plan fails, leading to humility"
    assert records[30]["elements_text"]["conflict"] == "selfishness vs. generosity"


def test_provenance_is_kept(imported):
    records, _ = imported
    first, no_version, phi = records[0], records[14], records[18]
    assert first["llm_name"] == "CohereForAI/aya-23-8B"
    assert first["source"] == {
        "format": "tf1",
        "file": str(FIXTURE),
        "line": 1,
        "id": "f44b86a194e152da2ff8f2734a43c7dc32d35bde8abb06dc0393871185349508",
        "tf1_fields": {
            "host_provider": "endpoints.huggingface",
            "host_dc_provider": "eu-west-1",
            "host_dc_location": "eu-west-1",
            "host_gpu": "Nvidia A10G",
            "host_gpu_vram": 24,
            "host_cost_per_hour": 1.0,
        },
    }
    assert (first["pipeline_version"], first["generation_datetime"]) == ("1.0", "2025-04-02 09:02:30")
    assert (first["llm_input_tokens"], first["llm_output_tokens"]) == (174, 473)
    assert no_version["pipeline_version"] is None  # pipeline version missing, id under "prompt_hash"
    assert no_version["source"]["id"] == "445903397cd9abc9bdaf154bde5e939799efa36c4771a34f7891e9f34ce9404d"
    assert no_version["source"]["tf1_fields"]["currency"] == "USD"
    assert phi["llm_name"] == "microsoft/Phi-3-mini-4k-instruct"  # TF1 has a trailing space
    original = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert [r["fable"] for r in records] == [o["fable"] for o in original]
    assert [r["prompt"] for r in records] == [o["prompt"] for o in original]


def test_moral_line_marking(imported):
    records, _ = imported
    assert [r["source"]["line"] for r in records if r["moral_line"]] == [23, 24, 32]
    assert records[22]["fable"].endswith("\n\n**Moral:** Honesty is the best policy.")
    assert records[7]["moral_line"] is False  # "And so the moral of the story is: ..." is a sentence


@pytest.mark.parametrize(
    ("fable", "expected"),
    [
        ("Once.\n\nMoral: Kindness is rewarded.", True),
        ("Once.\n\n**Moral:** Be kind.\n\n", True),
        ("Once.\n\nThe Moral: Be kind.", True),
        ("Once.\n\nAnd the moral of this story is: be kind.", False),
        ("Moral: be kind.\n\nAnd they lived happily.", False),
        ("Once there was a fox.", False),
    ],
)
def test_has_moral_line(fable, expected):
    assert tf1.has_moral_line(fable) is expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("  - Main Character: a wise old owl\n  - Teaching: be kind",
         {"character": "old owl", "trait": "wise", "moral": "be kind"}),
        ("  - Main Character: an owl\n  - Setting: the river", {"character": "owl", "setting": "river"}),
        ("  - Main Character: polar bear", {"character": "polar bear"}),
        ("Character: Fox\nTrait: Brave\nConflict: A broken promise\nResolution: Reward\nMoral: Be kind.",
         {"character": "Fox", "trait": "Brave", "conflict": "A broken promise", "resolution": "Reward",
          "moral": "Be kind."}),
        ("Write a story.\n- End with a clear connection to the moral", {}),
    ],
)  # fmt: skip
def test_parse_prompt(prompt, expected):
    assert tf1.parse_prompt(prompt) == expected


# ---- unreadable records ------------------------------------------------------------------------------


def test_broken_records_go_to_the_errors_file_with_their_lines(tmp_path):
    good = FIXTURE.read_text().splitlines()
    no_fable = {k: v for k, v in json.loads(good[1]).items() if k != "fable"}
    no_elements = {**json.loads(good[2]), "prompt": "Write a story about anything you like."}
    lines = [good[0], '{"prompt": "x", ', dumps(no_fable), "", dumps(no_elements), "[1, 2]", good[3]]
    source = tmp_path / "broken.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out, errors = tmp_path / "fables.jsonl", tmp_path / "bad.jsonl"
    result = run("data", "import", str(source), "-o", str(out), "--errors", str(errors))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"read 6 records: wrote 2 fables to {out} (2 without a 'Moral:' line), 4 errors to {errors}\n"
    )
    assert [r["source"]["line"] for r in read(out)] == [1, 7]
    assert read(errors) == [
        {"file": str(source), "line": 2,
         "reason": "not valid JSON (Expecting property name enclosed in double quotes)"},
        {"file": str(source), "line": 3,
         "reason": "no fable text (field 'fable' is missing, empty or not text)"},
        {"file": str(source), "line": 5,
         "reason": "prompt names no elements (no line like '- Main Character: a wise owl')"},
        {"file": str(source), "line": 6, "reason": "expected a JSON object, got list"},
    ]  # fmt: skip


def test_errors_file_defaults_beside_the_output_and_exists_when_empty(tmp_path, imported):
    out = tmp_path / "fables.jsonl"
    assert run("data", "import", str(FIXTURE), "-o", str(out)).exit_code == 0
    assert (tmp_path / "fables.errors.jsonl").read_text() == ""
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["fables.errors.jsonl", "fables.jsonl"]


# ---- Parquet -----------------------------------------------------------------------------------------


def test_parquet_input_imports_the_same_records(tmp_path, imported):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    parquet = tmp_path / "tf1.parquet"
    columns = list(dict.fromkeys(name for row in rows for name in row))  # every field of every pipeline
    pq.write_table(pa.table({name: [row.get(name) for row in rows] for name in columns}), parquet)
    out = tmp_path / "fables.jsonl"
    result = run("data", "import", str(parquet), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "read 34 records: wrote 34 fables" in result.output
    from_jsonl, _ = imported
    from_parquet = read(out)
    assert [r["source"]["file"] for r in from_parquet] == [str(parquet)] * 34
    for a, b in zip(from_parquet, from_jsonl, strict=True):
        assert {**a, "source": {**a["source"], "file": None}} == {
            **b,
            "source": {**b["source"], "file": None},
        }


def test_two_inputs_in_one_output(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = FIXTURE.read_text().splitlines()
    first.write_text("\n".join(lines[:10]) + "\n")
    second.write_text("\n".join(lines[10:]) + "\n")
    out = tmp_path / "fables.jsonl"
    assert run("data", "import", str(first), str(second), "-o", str(out)).exit_code == 0
    records = read(out)
    assert [(Path(r["source"]["file"]).name, r["source"]["line"]) for r in records[9:11]] == [
        ("a.jsonl", 10),
        ("b.jsonl", 1),
    ]


# ---- export-tf1 --------------------------------------------------------------------------------------


def test_export_round_trip_keeps_fables_and_elements(tmp_path, imported):
    records, _ = imported
    fables = tmp_path / "fables.jsonl"
    fables.write_text("".join(dumps(r) + "\n" for r in records))
    exported = tmp_path / "tf1.jsonl"
    result = run("data", "export-tf1", str(fables), "-o", str(exported))
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 34 fables in TF1 layout to {exported}\n"
    rows = read(exported)
    assert all(list(row) == TF1_LAYOUT for row in rows)
    original = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert [row["prompt"] for row in rows] == [o["prompt"] for o in original]  # already TF1 prompts
    assert rows[0]["prompt_hash"] == "f44b86a194e152da2ff8f2734a43c7dc32d35bde8abb06dc0393871185349508"
    assert (rows[0]["host_gpu"], rows[0]["currency"], rows[12]["currency"]) == ("Nvidia A10G", None, "USD")
    again = tmp_path / "again.jsonl"
    assert run("data", "import", str(exported), "-o", str(again)).exit_code == 0
    back = read(again)
    assert [r["fable"] for r in back] == [r["fable"] for r in records]
    assert [r["elements_text"] for r in back] == [r["elements_text"] for r in records]
    assert [r["moral_line"] for r in back] == [r["moral_line"] for r in records]


def native(variant: str, shown: list[str]) -> dict:
    ids = {"character": "polar-bear", "trait": "brave", "setting": "forest", "conflict": "sharing-food",
           "resolution": "reward", "moral": "kindness-is-rewarded"}  # fmt: skip
    prompt = {"prompt": "Write a fable ...", "prompt_hash": "0123456789abcdef", "variant": variant,
              "elements": ids, "shown": shown}  # fmt: skip
    fable = "A brave polar bear shared.\n\nMoral: Kindness is rewarded."
    return fable_record(prompt, fable, teacher="procedural", llm_name="procedural-v1", input_tokens=0,
                        output_tokens=40, seconds=0.0, sampling={}, seed=7)  # fmt: skip


def test_fabulist_fables_export_and_import_back(tmp_path):
    fables = tmp_path / "fables.jsonl"
    full, partial = native("full", list(KINDS)), native("partial", ["character", "moral"])
    fables.write_text(dumps(full) + "\n" + dumps(partial) + "\n")
    exported, back = tmp_path / "tf1.jsonl", tmp_path / "back.jsonl"
    assert run("data", "export-tf1", str(fables), "-o", str(exported)).exit_code == 0
    rows = read(exported)
    assert rows[0]["prompt"].splitlines()[1:6] == [
        "  - Main Character: a brave polar bear",
        "  - Setting: a forest where our story unfolds",
        "  - Challenge: sharing food in a hard winter",
        "  - Outcome: reward",
        "  - Teaching: kindness is rewarded",
    ]
    assert rows[1]["prompt"].splitlines()[1:3] == [
        "  - Main Character: polar bear",
        "  - Teaching: kindness is rewarded",
    ]
    assert (rows[0]["pipeline_version"], rows[0]["host_gpu"]) == ("fabulist-data-1", None)
    assert run("data", "import", str(exported), "-o", str(back)).exit_code == 0
    imported = read(back)
    assert imported[0]["elements_text"] == {
        "character": "polar bear",
        "trait": "brave",
        "setting": "forest",
        "conflict": "sharing food in a hard winter",
        "resolution": "reward",
        "moral": "kindness is rewarded",
    }
    assert imported[1]["elements_text"] == {"character": "polar bear", "moral": "kindness is rewarded"}
    assert [r["variant"] for r in imported] == ["full", "partial"]
    assert [r["moral_line"] for r in imported] == [True, True]
    assert [r["fable"] for r in imported] == [full["fable"], partial["fable"]]


# ---- refusals: one line on stderr, exit 1, nothing written -------------------------------------------


def test_missing_file(tmp_path):
    out = tmp_path / "fables.jsonl"
    result = fabulist("data", "import", str(tmp_path / "nope.jsonl"), "-o", str(out))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {tmp_path / 'nope.jsonl'}: file not found")
    assert list(tmp_path.iterdir()) == []


def test_binary_file(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    result = fabulist("data", "import", str(binary), "-o", str(tmp_path / "fables.jsonl"))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {binary}: binary file, not TF1 JSONL or Parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = fabulist("data", "import", str(empty), "-o", str(tmp_path / "fables.jsonl"))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {empty}: empty file")


def test_file_of_another_kind(tmp_path):
    prompts = tmp_path / "tf_prompts.jsonl"  # TF1's prompts file: a JSON list a line, no fables
    prompts.write_text('[{"prompt_type": "system_prompt", "content": "You are a creative assistant."}]\n' * 3)
    result = fabulist("data", "import", str(prompts), "-o", str(tmp_path / "fables.jsonl"))
    assert result.returncode == 1
    assert_one_line_error(
        result,
        f"error: {prompts}: no TinyFabulist fable in the file (line 1: expected a JSON object, got list); "
        "is it a TF1 fables file?",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["tf_prompts.jsonl"]  # no output, no errors file


def test_broken_parquet(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"not really parquet" * 10)
    result = fabulist("data", "import", str(broken), "-o", str(tmp_path / "fables.jsonl"))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {broken}: cannot read as Parquet (")


def test_existing_output_is_kept_unless_force(tmp_path):
    out = tmp_path / "fables.jsonl"
    out.write_text("keep me\n")
    result = fabulist("data", "import", str(FIXTURE), "-o", str(out))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {out}: already exists; pass --force to overwrite it")
    assert out.read_text() == "keep me\n"
    result = fabulist("data", "import", str(FIXTURE), "-o", str(out), "--force")
    assert result.returncode == 0, result.stderr
    assert len(read(out)) == 34


def test_export_refusals(tmp_path):
    result = fabulist("data", "export-tf1", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "t.jsonl"))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {tmp_path / 'nope.jsonl'}: file not found")
    fables, out = tmp_path / "fables.jsonl", tmp_path / "tf1.jsonl"
    shutil.copy(FIXTURE, fables)
    out.write_text("keep me\n")
    result = fabulist("data", "export-tf1", str(fables), "-o", str(out))
    assert result.returncode == 1
    assert_one_line_error(result, f"error: {out}: already exists; pass --force to overwrite it")
    assert out.read_text() == "keep me\n"
