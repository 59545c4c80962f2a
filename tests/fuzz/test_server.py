"""A misbehaving OpenAI-compatible server: one bad reply is one failed request, never a crashed run.

hypothesis picks a few of the fault server's behaviours (a `choices` that is not a list, a choice that is
not an object, an unparseable Retry-After, an echoed key, 5xx, malformed JSON, empty and cut replies, a
slow drip; for the judge also NaN, Infinity and 5,000 nested arrays) for the prompts of one run, beside a
clean prompt. The contract: no traceback, exit 0 with the clean prompt's fable (or grade) written, the
faulty ones recorded as errors, and the sentinel key nowhere on disk.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from fabulist.cli import main
from fabulist.data import prompts as pr
from fabulist.records import dumps
from tests.data.fault_server import FaultServer
from tests.eval.judge_server import JudgeServer
from tests.fuzz.conftest import ATTEMPTS, FUZZ, SURVEY, VIOLATIONS, key_on_disk

pytestmark = pytest.mark.integration

TEACHER_FAULTS = ["notlistx1", "notlistx9", "choiceintx1", "choiceintx9", "badwaitx1", "badwaitx9",
                  "echo401", "echo400", "echokey", "500x1", "malformedx1", "empty", "length", "negusage",
                  "drip", "timeoutx1"]  # fmt: skip
JUDGE_TAGS = ["[[judge:nan]]", "[[judge:infinity]]", "[[judge:deep]]", "[[judge:echokey]]",
              "[[judge:garbage]]", "[[fault:notlistx1]]", "[[fault:choiceintx9]]", "[[fault:badwaitx1]]",
              "[[fault:echo401]]"]  # fmt: skip
CLIENT = ["--timeout", "0.5", "--max-retries", "1", "--backoff", "0.01", "--concurrency", "2"]


def survives(command: str, args: list[str], sandbox, written=None):
    """The run ends without a traceback, exit 0, no `error:` line, the key nowhere on disk, and `written()`
    (the clean prompt's output) holds (FUZZ_SURVEY=1: a violation is counted instead)."""
    ATTEMPTS[command] += 1
    try:
        result = _survives(command, args, sandbox)
        if written is not None:
            written(result)
    except AssertionError:
        if not SURVEY:
            raise
        VIOLATIONS[command] += 1


def _survives(command: str, args: list[str], sandbox):
    """The run ends without a traceback, exit 0, no `error:` line, and the key nowhere on disk."""
    result = CliRunner().invoke(main, args)
    shown = f"fabulist {' '.join(args)}\nstdout: {result.stdout[-600:]}\nstderr: {result.stderr[-600:]}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}: {shown}"
    )
    assert result.exit_code == 0, shown
    assert "error:" not in result.stderr and "Traceback" not in result.stderr, shown
    assert not key_on_disk(sandbox), f"the API key reached disk: {key_on_disk(sandbox)}"
    return result


@pytest.fixture(scope="module")
def teacher_server():
    with FaultServer(timeout_delay=1.0, drip_interval=0.05) as server:
        yield server


def test_teacher_faults_are_per_prompt(fresh, teacher_server):
    @FUZZ
    @given(st.lists(st.sampled_from(TEACHER_FAULTS), min_size=1, max_size=3))
    def check(faults):
        sandbox = fresh()
        records = list(pr.sample(len(faults) + 1, seed=1, variants={"full": 1.0}))
        for record, fault in zip(records, faults, strict=False):  # the last prompt stays clean
            record["prompt"] = f"[[fault:{fault}]]{record['prompt']}"
        prompts = sandbox.file("prompts.jsonl", "".join(dumps(r) + "\n" for r in records))
        out = sandbox.root / "out.jsonl"
        args = ["data", "generate", "--prompts", prompts, "-o", str(out), "--model", "m", "--base-url",
                teacher_server.base_url, "--price-in", "0", "--price-out", "0", *CLIENT]  # fmt: skip

        def clean_prompt_written(_):
            written = [json.loads(line) for line in out.read_text().splitlines()]
            assert records[-1]["prompt_hash"] in {r["prompt_hash"] for r in written}

        survives("data generate (server)", args, sandbox.root, clean_prompt_written)

    check()


def test_judge_faults_are_per_grade(fresh):
    from fabulist.eval import evalset

    prompts = evalset.load()

    with JudgeServer() as server:

        @FUZZ
        @given(st.lists(st.sampled_from(JUDGE_TAGS), min_size=1, max_size=3))
        def check(tags):
            sandbox = fresh()
            texts = [f"A fox shared. {tag}\n\nMoral: Share." for tag in tags] + [
                "A fox shared.\n\nMoral: Share."
            ]
            lines = [{"prompt_id": prompts[i].id, "sample": 0, "text": t} for i, t in enumerate(texts)]
            sandbox.file("run/completions.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
            run_dir = str(sandbox.root / "run")
            args = ["eval", "judge", run_dir, "--judge-base-url", server.base_url, "--judge-model", "j"]

            def clean_story_graded(result):
                graded = re.search(r"judge j: (\d+) graded", result.stderr)
                assert graded and int(graded.group(1)) >= 1, result.stderr  # the clean story at least

            survives("eval judge (server)", [*args, *CLIENT], sandbox.root, clean_story_graded)

        check()
