"""The package's layout: a shared core, one subpackage per series, imports that only look back.

    llmfs/            config, assets, data, plots, kernels: the shared core, imports no series
    llmfs/basics/     01CB      llmfs/pretrain/  02PT      then finetune, rag, agents, inference
    tools/            course tooling (checker, slides, benchmarks): never imported by llmfs, not installed

A series imports only the core and the series before it; notebooks import only the package.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "llmfs"
SERIES = ["basics", "pretrain", "finetune", "rag", "agents", "inference"]  # in course order
CORE = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__") + ["_kernels"]


def imported_modules(source: str) -> set[str]:
    """Every module an import statement names, top-level or inside a function; relative imports are refused."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError("relative import: write llmfs.<...> in full")
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from llmfs import data
    return found


def layer(module: str) -> int | None:
    """-1 for the core, i for the i-th series, None for anything outside llmfs."""
    parts = module.split(".")
    if parts[0] != "llmfs":
        return None
    if len(parts) == 1 or parts[1] in CORE:
        return -1
    if parts[1] in SERIES:
        return SERIES.index(parts[1])
    raise AssertionError(f"{module}: neither a core module ({', '.join(CORE)}) nor a series ({', '.join(SERIES)})")


def layering_problems(path: Path, source: str) -> list[str]:
    """What ``path`` (a file of llmfs) imports that its layer may not."""
    rel = path.relative_to(PACKAGE)
    own = -1 if len(rel.parts) == 1 else SERIES.index(rel.parts[0])
    problems = []
    for module in sorted(imported_modules(source)):
        if module.split(".")[0] == "tools":
            problems.append(f"{rel} imports {module}: course tooling is not part of the installed package")
            continue
        other = layer(module)
        if other is not None and other > own:
            where = "the core" if own == -1 else f"llmfs.{SERIES[own]}"
            problems.append(f"{rel} imports {module}: {where} may import only "
                            + ("the core" if own == -1 else "the core and earlier series"))
    return problems


PY_FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", PY_FILES, ids=[str(p.relative_to(ROOT)) for p in PY_FILES])
def test_imports_only_look_back(path):
    assert not layering_problems(path, path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("relpath,source,expected", [
    ("config.py", "from llmfs.pretrain import gpt", "the core may import only the core"),
    ("basics/mlp_numpy.py", "def f():\n    from llmfs.pretrain.gpt import GPT", "llmfs.basics may import only"),
    ("pretrain/gpt.py", "import tools.notebooks", "not part of the installed package"),
])
def test_the_layering_check_catches_a_wrong_import(relpath, source, expected):
    problems = layering_problems(PACKAGE / relpath, source)
    assert any(expected in p for p in problems), problems


def test_every_subpackage_is_a_series_and_has_a_docstring():
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert subpackages and set(subpackages) <= set(SERIES), subpackages
    for name in subpackages:
        assert ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())), f"llmfs/{name} needs a docstring"


@pytest.mark.integration
def test_the_wheel_ships_the_package_and_not_the_tooling(tmp_path):
    """What `pip install` (Colab's path) puts in site-packages: every subpackage and the C++ module,
    none of tools/, tests/ or the notebooks."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("llmfs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"llmfs"}, tops
    for expected in ("llmfs/basics/__init__.py", "llmfs/pretrain/gpt.py", "llmfs/config.py"):
        assert expected in names
    assert any(re.match(r"llmfs/_kernels\..*\.so$", n) for n in names)
