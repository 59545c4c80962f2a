"""The import layering, checked on every module's imports (function-local ones included).

    contracts   fabulist/*.py: artifacts, model_folder, records (file I/O, hashing), logits, thresholds,
                elements, fable_format, names, errors, locks, ort_session, cli_types: import no stage
    stages      fabulist.data, fabulist.train, fabulist.export, fabulist.runtime: import the contracts and
                themselves, never each other
    measure     fabulist.eval, fabulist.bench (benchmarks/), fabulist.ladder: anything below, and each other
    release     fabulist.export.pack (a model card needs the quality bar): anything below
    commands    fabulist.cli (fabulist/cli/, one module per stage): anything

import-linter would be the usual tool, but its graph builder (grimp) walks one folder per top-level package
and cannot follow setuptools' package-dir mapping (`export/` installs as `fabulist.export`), so it sees
neither the export stage nor the runtime. This reads the same facts from the source with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"fabulist": "fabulist", "export": "fabulist.export", "runtime": "fabulist.runtime",
           "benchmarks": "fabulist.bench"}  # fmt: skip
STAGES = ("data", "train", "export", "runtime")
MEASURE = ("eval", "bench", "ladder")
RELEASE = ("fabulist.export.pack",)
COMMANDS = "fabulist.cli"  # the package: one module per stage
# The imports against the layering that remain, each with the reason it is still there. The test fails when
# one disappears, so that this list only shrinks.
KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([FOLDERS[parts[0]], *parts[1:]])


def imports(path: Path, name: str) -> set[str]:
    """Every fabulist module `path` imports, at any depth of the file, `from pkg import mod` resolved to
    pkg.mod where mod is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target)
    return {m for m in found if m == "fabulist" or m.startswith("fabulist.")}


SOURCES = {module_name(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}
MODULES = set(SOURCES)


def layer(name: str) -> tuple[int, str]:
    """(rank, group): a module may import a lower rank, or its own group."""
    if name == COMMANDS or name.startswith(COMMANDS + "."):
        return 4, "commands"
    if name in RELEASE:
        return 3, name
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in MEASURE:
        return 2, "measure"
    if len(parts) > 1 and parts[1] in STAGES:
        return 1, parts[1]
    return 0, "contracts"


def violations() -> set[tuple[str, str]]:
    bad = set()
    for name, path in SOURCES.items():
        rank, group = layer(name)
        for target in imports(path, name):
            t_rank, t_group = layer(target)
            if t_rank > rank or (t_rank == rank and t_group != group):
                bad.add((name, target))
    return bad


def test_the_layer_map_sees_every_stage():
    # A mapping that silently missed a folder would pass everything.
    groups = {layer(m)[1] for m in MODULES}
    assert {"contracts", "data", "train", "export", "runtime", "measure"} <= groups
    assert "fabulist.runtime.engine" in MODULES and "fabulist.bench.suite" in MODULES
    assert layer("fabulist.records") == (0, "contracts") and layer("fabulist.export.onnx") == (1, "export")


def test_the_checker_catches_an_upward_import(tmp_path):
    # The rule itself, on a module written here: a contract that imports a stage is a violation.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from fabulist.train import trainer\n    from fabulist import elements\n")
    found = imports(probe, "fabulist.probe")
    assert found == {"fabulist.train.trainer", "fabulist.elements"}
    assert layer("fabulist.train.trainer")[0] > layer("fabulist.probe")[0]


def test_imports_only_go_down():
    bad = violations()
    new = sorted(bad - set(KNOWN))
    assert not new, "imports against the layering (see this file's docstring):\n" + "\n".join(
        f"  {a} -> {b}" for a, b in new
    )
    gone = sorted(set(KNOWN) - bad)
    assert not gone, f"no longer needed, remove from KNOWN: {gone}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if layer(m) == (1, "runtime")))
def test_the_runtime_never_imports_torch(name):
    tree = ast.parse(SOURCES[name].read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in names if m.split(".")[0] in ("torch", "transformers")}, name


def test_no_installed_module_imports_the_tests():
    """tests/ is not installed: a benchmark or stage that imports it works in a checkout and breaks from a
    wheel (the published architectures' configs and builders live in fabulist.bench.architectures)."""
    found = []
    for name, path in SOURCES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [f"{name}: {a.name}" for a in node.names if a.name.split(".")[0] == "tests"]
            elif (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and (node.module or "").split(".")[0] == "tests"
            ):
                found.append(f"{name}: {node.module}")
    assert not found, found
