"""The Android APK: one script builds it with Debian's tools, it verifies, declares no permission, and its
assets hold the web app and the model. Running it on a device is not tested here (no emulator)."""

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from fabulist import fable_format as ff
from tests.android.conftest import DEMO, need_node, outside, python_greedy, run_node

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SCRIPT = DEMO / "android" / "build-apk.sh"


def sh(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "FABULIST_PYTHON": sys.executable}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def apk(demo_model, tmp_path_factory):
    """The APK of the tiny model, int4 only, from the one script (web build included)."""
    need_node()
    out = tmp_path_factory.mktemp("apk")
    proc = sh(str(SCRIPT), "--model", str(demo_model), "--quant", "int4", "--out", str(out / "demo.apk"),
              "--keystore", str(out / "debug.keystore"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "built " in proc.stdout
    return out / "demo.apk"


def test_signature_verifies(apk):
    proc = sh("apksigner", "verify", "--verbose", str(apk))
    assert proc.returncode == 0, proc.stderr
    assert "Verifies" in proc.stdout
    assert "Verified using v2 scheme (APK Signature Scheme v2): true" in proc.stdout


def test_badging_and_no_permissions(apk):
    badging = sh("aapt", "dump", "badging", str(apk)).stdout
    assert "package: name='org.fabulist.demo' versionCode='1' versionName='0.1.0'" in badging
    assert "sdkVersion:'24'" in badging and "targetSdkVersion:'29'" in badging
    assert "application-label:'Fabulist'" in badging
    assert "launchable-activity: name='org.fabulist.demo.MainActivity'" in badging
    assert "uses-permission" not in badging
    assert sh("aapt", "dump", "permissions", str(apk)).stdout.strip() == "package: org.fabulist.demo"


def test_assets_hold_the_app_and_the_model(apk, demo_model):
    listing = sh("aapt", "list", str(apk)).stdout.split()
    for name in ("classes.dex", "AndroidManifest.xml", "res/mipmap-xxxhdpi-v4/ic_launcher.png",
                 "assets/www/index.html", "assets/www/app.js", "assets/www/worker.js",
                 "assets/www/manifest.webmanifest", "assets/www/vendor/transformers.js",
                 "assets/www/vendor/ort-wasm-simd-threaded.wasm",
                 "assets/www/vendor/ort-wasm-simd-threaded.mjs",
                 "assets/www/model/config.json", "assets/www/model/tokenizer.json",
                 "assets/www/model/fable_format.json", "assets/www/model/onnx/model_q4.onnx"):  # fmt: skip
        assert name in listing, name
    assert "assets/www/model/onnx/model.onnx" not in listing  # --quant int4
    with zipfile.ZipFile(apk) as z:
        q4 = z.read("assets/www/model/onnx/model_q4.onnx")
        assert q4 == (demo_model / "onnx/model_q4.onnx").read_bytes()
        info = json.loads(z.read("assets/www/model/app_model.json"))
        assert [q["quant"] for q in info["quants"]] == ["int4"]
        extensions = {n.rsplit(".", 1)[-1] for n in z.namelist() if n.startswith("assets/www/")}
    # the WebView answers every file type the app has with its MIME type (.onnx: application/octet-stream)
    smali = (DEMO / "android" / "smali" / "org" / "fabulist" / "demo" / "AssetClient.smali").read_text()
    served = set(re.findall(r'const-string v0, "\.(\w+)"', smali))
    assert extensions - {"onnx"} <= served, extensions - served


def test_dex_holds_the_activity_and_the_asset_server(apk, tmp_path):
    with zipfile.ZipFile(apk) as z:
        (tmp_path / "classes.dex").write_bytes(z.read("classes.dex"))
    dump = sh("dexdump", str(tmp_path / "classes.dex")).stdout
    assert "Class descriptor  : 'Lorg/fabulist/demo/MainActivity;'" in dump
    assert "Superclass        : 'Landroid/app/Activity;'" in dump
    assert "Class descriptor  : 'Lorg/fabulist/demo/AssetClient;'" in dump
    assert "Superclass        : 'Landroid/webkit/WebViewClient;'" in dump
    for method in ("onCreate", "shouldInterceptRequest", "shouldOverrideUrlLoading", "respond", "mimeType"):
        assert f"name          : '{method}'" in dump, method


def test_assets_run_as_the_webview_serves_them(apk, demo_model, tmp_path):
    """The APK's assets/www at the APK's origin in Chromium: no service worker, same greedy fable."""
    with zipfile.ZipFile(apk) as z:
        z.extractall(tmp_path, [n for n in z.namelist() if n.startswith("assets/www/")])
    labels = {"character": "Fox", "moral": "Kindness is rewarded."}
    got = run_node("tests/e2e.mjs", "--apk-origin", "--dir", str(tmp_path / "assets" / "www"),
                   "--labels", json.dumps(labels), "--greedy", "20")  # fmt: skip
    assert got["url"].startswith("http://appassets.androidplatform.net:")
    assert got["serviceWorkers"] == 0 and got["precisions"] == ["int4"] and got["pageErrors"] == []
    assert got["greedy"]["tokens"] == python_greedy(demo_model, "int4", ff.prompt(labels), 20)[1]
    assert got["nonLocalRequests"] == [] and outside(got["proxyAsked"]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--web", "/nonexistent"], "/nonexistent is not a built app"),
        (["--web", "/tmp", "--quant", "int4"], "--model and --quant go to the web build"),
        (["--frobnicate", "1"], "unknown argument --frobnicate"),
        (["--model", "/nonexistent"], "build: no model folder at /nonexistent"),
    ],
)
def test_bad_input_is_one_line(args, message, tmp_path):
    proc = sh(str(SCRIPT), *args, "--out", str(tmp_path / "x.apk"), "--keystore", str(tmp_path / "k"))
    assert proc.returncode == 1
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.apk").exists()
