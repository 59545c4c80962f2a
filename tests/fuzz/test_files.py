"""Corrupt input files, consumer by consumer: each must be one `error:` line naming what is wrong.

Bytes that are binary or not UTF-8, JSON of the wrong shape (a list, a number, deep nesting, NaN), and
records whose required fields have the wrong type, fed to every command that reads them: a model folder's
config.json, prompts and fables files, a quality file, benchmark results, a ladder config and the files of
an evaluation run.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabulist.data import prompts as pr
from fabulist.records import dumps
from tests.fuzz.conftest import EMBEDDED, FUZZ, eval_run_args, run

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
CORRUPT = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=1, max_size=16).map(lambda b: b"\xff\xfe" + b),  # never UTF-8
    JSON.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [b"", b"\n", b"[" * 5000, b"{" * 5000, b'{"a": NaN}', b"{", b"\x00" * 10, b"\xef\xbb\xbf{}"]
    ),
)


def wrong_type(value, null_ok: bool = False):
    """A JSON value of another type than `value` (bool counts apart from int; null too unless null_ok)."""
    kind = type(value)

    def other(v) -> bool:
        return type(v) is not kind and not (kind is float and type(v) is int) and not (null_ok and v is None)

    return JSON.filter(other)


def mutated(record: dict, fields: tuple[str, ...], optional: tuple[str, ...] = ()):
    """`record` with one of `fields` set to a value of the wrong type, or removed (unless optional)."""
    removed = st.sampled_from(fields).map(lambda f: {k: v for k, v in record.items() if k != f})
    retyped = st.sampled_from(fields + optional).flatmap(
        lambda f: wrong_type(record[f], null_ok=f in optional).map(lambda v: {**record, f: v})
    )
    return st.one_of(retyped, removed)


CONFIG = json.loads((EMBEDDED / "config.json").read_text())
SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings")  # fmt: skip
OPTIONAL = ("num_key_value_heads", "head_dim")  # Hugging Face derives them when absent
BAD_CONFIG = st.one_of(
    CORRUPT,
    mutated(CONFIG, SIZES, OPTIONAL).map(lambda c: json.dumps(c).encode()),
    st.sampled_from(SIZES + OPTIONAL).flatmap(
        lambda k: st.integers(max_value=0).map(lambda v: json.dumps({**CONFIG, k: v}).encode())
    ),
)
PROMPT = next(iter(pr.sample(1, seed=5)))
FABLE = {"prompt_hash": "h1", "prompt": "p", "fable": "A fox shared.\n\nMoral: Share.", "llm_name": "x"}


def jsonl(records_strategy):
    """A JSONL file: a valid first record, then the bad one (so the error names line 2)."""
    return records_strategy.map(lambda r: (json.dumps(FABLE) + "\n" + json.dumps(r) + "\n").encode())


BAD_PROMPTS = st.one_of(
    CORRUPT,
    mutated(PROMPT, ("prompt_hash", "prompt", "variant", "elements")).map(lambda r: dumps(r).encode()),
)
BAD_FABLES = st.one_of(CORRUPT, jsonl(mutated(FABLE, ("fable", "prompt_hash"))))
BAD_TF1_SOURCE = st.one_of(CORRUPT, jsonl(mutated(FABLE, ("fable",))))  # TF1 export needs no prompt_hash


def _model(s, data):
    return s.model(data)


def _eval_run(s, name: str, data: bytes, file: str) -> str:
    """An evaluation run folder whose `file` holds `data` (the others valid)."""
    from fabulist.eval import evalset

    first = evalset.load()[0]
    good = json.dumps({"prompt_id": first.id, "sample": 0, "text": "A fox shared.\n\nMoral: Share."}) + "\n"
    s.file(f"{name}/completions.jsonl", good)
    s.file(f"{name}/{file}", data)
    return str(s.root / name)


# consumer -> (strategy of bad bytes, args given a sandbox and the bytes, outputs)
CONSUMERS = {
    "generate": (BAD_CONFIG, lambda s, d: ["generate", "--model", _model(s, d), "--max-new-tokens", "3"], ()),
    "generate gguf": (
        BAD_CONFIG,
        lambda s, d: ["generate", "--model", _model(s, d), "--format", "gguf", "--max-new-tokens", "3"],
        (),
    ),
    "export": (BAD_CONFIG, lambda s, d: ["export", _model(s, d), "--no-validate"], ("model",)),
    "eval quality": (
        BAD_CONFIG,
        lambda s, d: ["eval", "quality", "--model", _model(s, d), "-n", "1", "--max-new-tokens", "3"],
        (),
    ),
    "eval run": (
        BAD_CONFIG,
        lambda s, d: eval_run_args(_model(s, d), str(s.root / "out")),
        ("out",),
    ),
    "bench run": (
        BAD_CONFIG,
        lambda s, d: [
            "bench",
            "run",
            "--model",
            _model(s, d),
            "--presets",
            "",
            "--out",
            str(s.root / "out"),
            "--work",
            str(s.root / "work"),
        ],
        ("out", "work"),
    ),
    "data generate": (
        BAD_PROMPTS,
        lambda s, d: [
            "data",
            "generate",
            "--prompts",
            s.file("p.jsonl", d),
            "-o",
            str(s.root / "out.jsonl"),
            "--teacher",
            "procedural",
        ],
        ("out",),
    ),
    "data stats": (BAD_FABLES, lambda s, d: ["data", "stats", s.file("f.jsonl", d)], ()),
    "data split": (
        BAD_FABLES,
        lambda s, d: ["data", "split", s.file("f.jsonl", d), "--out", str(s.root / "out")],
        ("out",),
    ),
    "data export-tf1": (
        BAD_TF1_SOURCE,
        lambda s, d: ["data", "export-tf1", s.file("f.jsonl", d), "-o", str(s.root / "out.jsonl")],
        ("out",),
    ),
    "data import": (
        CORRUPT,
        lambda s, d: ["data", "import", s.file("f.jsonl", d), "-o", str(s.root / "out.jsonl")],
        ("out",),
    ),
    "train": (
        BAD_FABLES,
        lambda s, d: [
            "train",
            "--data",
            s.file("f.jsonl", d),
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
    ),
    "models pack": (
        st.one_of(CORRUPT, JSON.map(lambda v: json.dumps({"results": {"int4": v}}).encode())),
        lambda s, d: [
            "models",
            "pack",
            str(EMBEDDED),
            "--name",
            "x",
            "--quality",
            s.file("q.json", d),
            "--reproduce",
            s.file("r.sh", "echo"),
            "--dest",
            str(s.root / "dest"),
        ],
        ("dest",),
    ),
    "bench fit": (
        st.one_of(CORRUPT, JSON.map(lambda v: json.dumps({"fit": [v]}).encode())),
        lambda s, d: ["bench", "fit", "--results", s.file("results.json", d)],
        (),
    ),
    "ladder plan": (CORRUPT, lambda s, d: ["ladder", "plan", s.file("ladder.json", d)], ()),
    "eval report": (
        st.one_of(
            CORRUPT, jsonl(mutated({"prompt_id": "x", "sample": 0, "text": "t"}, ("prompt_id", "text")))
        ),
        lambda s, d: ["eval", "report", _eval_run(s, "run", d, "completions.jsonl")],
        ("run",),
    ),
    "eval report run.json": (
        CORRUPT,
        lambda s, d: ["eval", "report", _eval_run(s, "run", d, "run.json")],
        ("run",),
    ),
    "eval compare": (
        CORRUPT,
        lambda s, d: [
            "eval",
            "compare",
            _eval_run(s, "a", b"", "x"),
            _eval_run(s, "b", d, "completions.jsonl"),
            "--out",
            str(s.root / "out"),
        ],
        ("out",),
    ),
}


@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_corrupt_input_files_are_one_line(consumer, fresh):
    strategy, args, outputs = CONSUMERS[consumer]

    @FUZZ
    @given(strategy)
    def check(data):
        sandbox = fresh()
        run(consumer, args(sandbox, data), sandbox.root, outputs)

    check()
