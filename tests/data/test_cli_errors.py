"""Bad input: one clear line on stderr, a non-zero exit, no traceback, and existing output untouched."""

import subprocess
import sys

import pytest

from fabulist.data import prompts as pr
from fabulist.records import dumps

KEEP = '{"prompt_hash": "kept", "fable": "an earlier fable"}\n'


def fabulist(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fabulist.cli", *args], capture_output=True, text=True, timeout=120
    )


def assert_one_line_error(result, expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(dumps(r) + "\n" for r in pr.sample(3, seed=1, variants={"full": 1.0})))
    return path


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "fables.jsonl"
    path.write_text(KEEP)
    return path


def test_missing_prompts_file(tmp_path, out):
    result = fabulist("data", "generate", "--prompts", str(tmp_path / "nope.jsonl"), "-o", str(out))
    assert_one_line_error(result, f"error: {tmp_path / 'nope.jsonl'}: file not found")
    assert out.read_text() == KEEP


def test_malformed_prompts_line_is_named(prompts_file, out):
    text = prompts_file.read_text().splitlines()
    prompts_file.write_text(f"{text[0]}\n{text[1][:30]}\n{text[2]}\n")
    result = fabulist("data", "generate", "--prompts", str(prompts_file), "-o", str(out))
    assert_one_line_error(result, f"{prompts_file}:2: not valid JSON")
    assert out.read_text() == KEEP


def test_unknown_element_in_prompts(prompts_file, out):
    text = prompts_file.read_text().splitlines()
    first = text[0].replace('"character":"', '"character":"dragon-')
    prompts_file.write_text("\n".join([text[1], first, text[2]]) + "\n")
    result = fabulist("data", "generate", "--prompts", str(prompts_file), "-o", str(out))
    assert_one_line_error(result, f"{prompts_file}:2: unknown character 'dragon-")
    assert out.read_text() == KEEP


def test_corrupt_existing_output_is_refused_not_rewritten(prompts_file, tmp_path):
    out = tmp_path / "fables.jsonl"
    bad = 'not json at all\n{"prompt_hash": "a", "fable": "x"}\n'
    out.write_text(bad)
    result = fabulist("data", "generate", "--prompts", str(prompts_file), "-o", str(out))
    assert_one_line_error(result, f"{out}:1: not valid JSON")
    assert out.read_text() == bad


def test_count_larger_than_the_space(out):
    fixed = {"character": "fox", "trait": "brave", "setting": "forest", "conflict": "sharing-food",
             "resolution": "reward"}  # fmt: skip
    size = pr.Space.build("train", fixed).size
    args = [arg for kind, value in fixed.items() for arg in ("--fix", f"{kind}={value}")]
    result = fabulist("data", "prompts", "--count", str(size + 1), *args, "-o", str(out))
    assert_one_line_error(result, f"error: count {size + 1:,} is larger than the {size:,} combinations")
    assert out.read_text() == KEEP


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shard", "2/2"], "error: bad shard '2/2': need 0 <= i < n"),
        (["--shard", "half"], "error: bad shard 'half': expected i/n"),
        (["--fix", "character=unicorn-king"], "error: unknown character 'unicorn-king'"),
        (["--fix", "colour=red"], "error: unknown element kind 'colour'"),
        (["--variants", "full=1,poem=1"], "error: unknown variant 'poem'"),
    ],
)
def test_bad_prompt_options(out, args, expected):
    result = fabulist("data", "prompts", "--count", "5", *args, "-o", str(out))
    assert_one_line_error(result, expected)
    assert out.read_text() == KEEP


def test_usage_errors_are_short(out):
    result = fabulist("data", "prompts", "--count", "many", "-o", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--count' / '-n': 'many' is not a valid integer" in result.stderr
