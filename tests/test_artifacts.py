"""The artifact registry (fabulist/artifacts.py + artifacts.json) and the rule that no other module spells an
artifact's path: a renamed file is one edit in artifacts.json, not a hunt through nine modules."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

from fabulist import artifacts

ROOT = Path(__file__).resolve().parent.parent
# A string in code that names an exported artifact's file or folder, or the export manifest.
ARTIFACT_PATH = re.compile(
    r"onnx-genai/|(^|/)onnx/|model[-_](q4|int8|int4|fp32|f32|f16|q8_0|q4_0|q4_k_m|iq4_nl|auto)(\b|_)|"
    r"export_manifest\.json"
)
CONTRACT = {ROOT / "fabulist" / "artifacts.py"}


def test_registry_answers_written_out():
    assert artifacts.get("onnx", "int4").path == "onnx-genai/int4/model.onnx"  # genai's graph first
    assert artifacts.get("onnx", "int4", "optimum").path == "onnx/model_q4.onnx"
    assert artifacts.get("onnx", "int4", "optimum").web == "q4"
    assert artifacts.get("onnx", "int8").path == "onnx/model_int8.onnx"  # genai has no int8 graph
    assert artifacts.get("gguf", "q4_k_m").path == "gguf/model-q4_k_m.gguf"
    assert artifacts.get("onnx", "q4_k_m") is None and artifacts.get("gguf", "int4") is None
    assert [a.graph for a in artifacts.candidates("onnx", "fp32")] == ["genai", "optimum"]
    assert [a.graph for a in artifacts.candidates("onnx", "fp32", "optimum")] == ["optimum"]
    assert artifacts.by_path("onnx-genai/fp32/model.onnx").quant == "fp32"
    assert artifacts.by_path("onnx/other.onnx") is None
    assert artifacts.get("onnx", "int4", "genai").folder == "onnx-genai/int4"
    assert artifacts.quants("gguf")[:5] == ["f32", "f16", "q8_0", "q4_0", "q4_k_m"]
    fold = artifacts.get("onnx", "int8", "optimum", "fold")
    assert (fold.path, fold.precision, fold.web) == ("onnx/model_int8_fold.onnx", "int8-fold", "fp32")
    assert artifacts.get("onnx", "int8-fold") == fold
    assert artifacts.get("onnx", "int8", method="rtn").method is None  # rtn writes the usual file
    assert "int8-fold" in artifacts.quants("onnx") and "auto" in artifacts.quants("onnx", "optimum")


def test_registry_is_one_path_per_artifact():
    rows = json.loads((ROOT / "fabulist" / "artifacts.json").read_text())["artifacts"]
    keys = [(r["format"], r["graph"], r["quant"], r.get("method")) for r in rows]
    assert len(set(keys)) == len(keys) and len({r["path"] for r in rows}) == len(rows)
    assert all(r["format"] in artifacts.FORMATS and r["graph"] in artifacts.GRAPHS for r in rows)


def _code_strings(path: Path):
    """(line, text) of every string constant in a module's code, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_no_artifact_path_outside_the_registry():
    files = subprocess.run(["git", "ls-files", "*.py", "*.mjs"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    found = []
    for rel in files:
        path = ROOT / rel
        if rel.startswith(("tests/", "android-demo/node_modules/")) or path in CONTRACT or not path.exists():
            continue
        if path.suffix == ".py":
            strings = list(_code_strings(path))
        else:  # the demo's scripts: their code lines, comments left out
            lines = path.read_text(encoding="utf-8").splitlines()
            strings = [(i, line.split("//")[0]) for i, line in enumerate(lines, 1)]
        found += [f"{rel}:{n}: {text.strip()[:70]!r}" for n, text in strings if ARTIFACT_PATH.search(text)]
    assert not found, "artifact paths spelled outside fabulist/artifacts.json:\n" + "\n".join(found)
