"""`fabulist eval run / judge / report / compare` end to end on a tiny exported model."""

import json

import pytest
from click.testing import CliRunner

from fabulist.cli import main
from fabulist.eval import generate
from tests.eval.judge_server import JudgeServer

pytestmark = pytest.mark.slow


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def eval_run(model, out, *extra):
    return cli("eval", "run", "--model", model, "--limit", 3, "-n", 2, "--max-new-tokens", 8,
               "--threads", 1, "--out", out, *extra)  # fmt: skip


def test_run_resume_report_compare_and_judge(onnx_model, tmp_path, monkeypatch):
    a, b = tmp_path / "fp32", tmp_path / "int4"
    first = eval_run(onnx_model, a, "--quant", "fp32")
    assert first.exit_code == 0, first.output
    assert "No judge configured" in first.output and "distinct_2" in first.output
    rows = generate.load_completions(a)
    assert len(rows) == 6 and {r["prompt_id"] for r in rows} == {"e01", "e02", "e03"}
    assert rows[0]["sampling"]["temperature"] == 1.0 and rows[0]["sampling"]["max_new_tokens"] == 8
    assert rows[2]["sampling"]["seed"] == 1  # prompt i samples with seed * 100_003 + i
    before = (a / "completions.jsonl").read_text()
    again = eval_run(onnx_model, a, "--quant", "fp32")
    assert "0 completions written, 3 prompts already done" in again.output
    assert (a / "completions.jsonl").read_text() == before
    other = eval_run(onnx_model, a, "--quant", "fp32", "--temperature", "0.5")
    assert other.exit_code == 1 and "other settings (temperature)" in other.output
    assert eval_run(onnx_model, b, "--quant", "int4").exit_code == 0
    report = json.loads((a / "report.json").read_text())
    assert report["judge"] is None and report["offline"]["fables"] == 6 and (a / "report.png").stat().st_size
    assert set(report["per_prompt"]) == {"e01", "e02", "e03"}
    # judge-free completeness: held-out perplexity, KL and top-1 against the fp32 PyTorch model
    fp32, int4 = report["heldout"], json.loads((b / "report.json").read_text())["heldout"]
    assert fp32["reference"] == "PyTorch fp32 checkpoint" and fp32["kld"] < 1e-6 and fp32["top1"] > 0.99
    assert int4["kld"] > fp32["kld"] and int4["ref_ppl"] == pytest.approx(fp32["ref_ppl"])
    assert "| KL divergence (nats/token) |" in first.output and "held-out perplexity" in first.output

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge")
    with JudgeServer() as server:
        for run_dir in (a, b):
            judged = cli("eval", "judge", run_dir, "--judge-base-url", server.base_url, "--judge-model", "tj")
            assert judged.exit_code == 0, judged.output
        sent = len(server.bodies)
        rerun = cli("eval", "judge", a, "--judge-base-url", server.base_url, "--judge-model", "tj")
        assert len(server.bodies) == sent == 12 and "6 cache hits" in rerun.output
    report = json.loads((a / "report.json").read_text())
    assert report["judge"]["scores"]["overall"]["mean"] == pytest.approx(6.5)
    assert report["judge"]["age_groups"]["C"] == 6 and "sk-test-judge" not in (a / "judge.json").read_text()

    compared = cli("eval", "compare", a, b, "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.output
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["prompts"] == 3 and result["verdict"] == "no measurable loss"  # the fake judge grades alike
    assert "| overall |" in compared.output and result["metrics"]["overall"]["mean"] == 0.0
    assert (
        result["heldout"]["b"]["kld"] == int4["kld"]
        and "| KL divergence vs fp32 PyTorch |" in compared.output
    )


def test_torch_checkpoint_runs_through_the_same_sampler(onnx_model, tmp_path):
    out = tmp_path / "torch"
    result = cli("eval", "run", "--model", onnx_model, "--format", "torch", "--limit", 1, "-n", 2,
                 "--max-new-tokens", 6, "--temperature", 0, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = generate.load_completions(out)
    assert len(rows) == 2 and rows[0]["text"] == rows[1]["text"]  # greedy: both samples alike
