"""Full and read-only destinations for every writing command: one line, and nothing already written lost.

A real full disk (ENOSPC) and a real read-only file system (EROFS) are small tmpfs mounts, which even root
cannot write past (file permission bits would not stop root, the tests' user in CI). Mounting needs
CAP_SYS_ADMIN: where it is refused, the tests are skipped with that reason. Each destination folder holds
an earlier output (`keep.jsonl`), which must come out byte for byte the same. The error may come after
the work (a full disk is found when writing), so status lines printed before it are allowed; the error
itself is one line, the last.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from fabulist.data import prompts as pr
from fabulist.records import dumps
from tests.fuzz.conftest import EMBEDDED, Sandbox, eval_run_args, run

KEEP = '{"prompt_hash": "kept", "prompt": "p", "fable": "An earlier fable.\\n\\nMoral: Keep it."}\n'


@contextlib.contextmanager
def tmpfs(size: str, read_only: bool):
    folder = Path(tempfile.mkdtemp(prefix="fuzz-fs-"))
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mount.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.decode().strip()[:80]}): needs CAP_SYS_ADMIN")
    try:
        (folder / "keep.jsonl").write_text(KEEP)
        (folder / "fables.jsonl").write_text(KEEP)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        else:  # fill it: the next block anyone asks for is refused with ENOSPC
            with contextlib.suppress(OSError), (folder / "filler").open("wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        yield folder
    finally:
        # lazily: a file the failed command left open in this process must not keep the mount busy
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
        folder.rmdir()


def _inputs(s: Sandbox) -> dict[str, str]:
    from fabulist.eval import evalset

    rows = [
        {"prompt_hash": f"h{i}", "prompt": "p", "fable": f"A fox {i} shared.\n\nMoral: Share."}
        for i in range(4)
    ]
    first = evalset.load()[0]
    completion = json.dumps({"prompt_id": first.id, "sample": 0, "text": "A fox shared.\n\nMoral: Share."})
    s.file("a/completions.jsonl", completion + "\n")
    s.file("b/completions.jsonl", completion + "\n")
    return {
        "prompts": s.file("prompts.jsonl", "".join(dumps(r) + "\n" for r in pr.sample(2, seed=9))),
        "fables": s.file("fables.jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
        "tf1": s.file(
            "tf1.jsonl", "".join(json.dumps({"prompt": "p", "fable": r["fable"]}) + "\n" for r in rows)
        ),
        "quality": s.file("quality.json", json.dumps(_quality())),
        "reproduce": str(EMBEDDED / "reproduce.sh"),
    }


def _quality() -> dict:
    """`eval quality --json` output: the shipped model's summaries, with (no) sample rows."""
    shipped = json.loads((EMBEDDED / "quality.json").read_text())
    return {**shipped, "results": {k: {**v, "rows": []} for k, v in shipped["results"].items()}}


# command -> args given the inputs and the destination folder
WRITERS = {
    "data prompts": lambda i, d: ["data", "prompts", "-n", "5", "-o", f"{d}/p.jsonl"],
    "data generate": lambda i, d: [
        "data",
        "generate",
        "--prompts",
        i["prompts"],
        "-o",
        f"{d}/fables.jsonl",
        "--teacher",
        "procedural",
    ],
    "data stats": lambda i, d: ["data", "stats", i["fables"], "--plot", f"{d}/lengths.png"],
    "data split": lambda i, d: ["data", "split", i["fables"], "--out", f"{d}/split"],
    "data export-tf1": lambda i, d: ["data", "export-tf1", i["fables"], "-o", f"{d}/tf1.jsonl"],
    "data import": lambda i, d: ["data", "import", i["tf1"], "-o", f"{d}/imported.jsonl"],
    "eval quality": lambda i, d: [
        "eval",
        "quality",
        "-n",
        "1",
        "--max-new-tokens",
        "3",
        "--model",
        "fable-5m",
        "--json",
        f"{d}/quality.json",
    ],
    "eval run": lambda i, d: eval_run_args(str(EMBEDDED), f"{d}/run"),
    "eval compare": lambda i, d: ["eval", "compare", i["a"], i["b"], "--out", f"{d}/compare"],
    "eval judge": lambda i, d: [
        "eval",
        "judge",
        i["a"],
        "--judge-base-url",
        "http://127.0.0.1:9/v1",
        "--judge-cache",
        f"{d}/cache.sqlite",
    ],
    "models pack": lambda i, d: [
        "models",
        "pack",
        str(EMBEDDED),
        "--name",
        "x",
        "--quality",
        i["quality"],
        "--reproduce",
        i["reproduce"],
        "--dest",
        f"{d}/models",
    ],
}


@pytest.mark.parametrize("read_only", [False, True], ids=["full", "read-only"])
@pytest.mark.parametrize("command", list(WRITERS))
def test_full_or_read_only_destination_is_one_line(command, read_only, fresh):
    sandbox = fresh()
    inputs = {**_inputs(sandbox), "a": str(sandbox.root / "a"), "b": str(sandbox.root / "b")}
    with tmpfs("64k", read_only) as dest:
        before = {p.name: p.read_bytes() for p in dest.iterdir() if p.name != "filler"}
        # compare rebuilds the reports of the runs it reads (their report.*) before writing its own
        outputs = ("a/report", "b/report") if command == "eval compare" else ()
        result = run(command, WRITERS[command](inputs, dest), sandbox.root, outputs, late=True)
        after = {p.name: p.read_bytes() for p in dest.iterdir() if p.name in before}
        kind = "read-only file system" if read_only else "no space left"
    if result is None:  # FUZZ_SURVEY=1 counted a violation
        return
    assert kind in result.stderr, result.stderr
    assert after == before  # the earlier outputs (keep.jsonl, the fables file appended to) are intact
