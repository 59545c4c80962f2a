"""The embedded default model: packing a run into the package, resolving --model, generating with no
--model, and a built wheel that carries the model files."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fabulist.runtime import embedded
from fabulist.runtime.backends import BackendError

FAB = [sys.executable, "-m", "fabulist.cli"]
ROOT = Path(__file__).resolve().parents[2]


def digests_match(folder: Path, artifact: dict) -> bool:
    """sha256 is one hex digest, or {relative path: digest} for a multi-file artifact."""
    sha = artifact["sha256"]
    wanted = sha if isinstance(sha, dict) else {artifact["path"]: sha}
    return all(hashlib.sha256((folder / p).read_bytes()).hexdigest() == d for p, d in wanted.items())


def fab(*args, cwd=None, env=None):
    return subprocess.run([*FAB, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


# --- resolving --model ---------------------------------------------------------------------------------


def _fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "export_manifest.json").write_text(json.dumps({"artifacts": []}))
    return folder


def test_resolve_default_name_and_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "MODELS", tmp_path / "models")
    default = _fake_model(tmp_path / "models" / embedded.DEFAULT)
    other = _fake_model(tmp_path / "models" / "other")
    assert embedded.resolve(None) == default
    assert embedded.resolve("other") == other
    assert embedded.resolve(str(tmp_path)) == tmp_path  # a folder wins over a name
    with pytest.raises(BackendError, match="no embedded model by that name"):
        embedded.resolve("nope")
    (tmp_path / "models" / "half").mkdir()  # no manifest: not a model
    assert set(embedded.embedded()) == {embedded.DEFAULT, "other"}


def test_resolve_without_default(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "MODELS", tmp_path / "missing")
    with pytest.raises(BackendError, match="not in this installation"):
        embedded.resolve(None)


# --- packing a run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    """A tiny model exported to INT4 ONNX (both graphs) and 4-bit GGUF, with what training writes."""
    from fabulist.export.run import export_model
    from tests.builders import make_model_dir

    run = make_model_dir(tmp_path_factory.mktemp("pack") / "run", hidden=256, heads=4, kv_heads=2, ffn=512)
    export_model(run, "all", "int4", "6GB", None, False, progress=False)  # random weights miss the gates
    export_model(run, "onnx", "fp32", "6GB", None, False, progress=False)  # the quality reference
    export_model(run, "onnx", "int8", "6GB", None, False, progress=False, method="fold")  # the browser's
    training = {"preset": "tiny", "parameters": 1234567, "data": "/somewhere/private/train.parquet",
                "data_sha256": "ab" * 32, "documents": 1000, "tokens_seen": 65536, "steps": 16,
                "complete": True, "wall_seconds": 12.5, "final_train_loss": 3.2, "final_valid_loss": 3.4,
                "final_valid_ppl": 29.96, "processes": 1, "device": "cpu",
                "format": "fabulist-format-1"}  # fmt: skip
    (run / "training.json").write_text(json.dumps(training))
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": s, "tokens": s * 4096, "loss": 4.0, "valid_ppl": 40.0 - s}) + "\n"
            for s in (8, 16)
        )
    )
    (run / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    quality = run.parent / "quality.json"
    r = fab("eval", "quality", "--model", str(run), "--quant", "int4,fp32", "-n", "3",
            "--max-new-tokens", "24", "--json", str(quality))  # fmt: skip
    assert r.returncode == 0, r.stderr
    reproduce = run.parent / "reproduce.sh"
    reproduce.write_text("#!/usr/bin/env bash\nfabulist train --preset tiny  # the commands\n")
    return run, quality, reproduce


@pytest.mark.slow
@pytest.mark.integration
def test_pack_ships_artifacts_and_card(exported_run, tmp_path):
    run, quality, reproduce = exported_run
    dest = tmp_path / "models"
    r = fab("models", "pack", str(run), "--name", "tiny-fable", "--quality", str(quality), "--reproduce",
            str(reproduce), "--dest", str(dest))  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = dest / "tiny-fable"
    shipped = (
        "onnx-genai/int4/model.onnx",
        "onnx/model_int8_fold.onnx",
        "gguf/model-q4_k_m.gguf",
        "config.json",
        "tokenizer.json",
        "fable_format.json",
        "README.md",
        "reproduce.sh",
        "loss.png",
        "quality.json",
        "training.json",
    )
    for rel in shipped:
        assert (out / rel).is_file(), rel
    assert not (out / "model.safetensors").exists() and not (out / "onnx/model.onnx").exists()
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert {a["path"] for a in manifest["artifacts"]} == {
        "onnx/model_int8_fold.onnx",
        "onnx-genai/int4/model.onnx",
        "gguf/model-q4_k_m.gguf",
    }
    assert "/somewhere/private" not in (out / "training.json").read_text()
    card = (out / "README.md").read_text()
    q = json.loads(quality.read_text())["results"]
    line = next(x for x in card.splitlines() if x.startswith("| moral_line |"))
    assert (
        f"{q['int4']['summary']['moral_line']:.1%}" in line
        and f"{q['fp32']['summary']['moral_line']:.1%}" in line
    )
    assert "fabulist train --preset tiny" in card and "ab" * 32 in card and "29.96" in card
    assert card.count("> ") >= 3  # the samples, quoted
    for a in manifest["artifacts"]:  # the shipped files are the validated ones
        assert digests_match(out, a), a["path"]
    for args in (["--format", "onnx"], ["--format", "gguf"]):
        r = fab("generate", "--model", str(out), *args, "--max-new-tokens", "8", "--seed", "1", "--no-stream")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip()


@pytest.mark.slow
@pytest.mark.integration
def test_pack_takes_a_quality_file_asked_with_free_text(exported_run, tmp_path):
    """`eval quality --prompts` rows carry the free-text elements they asked for ('texts'), not ids: the
    card's samples show that text."""
    run, quality, reproduce = exported_run
    q = json.loads(quality.read_text())
    for result in q["results"].values():
        for row in result["rows"]:
            del row["ids"]
            row["texts"] = {
                "character": "industrious  beaver",
                "setting": "arctic ice floe",
                "moral": "Be kind.",
            }
    free = tmp_path / "quality-free.json"
    free.write_text(json.dumps(q))
    r = fab("models", "pack", str(run), "--name", "tiny-free", "--quality", str(free), "--reproduce",
            str(reproduce), "--dest", str(tmp_path / "models"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    card = (tmp_path / "models" / "tiny-free" / "README.md").read_text()
    assert "_character: Industrious beaver; setting: Arctic ice floe; moral: Be kind._" in card


def _browser_result(model: str) -> dict:
    """benchmarks/web_precision.py's JSON shape, with two precisions and one and two threads."""

    def row(file, tok_s, ratio):
        speed = {
            "decode_tok_s": [tok_s * 0.9, tok_s],
            "prefill_s": [0.01],
            "total_tok_s": [tok_s],
            "vs_int4": ratio,
        }
        return {"file": file, "bytes": 6_000_000, "gate_class": "int8", "gate": "pass", "notes": [],
                "validation": {"kld": 0.0001, "top1": 0.991, "max_abs_diff": 0.3, "ppl_ratio": 1.0},
                "loaded_weight_bytes": 24_200_000, "threads_1": speed, "threads_2": speed}  # fmt: skip

    rows = {
        "int4": row("onnx/model_q4.onnx", 100.0, 1.0),
        "int8-fold": row("onnx/model_int8_fold.onnx", 612.0, 6.12),
    }
    return {
        "model": model,
        "tokens": 64,
        "repeats": 5,
        "chromium": "156.0",
        "isolated": True,
        "precisions": rows,
    }


@pytest.mark.slow
@pytest.mark.integration
def test_pack_writes_the_browser_table_it_is_given(exported_run, tmp_path):
    """`models pack --browser` puts benchmarks/web_precision.py's table into the card (a re-pack keeps it);
    a file of another kind is refused in one line."""
    run, quality, reproduce = exported_run
    browser = tmp_path / "web_precision.json"
    browser.write_text(json.dumps(_browser_result(str(run))))
    args = ["models", "pack", str(run), "--name", "m", "--quality", str(quality),
            "--reproduce", str(reproduce), "--dest", str(tmp_path / "models")]  # fmt: skip
    r = fab(*args, "--browser", str(browser))
    assert r.returncode == 0, r.stderr
    card = (tmp_path / "models" / "m" / "README.md").read_text()
    assert "## In the browser" in card and "Chromium 156.0" in card
    assert (
        "| **int8-fold** | `onnx/model_int8_fold.onnx` | 6.0 | 0.0001 / 99.1% | pass | 24.2 | 612 (6.12x) | "
        "612 (6.12x) |" in card
    )
    assert "| `onnx/model_int8_fold.onnx` |" in card and "(method fold)" in card
    browser.write_text(json.dumps({"results": {}}))
    r = fab(*args, "--browser", str(browser))
    assert r.returncode == 1 and "is not a benchmarks/web_precision.py result" in r.stderr
    assert (
        "Traceback" not in r.stderr
        and "## In the browser" in (tmp_path / "models" / "m" / "README.md").read_text()
    )


@pytest.mark.slow
@pytest.mark.integration
def test_pack_refuses_bad_input_and_keeps_the_old_folder(exported_run, tmp_path):
    from fabulist.export.errors import ExportError
    from fabulist.export.pack import pack

    run, quality, reproduce = exported_run
    dest = tmp_path / "models"
    first = pack(run, "m", dest, quality, reproduce)
    before = sorted(p.relative_to(first) for p in first.rglob("*"))
    with pytest.raises(ExportError, match="over the 1 MB limit"):
        pack(run, "m", dest, quality, reproduce, max_bytes=1_000_000)
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {"fp32": {}}}')
    r = fab("models", "pack", str(run), "--name", "m", "--quality", str(bad), "--reproduce", str(reproduce),
            "--dest", str(dest))  # fmt: skip
    assert r.returncode == 1 and "no int4 results" in r.stderr and "Traceback" not in r.stderr
    r = fab("models", "pack", str(tmp_path), "--name", "m", "--quality", str(quality), "--reproduce",
            str(reproduce), "--dest", str(dest))  # fmt: skip
    assert r.returncode == 1 and "training.json is missing" in r.stderr
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == before
    assert [p.name for p in dest.iterdir()] == ["m"]  # no temp folders left behind


@pytest.mark.slow
@pytest.mark.integration
def test_pack_refuses_an_artifact_that_missed_its_gate(exported_run, tmp_path):
    import shutil

    from fabulist.export.errors import ExportError
    from fabulist.export.pack import pack

    run, quality, reproduce = exported_run
    copy = shutil.copytree(run, tmp_path / "run")
    manifest = json.loads((copy / "export_manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["path"] == "gguf/model-q4_k_m.gguf":
            a["gate"] = "KLD 0.9 > 0.05"
    (copy / "export_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"model-q4_k_m\.gguf missed the validation gate"):
        pack(copy, "m", tmp_path / "models", quality, reproduce)


# --- the shipped default model --------------------------------------------------------------------------

SHIPPED = embedded.MODELS / embedded.DEFAULT


def test_shipped_model_is_intact():
    """Every shipped artifact is the one export validated (sha256 in the manifest), within 25 MB."""
    manifest = json.loads((SHIPPED / "export_manifest.json").read_text())
    paths = {a["path"] for a in manifest["artifacts"]}
    assert {"onnx-genai/int4/model.onnx", "onnx/model_int8_fold.onnx", "gguf/model-q4_k_m.gguf"} <= paths
    for a in manifest["artifacts"]:
        assert digests_match(SHIPPED, a), a["path"]
        assert a["gate"] is None
    assert sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()) <= 25_000_000
    card = (SHIPPED / "README.md").read_text()
    for section in (
        "## Training",
        "## Export validation",
        "## Quality bar",
        "unedited samples",
        "## Reproduce",
    ):
        assert section in card


@pytest.mark.slow
@pytest.mark.integration
def test_generate_without_model_uses_the_embedded_one():
    r = fab("generate", "--seed", "3", "--max-new-tokens", "60", "--stats")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) >= 20
    assert str(SHIPPED / "onnx-genai/int4/model.onnx") in r.stderr and "tok/s" in r.stderr
    r = fab("models")
    assert r.returncode == 0 and f"{embedded.DEFAULT} (default)" in r.stdout and "model card" in r.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_wheel_carries_the_model(tmp_path, installed_wheel):
    """The wheel, installed (no deps) into a folder of its own, generates from there offline."""
    wheel, target = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads((SHIPPED / "export_manifest.json").read_text())
    for a in manifest["artifacts"]:
        assert f"fabulist/runtime/models/{embedded.DEFAULT}/{a['path']}" in names
    assert f"fabulist/runtime/models/{embedded.DEFAULT}/onnx-genai/int4/model.onnx.data" in names
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import fabulist; print(fabulist.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert where.stdout.startswith(str(target))
    r = fab("generate", "--seed", "0", "--max-new-tokens", "30", "--no-stream", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert str(target) in fab("models", cwd=tmp_path, env=env).stdout
