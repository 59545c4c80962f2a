"""`fabulist bench run --quick` end to end, and the ratio arithmetic on its own."""

import json
import math

import pytest

from fabulist.bench import report, suite
from tests.builders import assert_plot

SPEEDS = ("tg128_tok_s", "pp128_tok_s", "pp512_tok_s")


@pytest.mark.slow  # the shared quick run: ~30 s, a dozen processes
@pytest.mark.integration
def test_quick_run_measures_every_row(quick_run):
    results, _ = quick_run
    rows = results["rows"]
    assert [r["name"] for r in rows] == list(suite.ROWS)
    for r in rows:
        assert "skipped" not in r, r
        assert r["load_s"] > 0 and r["ttft_s"] > 0 and r["peak_rss_mb"] > 20
        for key in SPEEDS:
            assert r[key] > 0 and r["spread"][key][0] <= r[key] <= r["spread"][key][1]
        assert r["bytes"] > 0 and 4 < r["bits_per_weight"] < 64
    assert results["machine"]["cores"] >= 1 and results["machine"]["tools"]["onnxruntime"]


@pytest.mark.slow  # the shared quick run: ~30 s, a dozen processes
@pytest.mark.integration
def test_quick_run_bits_per_weight_order(quick_run):
    bits = {r["name"]: r["bits_per_weight"] for r in quick_run[0]["rows"]}
    assert bits["ours gguf q4_0"] < bits["ours gguf q8_0"] < bits["ours gguf f16"] < bits["ours onnx fp32"]


@pytest.mark.slow  # the shared quick run: ~30 s, a dozen processes
@pytest.mark.integration
def test_ratios_come_from_rows_of_the_same_run(quick_run):
    results, _ = quick_run
    by_name = {r["name"]: r for r in results["rows"]}
    assert {(q["ours"], q["peer"]) for q in results["ratios"]} == set(suite.RATIOS)
    for q in results["ratios"]:
        ours, peer = by_name[q["ours"]], by_name[q["peer"]]
        assert math.isclose(q["tg128_x"], ours["tg128_tok_s"] / peer["tg128_tok_s"])
        assert math.isclose(q["ttft_x"], peer["ttft_s"] / ours["ttft_s"])


@pytest.mark.slow  # the shared quick run: ~30 s, a dozen processes
@pytest.mark.integration
def test_context_sweep_covers_the_quick_contexts(quick_run):
    results, _ = quick_run
    swept = [r for r in results["rows"] if "decode_ms_by_context" in r]
    assert {r["name"] for r in swept} == set(suite.SWEEP_ROWS)
    for r in swept:
        assert [int(c) for c in r["decode_ms_by_context"]] == [64, 256, 1024]
        assert all(ms > 0 for ms in r["decode_ms_by_context"].values())


@pytest.mark.slow  # the shared quick run: ~30 s, a dozen processes
@pytest.mark.integration
def test_quick_run_writes_json_markdown_and_plots(quick_run):
    results, out = quick_run
    assert json.loads((out / "results.json").read_text())["rows"] == results["rows"]
    md = (out / "results.md").read_text()
    for name in suite.ROWS:
        assert f"| {name} |" in md
    assert "Ours against each peer" in md and "against measured peak RSS" in md
    pivot = md.split("## decode tok/s (tg128), 1 thread(s)")[1].split("##")[0]  # rows x sizes, read first
    assert pivot.count("\n| ") == 1 + len(suite.ROWS) and "| row | tiny |" in pivot
    for png in report.PLOTS:
        assert_plot(out / png)


def test_ratios_skip_pairs_without_both_rows():
    rows = [
        {
            "size": "s",
            "threads": 1,
            "name": "ours gguf q4_0",
            "tg128_tok_s": 30.0,
            "pp128_tok_s": 90.0,
            "ttft_s": 0.5,
            "peak_rss_mb": 100.0,
        },
        {
            "size": "s",
            "threads": 1,
            "name": "llama-cpp-python q4_0",
            "tg128_tok_s": 20.0,
            "pp128_tok_s": 100.0,
            "ttft_s": 1.0,
            "peak_rss_mb": 80.0,
        },
        {
            "size": "s",
            "threads": 2,
            "name": "llama-cpp-python q4_0",
            "tg128_tok_s": 40.0,
            "pp128_tok_s": 1.0,
            "ttft_s": 1.0,
            "peak_rss_mb": 80.0,
        },
        {"size": "s", "threads": 1, "name": "ours onnx int4", "skipped": "missing"},
    ]
    (q,) = suite.ratios(rows)
    assert (q["threads"], q["tg128_x"], q["pp128_x"], q["ttft_x"], q["rss_x"]) == (1, 1.5, 0.9, 2.0, 1.25)


def test_cli_run_rejects_unknown_rows_and_missing_models(tmp_path):
    from click.testing import CliRunner

    from fabulist.cli import main

    res = CliRunner().invoke(main, ["bench", "run", "--rows", "ours onnx int4,nope"])
    assert res.exit_code == 2 and "unknown row 'nope'" in res.output
    res = CliRunner().invoke(main, ["bench", "run", "--model", str(tmp_path / "none"), "--presets", "",
                                    "--out", str(tmp_path / "out")])  # fmt: skip
    assert (
        res.exit_code == 1
        and res.output.strip() == f"error: {tmp_path / 'none'} is not a model folder (no config.json)"
    )


def test_an_interrupted_run_resumes_from_its_measured_rows(tmp_path, monkeypatch):
    """Rows are checkpointed as they are measured; a rerun with the same options measures only the rest."""
    model = tmp_path / "m"
    model.mkdir()
    sizes = {"vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
             "intermediate_size": 8, "max_position_embeddings": 32}  # fmt: skip
    (model / "config.json").write_text(json.dumps(sizes))  # the sizes a model folder's config is checked for
    monkeypatch.setattr("fabulist.export.plan.parameters", lambda config: 1000)
    monkeypatch.setattr(suite, "machine", lambda: {"cores": 2})
    monkeypatch.setattr("fabulist.bench.report.write", lambda results, out: None)
    opts = suite.Options(out=tmp_path / "out", model=model, presets=(), threads=(1,), log=False,
                         rows=("ours onnx int4", "ours gguf q4_0", "llama-cpp-python q4_0"))  # fmt: skip
    calls = []

    def measured(speed):
        return {"tg128_tok_s": speed, "ttft_s": 0.1, "peak_rss_mb": 50.0}

    def crash_on_third(model_dir, name, threads, opts):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return measured(float(len(calls))) if name != "ours gguf q4_0" else {"skipped": "failed"}

    monkeypatch.setattr(suite, "measure_row", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        suite.run_suite(opts)
    assert (opts.out / suite.PARTIAL).exists()

    calls.clear()
    monkeypatch.setattr(
        suite, "measure_row", lambda model_dir, name, threads, opts: calls.append(name) or measured(9.0)
    )
    results = suite.run_suite(opts)
    assert calls == ["ours gguf q4_0", "llama-cpp-python q4_0"]  # the skipped row is measured again
    assert results["rows"][0]["tg128_tok_s"] == 1.0 and not (opts.out / suite.PARTIAL).exists()

    opts.threads = (2,)  # other options: nothing is reused
    (opts.out / suite.PARTIAL).write_text(json.dumps({**results, "options": suite._options(opts)}))
    opts.threads = (1,)
    calls.clear()
    suite.run_suite(opts)
    assert len(calls) == 3
