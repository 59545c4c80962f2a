"""The web app: transformers.js runs the exported model exactly as the Python runtime does, the build copies
what the app needs, and in headless Chromium on a phone-sized screen it generates, streams, stops, installs
and works offline without a request leaving the machine."""

import json
import os
import shutil
import struct
from pathlib import Path

import pytest

from fabulist import fable_format as ff
from tests.android.conftest import (
    DEMO,
    assert_greedy_agrees,
    assert_tokens_agree,
    build_app,
    outside,
    python_greedy,
    run_node,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LABELS = [
    {"character": "Fox", "trait": "Brave", "setting": "Forest", "conflict": "Sharing food in a hard winter",
     "resolution": "Reward", "moral": "Kindness is rewarded."},
    {"character": "Owl", "moral": "Honesty is the best policy."},
    {},
]  # fmt: skip


def test_transformersjs_greedy_equals_python_runtime(demo_model):
    got = run_node("tests/greedy.mjs", "--model", str(demo_model), "--labels", json.dumps(LABELS),
                   "--quants", "int8-fold,int4,int8,fp32", "--max", "40")  # fmt: skip
    # the app's prompt.js, reading fable_format.json, builds the training format exactly
    assert got["prompts"] == [ff.prompt(labels) for labels in LABELS]
    for quant in ("int8-fold", "int4", "int8", "fp32"):
        for prompt, js in zip(got["prompts"], got["results"][quant], strict=True):
            assert_greedy_agrees(demo_model, quant, prompt, js, 40)


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def browser_run(app, model_dir, labels: dict, greedy: int, stop_at: int, shot, sample: int = 60) -> dict:
    """The app in Chromium (tests/e2e.mjs), checked; returns what it reported."""
    got = run_node("tests/e2e.mjs", "--dir", str(app), "--labels", json.dumps(labels),
                   "--greedy", str(greedy), "--stop-at", str(stop_at), "--sample", str(sample),
                   "--screenshot", str(shot))  # fmt: skip
    assert got["installabilityErrors"] == [] and got["manifestErrors"] == []
    assert got["pageErrors"] == []
    assert got["picked"] == {kind: labels.get(kind, "") for kind in got["picked"]}
    # greedy in the browser = the Python runtime, token for token, and the text streamed in with tok/s shown
    first = got["greedy"]
    _, expected = python_greedy(model_dir, got["offlineQuant"], ff.prompt(labels), greedy)
    assert first["tokens"] == expected
    assert len(first["updates"]) >= 2 and first["updates"][0]["chars"] < len(first["text"])
    assert any(u["speed"].endswith("tok/s") for u in first["updates"])
    assert first["stats"]["speed"].endswith("tok/s") and first["stats"]["tokens"] == str(len(expected))
    assert first["stats"]["ttft"].endswith("ms") and first["stats"]["load"].endswith("s")
    assert got["copied"] == first["text"]
    for quant, tokens in got["otherPrecisions"].items():  # the precision picker loads each one
        assert_tokens_agree(model_dir, quant, ff.prompt(labels), tokens, greedy)
    # Stop stops: well before the limit, and no more text after
    stopped = got["stopped"]
    assert stopped["reason"] == "stop" and 5 <= len(stopped["tokens"]) < stop_at // 2
    assert stopped["grewAfterStop"] is False
    # offline: the server is gone, the reloaded app still generates the same fable from its cache
    assert got["serverDown"] is True and got["offlineRequests"] > 0
    assert got["offline"]["tokens"] == first["tokens"] and got["offline"]["text"] == first["text"]
    # and sampling (the app's default settings) works offline too
    sampled = got["sampled"]
    assert sampled["reason"] in ("eos", "length") and sampled["tokens"] and sampled["text"].strip()
    # nothing left the machine
    assert got["nonLocalRequests"] == [] and got["requests"] > 10
    assert outside(got["proxyAsked"]) == []
    width, height = _png_size(shot)
    assert (width, height) >= (412 * 2, 915 * 2) and height > width
    return got


def test_browser_generates_streams_stops_installs_and_works_offline(web_app, demo_model, tmp_path):
    got = browser_run(web_app, demo_model, LABELS[1], greedy=24, stop_at=180, shot=tmp_path / "shot.png")
    assert got["precisions"] == ["int8-fold", "int4", "int8", "fp32"] and got["offlineQuant"] == "int8-fold"
    assert set(got["otherPrecisions"]) == {"int4", "int8", "fp32"}


def test_shipped_model_offline_in_the_browser(tmp_path):
    """The default model (runtime/models/fable-5m, int8-fold only) as the app ships it."""
    model = DEMO.parent / "runtime" / "models" / "fable-5m"
    assert (model / "onnx" / "model_int8_fold.onnx").is_file(), "the shipped default model is missing"
    proc = build_app(model, tmp_path / "www")
    assert proc.returncode == 0, proc.stderr
    labels = LABELS[0]
    # FABULIST_SCREENSHOT=android-demo/screenshot.png refreshes the README's screenshot from this run
    refresh = os.environ.get("FABULIST_SCREENSHOT")
    shot = Path(refresh or tmp_path / "shot.png").resolve()
    sample = 400 if refresh else 60  # a whole fable for the README, a short one otherwise
    got = browser_run(tmp_path / "www", model, labels, greedy=60, stop_at=300, shot=shot, sample=sample)
    assert got["precisions"] == ["int8-fold"]
    assert len(got["offline"]["text"].split()) > 20


def test_build_copies_what_the_app_needs(web_app, demo_model):
    info = json.loads((web_app / "model" / "app_model.json").read_text())
    assert [q["quant"] for q in info["quants"]] == ["int8-fold", "int4", "int8", "fp32"]
    assert info["default"] == "int8-fold"  # the fastest in the browser that passes its gate (README)
    assert info["context"] == 256
    for q in info["quants"]:
        assert (web_app / "model" / q["file"]).read_bytes() == (demo_model / q["file"]).read_bytes()
    # transformers.js finds int8-fold by its file name (its dtype, fp32, would name model.onnx)
    fold = {k: info["quants"][0][k] for k in ("dtype", "file", "model_file_name")}
    assert fold == {
        "dtype": "fp32",
        "file": "onnx/model_int8_fold.onnx",
        "model_file_name": "model_int8_fold",
    }
    assert "model_file_name" not in info["quants"][1]
    assert json.loads((web_app / "model" / "fable_format.json").read_text()) == ff.describe()
    for f in ("vendor/transformers.js", "vendor/ort-wasm-simd-threaded.wasm",
              "vendor/ort-wasm-simd-threaded.mjs", "model/tokenizer.json", "model/config.json", "index.html",
              "sw.js", "manifest.webmanifest"):  # fmt: skip
        assert (web_app / f).is_file(), f
    text = (web_app / "precache.js").read_text()
    precache = json.loads(text.removeprefix("self.PRECACHE = ").rstrip().removesuffix(";"))
    assert "vendor/ort-wasm-simd-threaded.wasm" in precache["files"] and "./" in precache["files"]
    assert not [f for f in precache["files"] if f.startswith("model/onnx/")]  # the chosen one is kept on use
    # no address outside the app's origin anywhere in the app's own code
    for f in ("app.js", "worker.js", "sw.js", "prompt.js", "index.html", "manifest.webmanifest"):
        assert "http://" not in (web_app / f).read_text() and "https://" not in (web_app / f).read_text(), f


def test_build_from_an_int4_only_folder_without_format_file(demo_model, tmp_path):
    """The shipped model's shape: int4 only, exported before fable_format.json existed."""
    model = tmp_path / "fable-int4"
    model.mkdir()
    for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_model / f, model / f)
    (model / "onnx").mkdir()
    shutil.copy(demo_model / "onnx" / "model_q4.onnx", model / "onnx")
    proc = build_app(model, tmp_path / "www")
    assert proc.returncode == 0, proc.stderr
    assert "no fable_format.json" in proc.stdout
    info = json.loads((tmp_path / "www" / "model" / "app_model.json").read_text())
    assert [q["quant"] for q in info["quants"]] == ["int4"] and info["name"] == "fable-int4"
    assert info["default"] == "int4"
    assert json.loads((tmp_path / "www" / "model" / "fable_format.json").read_text()) == ff.describe()


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing", [], "no model folder at"),
        ("no-onnx", [], "has no ONNX model"),
        ("ok", ["--quant", "fp16"], "unknown precision fp16"),
        ("int4-only", ["--quant", "fp32"], "has no fp32 model (present: int4)"),
        ("ok", ["--bogus"], "unknown argument --bogus"),
    ],
)
def test_build_refuses_bad_input(demo_model, tmp_path, case, extra, message):
    model = tmp_path / "model"
    if case != "missing":
        model.mkdir()
        for f in ("config.json", "tokenizer.json", "fable_format.json"):
            shutil.copy(demo_model / f, model / f)
    if case in ("ok", "int4-only"):
        (model / "onnx").mkdir()
        shutil.copy(demo_model / "onnx" / "model_q4.onnx", model / "onnx")
    proc = build_app(model, tmp_path / "www", *extra)
    assert proc.returncode == 1
    assert proc.stderr.startswith("build: ") and message in proc.stderr and "\n    at " not in proc.stderr
    assert not (tmp_path / "www").exists()
