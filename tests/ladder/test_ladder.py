"""The tiny ladder end to end: three rungs trained, exported, timed and scored for real (one of them
interrupted and resumed), a real local judge, and a rerun that retrains nothing."""

import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from fabulist.ladder import bounds, report
from fabulist.ladder import config as lc
from fabulist.ladder import rung as rg
from fabulist.ladder.run import prepare_data, run_ladder
from fabulist.records import dumps
from fabulist.train.trainer import train
from tests.builders import assert_plot, make_fables
from tests.eval.judge_server import JudgeServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """The tiny ladder in a fresh folder, its first rung stopped halfway before `fabulist ladder run`."""
    root = tmp_path_factory.mktemp("ladder")
    records = make_fables(400, seed=5)
    data, valid, out = root / "train.jsonl", root / "valid.jsonl", root / "out"
    data.write_text("".join(dumps(r) + "\n" for r in records[:340]))
    valid.write_text("".join(dumps(r) + "\n" for r in records[340:]))
    cfg = lc.load("tiny")
    first = cfg.rungs[0]
    paths = prepare_data(cfg, data, valid, out)
    half = replace(
        rg.train_config(cfg, first, paths, out / "rungs" / first.name), stop_after=cfg.steps(first) // 2
    )
    assert not train(half, progress=False)["complete"]
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-judge"}
    with JudgeServer() as server:
        cmd = [sys.executable, "-m", "fabulist.cli", "ladder", "run", "tiny", "--data", str(data),
               "--valid", str(valid), "--out", str(out), "--judge-base-url", server.base_url,
               "--judge-model", "tj"]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return cfg, data, valid, out, result.stdout


def test_report_files_and_rows(ladder):
    cfg, _, _, out, stdout = ladder
    for name in ("ladder.json", "ladder.md", *report.PLOTS):
        assert (out / name).stat().st_size > 0
    for png in report.PLOTS:
        assert_plot(out / png)
    rep = json.loads((out / "ladder.json").read_text())
    rows = rep["rows"]
    assert [r["name"] for r in rows] == [r.name for r in cfg.rungs]
    assert [r["actions"]["train"] for r in rows] == ["resumed", "trained", "trained"]
    assert "# Size ladder: tiny" in stdout and "## Range" in stdout
    for r, rung in zip(rows, cfg.rungs, strict=True):
        # tokens are the real ones trained on: whole fables (or, past the context, their pieces) padded
        # to the batch's longest row, so a little under steps x batch x context
        budget = cfg.steps(rung) * cfg.batch_size * cfg.context
        assert 0.9 * budget <= r["tokens"] <= budget and r["steps"] == cfg.steps(rung)
        assert r["params"] == rung.parameters(r["vocab_size"])
        folder = out / "rungs" / r["name"]
        for fmt in ("onnx", "gguf"):
            art = r["artifacts"][fmt]
            files = [folder / art["path"]]
            if fmt == "onnx":
                files += [files[0].with_name("model.onnx.data"), files[0].with_name("genai_config.json")]
            assert art["bytes"] == sum(f.stat().st_size for f in files if f.exists())
            assert 0 <= art["validation"]["kld"] < 1 and 0 < art["validation"]["top1"] <= 1
        manifest = json.loads((folder / "export_manifest.json").read_text())
        onnx = next(a for a in manifest["artifacts"] if a["path"] == r["artifacts"]["onnx"]["path"])
        assert onnx["validation"]["kld"] == r["artifacts"]["onnx"]["validation"]["kld"]
        assert r["speed"]["tg128_tok_s"] > 0 and r["speed"]["peak_rss_mb"] > 0
        assert r["quality"]["fables"] == cfg.eval.count
        tokens = [p["tokens"] for p in r["loss_curve"]]
        assert (
            tokens == sorted(tokens) and tokens[-1] == r["tokens"] and len(tokens) == 10
        )  # every 20 // 8 = 2 steps
        # the curve's checkpoints (half way, the end) at the tokens trained by their steps
        at_step = {p["step"]: p["tokens"] for p in r["loss_curve"]}
        assert [p["step"] for p in r["quality_curve"]] == [r["steps"] // 2, r["steps"]]
        assert [p["tokens"] for p in r["quality_curve"]] == [at_step[r["steps"] // 2], r["tokens"]]
        assert r["judge"]["graded"] == cfg.judge["limit"] and r["judge"]["scores"]["overall"] == 6.5
    params = {
        s: [r["params"] for r in rows if r["size"] == s] for s in dict.fromkeys(r["size"] for r in rows)
    }
    sizes = list(params.values())
    assert all(max(a) < min(b) for a, b in itertools.pairwise(sizes))  # params increase


def test_range_and_verdicts_follow_the_documented_rules(ladder):
    cfg, _, _, out, _ = ladder
    rep = json.loads((out / "ladder.json").read_text())
    rows = rep["rows"]
    for r in rows:
        again = lc.misses({**r["quality"], "valid_loss": r["valid_loss"]}, cfg.threshold)
        assert r["misses"] == again and r["meets"] == (not again)
    # the rules written out here, not recomputed by bounds.*: the lower bound is the smallest rung that
    # meets the threshold; per precision the upper bound is the largest candidate whose artifacts fit
    met = sorted((r for r in rows if r["meets"]), key=lambda r: r["params"])
    want = {k: met[0][k] for k in ("params", "family", "size")} | {"rung": met[0]["name"]} if met else None
    assert rep["lower_bound"] == want
    for precision in ("int4", "int8"):
        up = rep["upper_bound"][precision]
        table = up["candidates"]
        assert [t["params"] for t in table] == sorted(t["params"] for t in table) and len(table) >= len(rows)
        assert {r["name"] for r in rows} <= {t["name"] for t in table}
        fitting = [t for t in table if t["fits"]]
        assert up["largest"] == (fitting[-1] if fitting else None)
        larger_misses = not fitting or any(
            not t["fits"] and t["params"] > fitting[-1]["params"] for t in table
        )
        assert up["limited_by"] == ("budget" if larger_misses else "candidates")
    (v,) = rep["verdicts"]
    deep, wide = rows[0], rows[1]
    gap = wide["valid_loss"] - deep["valid_loss"]
    assert v["valid_loss_gap"] == pytest.approx(gap)
    assert v["winner"] == ("tie" if abs(gap) < bounds.TIE else "deep-thin" if gap > 0 else "wide-shallow")
    md = (out / "ladder.md").read_text()
    assert (f"**{v['winner']}**" in md) and ("none met" in md) == (rep["lower_bound"] is None)


def test_a_rerun_retrains_nothing(ladder):
    cfg, data, valid, out, _ = ladder
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("rungs/*/training.json")}
    saved = {p: p.stat().st_mtime_ns for p in out.glob("rungs/*/ladder/*.json")}
    before = json.loads((out / "ladder.json").read_text())["rows"]
    rows = run_ladder(cfg, data, valid, out, progress=False)["rows"]
    assert len(stamps) == 3 and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p: p.stat().st_mtime_ns for p in saved} == saved
    assert all(set(r["actions"].values()) == {"done"} for r in rows)
    same = ("params", "tokens", "valid_loss", "artifacts", "speed", "quality", "quality_curve")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in before]


def test_other_data_in_the_same_folder_is_refused(ladder, tmp_path):
    cfg, data, _, out, _ = ladder
    other = tmp_path / "valid.jsonl"
    other.write_text(data.read_text().split("\n", 1)[0] + "\n")
    with pytest.raises(lc.LadderError, match="made from other data"):
        run_ladder(cfg, data, other, out, progress=False)
