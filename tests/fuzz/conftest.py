"""The fuzzing suite's contract and sandbox: every command, fed bad input, answers with one line.

    .venv/bin/pytest tests/fuzz            # under a minute on two cores; FUZZ_COUNTS=f.json writes counts
    FUZZ_RANDOM=1 FUZZ_EXAMPLES=200 .venv/bin/pytest tests/fuzz    # explore beyond CI's fixed examples

A sandbox is a fresh folder holding valid inputs (prompts, fables, a model folder whose artifacts are links
to the embedded model's, an evaluation run) that each example copies its bad input into. `run` invokes the
CLI in-process (click's CliRunner: the same code path as the console script, without a second start of
Python) and asserts the contract of issue 20:

- the exit status is not 0, and it is a deliberate exit (CliRunner re-raises nothing: an exception that
  escaped the command is a traceback);
- stderr holds exactly one line, `error: ...` (progress bars, which redraw with a carriage return, aside);
- no file in the sandbox outside the command's declared outputs changed (sha256 before and after);
- no file anywhere in the sandbox contains the sentinel API key set in OPENAI_API_KEY.

Attempts per command are counted and printed at the end of the session (and written to $FUZZ_COUNTS).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

from fabulist.cli import main

SENTINEL = "sk-sentinel-fuzz-0c4f7d1e9a"
EMBEDDED = Path(__file__).resolve().parents[2] / "runtime" / "models" / "fable-5m"
PROGRESS = re.compile(r"\r|\d+%\|")  # tqdm's redrawn bars
ATTEMPTS: Counter = Counter()
VIOLATIONS: Counter = Counter()  # FUZZ_SURVEY=1: count contract violations instead of failing on the first
SURVEY = bool(os.environ.get("FUZZ_SURVEY"))

# Reproducible in CI (derandomize), bounded in time (max_examples per test), no per-example deadline (the
# first example of a command pays for its imports).
settings.register_profile(
    "fuzz",
    derandomize=not os.environ.get("FUZZ_RANDOM"),  # FUZZ_RANDOM=1: new examples each run (exploring)
    deadline=None,
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ = settings.get_profile("fuzz")


def eval_run_args(model: str, out: str) -> list[str]:
    """The smallest `eval run` (one prompt, one completion of 3 tokens) the suites start from."""
    return ["eval", "run", "--model", model, "-n", "1", "--limit", "1", "--max-new-tokens", "3", "--out", out]


@pytest.fixture(autouse=True)
def sentinel_key(monkeypatch):
    """A sentinel key in the environment (never on disk), no OPENAI_BASE_URL: nothing reaches OpenAI."""
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def snapshot(root: Path, outputs: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under root, except the outputs (a name, its temp and lock files beside it)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel.startswith((o, f".{o}")) or f"/.{o}" in rel for o in outputs):
            continue
        if path.is_file() and not path.is_symlink():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() or path.is_symlink():
            found[rel] = "link" if path.is_symlink() else "dir"
    return found


def key_on_disk(root: Path) -> list[str]:
    needle = SENTINEL.encode()
    return [
        str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS.search(line)]


def run(command: str, args: list[str], sandbox: Path, outputs: tuple[str, ...] = (), late: bool = False):
    """`check` under the survey switch: with FUZZ_SURVEY=1 a violation is counted and the run goes on."""
    try:
        return check(command, args, sandbox, outputs, late)
    except AssertionError:
        if not SURVEY:
            raise
        VIOLATIONS[command] += 1


def check(command: str, args: list[str], sandbox: Path, outputs: tuple[str, ...] = (), late: bool = False):
    """Run `fabulist ARGS` in-process and assert the one-line-error contract (see the module docstring).

    late: the error may come after the work, so status lines the command printed to stderr before it
    (e.g. `onnx int4: <artifact>`) may precede it; the error is still one line, and the last."""
    ATTEMPTS[command] += 1
    before = snapshot(sandbox, outputs)
    result = CliRunner().invoke(main, args)
    shown = f"fabulist {' '.join(map(repr, args))}\nstdout: {result.stdout[-800:]}\nstderr: {result.stderr}"
    assert result.exit_code != 0, f"exit 0 from {shown}"
    assert isinstance(result.exception, SystemExit), f"traceback ({result.exception!r}) from {shown}"
    lines = error_lines(result.stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    if late:
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(errors) == 1, (
        f"not one error line: {shown}"
    )
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert snapshot(sandbox, outputs) == before, f"files outside {outputs} changed by {shown}"
    assert not key_on_disk(sandbox), f"the API key reached disk: {key_on_disk(sandbox)} from {shown}"
    return result


class Sandbox:
    """A temporary folder of valid inputs; `fresh()` gives a new one per hypothesis example."""

    def __init__(self, root: Path):
        self.root = root

    def file(self, name: str, data: bytes | str) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
        return str(path)

    def special(self) -> str:
        """A path that exists and is not a regular file: a Unix socket (opening it fails at once, where a
        FIFO would block)."""
        path = self.root / "special.sock"
        if not path.exists():
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(str(path))
        return str(path)

    def model(self, config: bytes | None = None, name: str = "model") -> str:
        """A model folder: links to the embedded model's files, and its own config.json (`config`)."""
        folder = self.root / name
        folder.mkdir()
        for item in EMBEDDED.iterdir():
            if item.name != "config.json":
                (folder / item.name).symlink_to(item)
        (folder / "config.json").write_bytes(
            config if config is not None else (EMBEDDED / "config.json").read_bytes()
        )
        return str(folder)


@pytest.fixture
def fresh():
    """fresh() -> a Sandbox in a new temporary folder (removed at the end of the test)."""
    made: list[str] = []

    def make() -> Sandbox:
        made.append(tempfile.mkdtemp(prefix="fuzz-"))
        return Sandbox(Path(made[-1]))

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if not ATTEMPTS:
        return
    terminalreporter.write_sep("-", "fuzz attempts per command")
    for command, n in sorted(ATTEMPTS.items()):
        terminalreporter.write_line(
            f"{command:24s}{n:>6d}" + (f"{VIOLATIONS[command]:>6d}" if SURVEY else "")
        )
    terminalreporter.write_line(f"{'total':24s}{sum(ATTEMPTS.values()):>6d}")
    if os.environ.get("FUZZ_COUNTS"):
        counts = {c: {"attempts": n, "violations": VIOLATIONS[c]} for c, n in sorted(ATTEMPTS.items())}
        Path(os.environ["FUZZ_COUNTS"]).write_text(json.dumps(counts, indent=1))
