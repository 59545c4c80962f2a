"""`fabulist bench fit`: the largest preset and context per format under a budget, and the estimate
against measured peak RSS."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fabulist.bench import fit
from fabulist.cli import main
from fabulist.export import plan as pl
from fabulist.train import presets


def _row(rows, fmt, quant):
    return next(r for r in rows if (r["format"], r["quant"]) == (fmt, quant))


def test_six_gigabytes_hold_the_largest_preset_in_every_format():
    rows = fit.plan_fit("6GB")
    assert len(rows) == sum(len(q) for q in pl.PLAN["all"].values())
    for r in rows:
        assert r["preset"] == "mobilellm-350m" and r["total"] <= 6e9 and r["context"] == 2048
        assert r["longest_context"] > 2048


def test_a_small_budget_picks_smaller_presets_for_wider_weights():
    rows = fit.plan_fit("300MB", context=512)
    order = list(presets.load())
    fp32, q4 = _row(rows, "onnx", "fp32"), _row(rows, "gguf", "q4_0")
    assert order.index(fp32["preset"]) < order.index(q4["preset"])
    for r in (fp32, q4):
        assert r["total"] <= 300e6
        bigger = order[order.index(r["preset"]) + 1]
        est = fit.estimate(
            presets.get(bigger), r["format"], r["quant"], 512, int(300e6), pl.OVERHEAD_BYTES, 4096
        )
        assert not est["fits"]


def test_longest_context_is_where_the_kv_cache_fills_the_budget():
    p = presets.get("fable-5m")
    est = fit.estimate(p, "gguf", "q4_0", 512, int(1e9), pl.OVERHEAD_BYTES, 4096)
    at = fit.estimate(p, "gguf", "q4_0", est["longest_context"], int(1e9), pl.OVERHEAD_BYTES, 4096)
    beyond = fit.estimate(p, "gguf", "q4_0", est["longest_context"] + 1, int(1e9), pl.OVERHEAD_BYTES, 4096)
    assert at["fits"] and not beyond["fits"]


def test_nothing_fits_a_tiny_budget():
    rows = fit.plan_fit("10MB")  # one row per format x quantization, none with a preset that fits
    assert len(rows) == 7 and all("preset" not in r for r in rows)


RESULTS = {  # one measured size: 80 MB weights at context 1024, RSS 400 MB
    "sizes": {"s": {"config": {**presets.get("fable-5m").llama_config(4096, fit.SPECIAL),
                               "max_position_embeddings": 1024}}},
    "rows": [{"size": "s", "name": "ours gguf q4_0", "artifact": "gguf/model-q4_0.gguf", "threads": 1,
              "bytes": 80 * 2**20, "peak_rss_mb": 400.0},
             {"size": "s", "name": "pytorch fp32", "artifact": "model.safetensors", "threads": 1,
              "bytes": 80 * 2**20, "peak_rss_mb": 900.0}],
}  # fmt: skip


def test_estimate_against_measured_and_the_measured_overhead():
    (m,) = fit.measured_vs_estimate(RESULTS)  # PyTorch has no memory format in the planner
    est = pl.memory(RESULTS["sizes"]["s"]["config"], "gguf", 80 * 2**20, 1024, 0)
    assert m["estimate_mb"] == pytest.approx(est["total"] / 2**20)
    assert m["error_pct"] == pytest.approx(100 * (est["total"] / 2**20 - 400) / 400)
    overhead = fit.measured_overhead({**RESULTS, "fit": [m]})
    assert overhead["gguf"] == int(400 * 2**20 - 80 * 2**20 - est["kv_cache"] - 8 * 2**20)
    assert overhead["onnx"] == pl.OVERHEAD_BYTES  # not measured: the planner's


def test_cli_fit_reads_measured_results(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**RESULTS, "fit": fit.measured_vs_estimate(RESULTS)}))
    res = CliRunner().invoke(main, ["bench", "fit", "--budget", "6GB", "--results", str(path)])
    assert res.exit_code == 0, res.output
    assert f"measured in {path}" in res.output and "mobilellm-350m" in res.output
    assert "ours gguf q4_0" in res.output and "%" in res.output
    res = CliRunner().invoke(main, ["bench", "fit", "--budget", "1GB", "--context", "512", "--json",
                                    "--results", str(tmp_path / "none.json")])  # fmt: skip
    assert res.exit_code == 0 and json.loads(res.output)["measured"] == []


def test_cli_fit_bad_budget_is_one_line():
    res = CliRunner().invoke(main, ["bench", "fit", "--budget", "six"])
    assert res.exit_code == 1 and res.output.strip().startswith("error: bad memory budget")


@pytest.mark.slow
@pytest.mark.integration
def test_cli_fit_on_a_quick_run(quick_run):
    _, out = quick_run
    res = CliRunner().invoke(main, ["bench", "fit", "--results", str(out / "results.json")])
    assert res.exit_code == 0, res.output
    assert "ours onnx int4" in res.output and "ours gguf q4_0" in res.output


@pytest.mark.slow
def test_fit_from_a_wheel_reads_the_results_it_ships(tmp_path, installed_wheel):
    """Outside the repository, with no --results, `bench fit` reads the committed run from the package,
    not a path under the working directory."""
    _, site = installed_wheel
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-m", "fabulist.cli", "bench", "fit"], capture_output=True, text=True,
                       env=env, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"measured in {site}/fabulist/bench/results/results.json" in r.stdout
