"""Bad option values, command by command: each must be one `error:` line and a non-zero exit.

For every command a table maps each option to a strategy of values that are wrong for it (not a number,
NaN/inf, below its range, an unknown name, text that is not UTF-8); hypothesis picks an option and a value
per example, on top of arguments that are otherwise valid and cheap, so a value the command wrongly
accepts shows up as an exit 0 (or as real work that the contract check then reports).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabulist.data import prompts as pr
from fabulist.records import dumps
from tests.fuzz.conftest import FUZZ, eval_run_args, run

UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: every connection is refused at once
# A path that exists but is not a regular file (a socket in the sandbox: like /dev/null, it cannot be
# written as a file, and code that renames over it destroys only the sandbox's copy, never the machine's).
SPECIAL = "{special}"


def _not(parse):
    def bad(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return True
        return False

    return bad


# Text a user could type (no NUL: a real argv cannot hold one), including bytes that are not UTF-8.
TYPED = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=10)
NOT_UTF8 = (
    st.binary(min_size=1, max_size=6)
    .map(lambda b: b"\xff" + b)
    .map(lambda b: b.decode("utf-8", "surrogateescape"))
)
NOT_INT = st.one_of(st.sampled_from(["", "x", "1.5", "nan", "1e3", "0x10", "--"]), TYPED.filter(_not(int)))
NOT_FLOAT = st.one_of(st.sampled_from(["", "x", "1,5", "--"]), TYPED.filter(_not(float)))
NOT_FINITE = st.one_of(st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"]), NOT_FLOAT)
BELOW_ONE = st.one_of(st.integers(max_value=0).map(str), NOT_INT)
NEGATIVE = st.one_of(st.integers(max_value=-1).map(str), NOT_INT)
SEED = st.one_of(NEGATIVE, st.integers(min_value=2**32).map(str))
NEGATIVE_FLOAT = st.one_of(st.floats(max_value=-1e-6, allow_infinity=False).map(repr), NOT_FINITE)
POSITIVE_FLOAT = st.one_of(st.floats(max_value=0.0, allow_infinity=False).map(repr), NOT_FINITE)
FRACTION = st.one_of(st.floats(max_value=0.0).map(repr), st.floats(min_value=1.0).map(repr), NOT_FINITE)
UNIT = st.one_of(st.floats(max_value=-1e-6).map(repr), st.floats(min_value=1.0001).map(repr), NOT_FINITE)
NAME = st.one_of(st.sampled_from(["", "nope", "x y", "int3"]), NOT_UTF8)


def _prompts(sandbox) -> str:
    return sandbox.file("prompts.jsonl", "".join(dumps(r) + "\n" for r in pr.sample(2, seed=3)))


def _fables(sandbox) -> str:
    rows = [
        {"prompt_hash": f"h{i}", "prompt": "p", "fable": f"A fox {i} shared.\n\nMoral: Share."}
        for i in range(3)
    ]
    return sandbox.file("fables.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def _run_dir(sandbox, name: str = "run") -> str:
    from fabulist.eval import evalset

    first = evalset.load()[0]
    line = json.dumps({"prompt_id": first.id, "sample": 0, "text": "A fox shared.\n\nMoral: Share."})
    sandbox.file(f"{name}/completions.jsonl", line + "\n")
    return str(sandbox.root / name)


# command -> (base arguments given a sandbox, outputs, {option: strategy of bad values})
COMMANDS = {
    "data prompts": (
        lambda s: ["data", "prompts", "-n", "3", "-o", str(s.root / "out.jsonl")],
        ("out",),
        {
            "--count": BELOW_ONE,
            "--seed": SEED,
            "--region": NAME,
            "--shard": st.sampled_from(["x", "1/0", "2/1", "-1/2", "a/b", "1/2/3", "", "0/-1"]),
            "--variants": st.sampled_from(
                ["full=x", "nope=1", "", "full=-1", "full=nan", "full=inf", "full=0", "="]
            ),
            "--fix": st.sampled_from(["x", "character=", "dragon=fox", "character=nope", "=fox"]),
            "-o": st.sampled_from(["", "/proc/version", SPECIAL, "/proc/self"]),
        },
    ),
    "data generate": (
        lambda s: [
            "data",
            "generate",
            "--prompts",
            _prompts(s),
            "-o",
            str(s.root / "out.jsonl"),
            "--model",
            "m",
            "--base-url",
            UNREACHABLE,
            "--price-in",
            "0",
            "--price-out",
            "0",
            "--max-retries",
            "0",
        ],
        ("out",),
        {
            "--concurrency": BELOW_ONE,
            "--timeout": POSITIVE_FLOAT,
            "--max-retries": NEGATIVE,
            "--backoff": NEGATIVE_FLOAT,
            "--temperature": NEGATIVE_FLOAT,
            "--top-p": UNIT,
            "--max-tokens": BELOW_ONE,
            "--seed": SEED,
            "--max-cost": NEGATIVE_FLOAT,
            "--price-in": NEGATIVE_FLOAT,
            "--limit": BELOW_ONE,
            "--teacher": NAME,
            "--base-url": st.sampled_from(["", "nope", "http://", "ftp://x/v1", "http://[::1"]),
        },
    ),
    "data stats": (
        lambda s: ["data", "stats", _fables(s)],
        ("plot",),
        {"--near-threshold": UNIT, "--plot": st.sampled_from(["/proc/version", SPECIAL, "/proc/self"])},
    ),
    "data split": (
        lambda s: ["data", "split", _fables(s), "--out", str(s.root / "split")],
        ("split",),
        {"--valid-fraction": FRACTION, "--seed": SEED, "--near-threshold": UNIT, "--safety": NAME},
    ),
    "generate": (
        lambda s: ["generate", "--max-new-tokens", "4", "--no-stream", "--character", "fox"],
        (),
        {
            "-n": BELOW_ONE,
            "--top-k": NEGATIVE,
            "--max-new-tokens": BELOW_ONE,
            "--seed": SEED,
            "--threads": BELOW_ONE,
            "--stop": st.just(""),
            "--temperature": NEGATIVE_FLOAT,
            "--top-p": UNIT,
            "--repetition-penalty": POSITIVE_FLOAT,
            "--quant": NAME,
            "--format": NAME,
            "--model": NAME,
            "--moral": st.sampled_from(["x\nMoral: forged", "<|endoftext|>", "a<|story|>b"]),
        },
    ),
    "eval quality": (
        lambda s: ["eval", "quality", "--model", "fable-5m", "-n", "1", "--max-new-tokens", "3"],
        (),
        {
            "-n": BELOW_ONE,
            "--max-new-tokens": BELOW_ONE,
            "--seed": SEED,
            "--temperature": NEGATIVE_FLOAT,
            "--top-p": UNIT,
            "--quant": st.sampled_from(["q3", ",", "int4,x", " "]),
            "--format": NAME,
        },
    ),
    "eval run": (
        lambda s: eval_run_args("fable-5m", str(s.root / "out")),
        ("out",),
        {
            "-n": BELOW_ONE,
            "--max-new-tokens": BELOW_ONE,
            "--limit": BELOW_ONE,
            "--seed": SEED,
            "--threads": BELOW_ONE,
            "--heldout-texts": BELOW_ONE,
            "--temperature": NEGATIVE_FLOAT,
            "--top-p": UNIT,
            "--quant": NAME,
            "--format": NAME,
            "--timeout": POSITIVE_FLOAT,
            "--concurrency": BELOW_ONE,
            "--max-retries": NEGATIVE,
            "--backoff": NEGATIVE_FLOAT,
        },
    ),
    "eval judge": (
        lambda s: ["eval", "judge", _run_dir(s), "--judge-base-url", UNREACHABLE, "--max-retries", "0"],
        ("run",),
        {
            "--seed": SEED,
            "--timeout": POSITIVE_FLOAT,
            "--concurrency": BELOW_ONE,
            "--max-retries": NEGATIVE,
            "--backoff": NEGATIVE_FLOAT,
            "--judge-cache": st.sampled_from(["/proc/version", SPECIAL]),
        },
    ),
    "eval compare": (
        lambda s: ["eval", "compare", _run_dir(s, "a"), _run_dir(s, "b"), "--out", str(s.root / "out")],
        ("out",),
        {"--margin": NEGATIVE_FLOAT},
    ),
    "bench run": (
        lambda s: [
            "bench",
            "run",
            "--out",
            str(s.root / "out"),
            "--work",
            str(s.root / "work"),
            "--presets",
            "tiny",
            "--rows",
            "ours onnx int4",
        ],
        ("out", "work"),
        {
            "--threads": st.one_of(st.sampled_from(["a,b", "0", "-1", "1,x", ",", " ", "1.5"]), NOT_INT),
            "--repeats": BELOW_ONE,
            "--rows": st.sampled_from(["nope", ",x"]),
            "--presets": NAME,
        },
    ),
    "bench fit": (
        lambda s: ["bench", "fit", "--results", str(s.root / "none.json")],
        (),
        {
            "--budget": st.one_of(st.sampled_from(["", "x", "-1GB", "1XB", "nanGB", "0", "0GB"]), NOT_UTF8),
            "--context": BELOW_ONE,
        },
    ),
    "export": (
        lambda s: ["export", s.model(), "--no-validate"],
        ("model",),
        {
            "--memory-budget": st.sampled_from(["", "x", "-1GB", "1XB", "0"]),
            "--context": BELOW_ONE,
            "--format": NAME,
            "--quant": NAME,
        },
    ),
    "models pack": (
        lambda s: [
            "models",
            "pack",
            "fable-5m",
            "--quality",
            s.file("q.json", "{}"),
            "--reproduce",
            s.file("r.sh", "echo"),
            "--dest",
            str(s.root / "dest"),
            "--name",
            "x",
        ],
        ("dest",),
        {"--name": st.sampled_from(["", ".", "..", "a/b", "../x", "./../victim", "x\ny"])},
    ),
    "train": (
        lambda s: [
            "train",
            "--data",
            _fables(s),
            "--out",
            str(s.root / "out"),
            "--max-steps",
            "1",
            "--preset",
            "fable-1m",
            "--device",
            "cpu",
        ],
        ("out",),
        {
            "--vocab-size": BELOW_ONE,
            "--context": BELOW_ONE,
            "--batch-size": BELOW_ONE,
            "--grad-accum": BELOW_ONE,
            "--max-steps": BELOW_ONE,
            "--epochs": POSITIVE_FLOAT,
            "--lr": POSITIVE_FLOAT,
            "--seed": SEED,
            "--preset": NAME,
            "--shape": st.sampled_from(["", "1,2", "a,b,c,d,e", "0,1,1,1,1", "64,2,3,1,64"]),
        },
    ),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_option_values_are_one_line(command, fresh):
    base, outputs, options = COMMANDS[command]

    @FUZZ
    @given(st.data())
    def check(data):
        sandbox = fresh()
        option = data.draw(st.sampled_from(sorted(options)), label="option")
        value = data.draw(options[option], label="value").replace(SPECIAL, sandbox.special())
        run(command, [*base(sandbox), option, value], sandbox.root, outputs)

    check()
