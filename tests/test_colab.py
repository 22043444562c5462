"""The Colab path, simulated the way Colab runs a notebook: a fresh Python environment outside the
repository that has only what Colab preinstalls (torch and a Jupyter kernel), a notebook opened from
outside the repository, and its setup cell's own Colab branch (clone, install, fetch) run against a
local clone instead of GitHub. One notebook of each series then runs to the end (FAST mode).

It needs the package index (the cell installs the course's pinned versions), so `make test` runs it
before the offline part; `make unit` skips it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmfs.config import REPO_URL
from tools import notebooks

pytestmark = pytest.mark.colab

ROOT = Path(__file__).resolve().parents[1]
ONE_PER_SERIES = ["01CB-basics/08_career_in_ai.ipynb", "02PT-pretraining/04_tokenization.ipynb"]
COLAB_PREINSTALLED = ["torch==2.13.0", "ipykernel==7.4.0"]  # what a Colab runtime brings (its own torch)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(python of the fresh environment, where the cell clones to, the fake `google.colab` module's folder)."""
    tmp = tmp_path_factory.mktemp("colab")
    origin = tmp / "origin.git"  # stands in for GitHub: the committed state of this repository
    run(["git", "clone", "-q", "--bare", "--depth", "1", f"file://{ROOT}", str(origin)])
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", *COLAB_PREINSTALLED], timeout=900)
    fake = tmp / "fake_colab" / "google" / "colab"  # `google.colab` is imported at start-up, as on Colab
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake.parent.parent / "sitecustomize.py").write_text("import google.colab  # noqa: F401\n")
    return python, origin, tmp / "content" / "llmfs", fake.parent.parent


def colab_copy(nb_path: Path, origin: Path, clone: Path, out_dir: Path) -> Path:
    """The notebook as Colab opens it: alone, outside the repository, its setup cell pointing at the
    local 'GitHub' and 'content' folder instead of the real ones."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if notebooks.SETUP_MARK in src:
            assert src.strip() == notebooks.SETUP_CELL.strip()
            cell["source"] = src.replace(REPO_URL, f"file://{origin}").replace("/content/llmfs", str(clone))
    out = out_dir / nb_path.name
    out.write_text(json.dumps(nb), encoding="utf-8")
    return out


@pytest.mark.parametrize("relpath", ONE_PER_SERIES)
def test_a_notebook_runs_on_colab(colab, relpath, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    python, origin, clone, fake = colab
    nb_path = colab_copy(ROOT / relpath, origin, clone, tmp_path)
    kernels = tmp_path / "kernels" / "colab-sim"  # a kernel of the fresh environment, as Colab's is
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab-sim", "language": "python"}))
    env = {"JUPYTER_PATH": str(tmp_path), "PYTHONPATH": str(fake), "LLMFS_FAST": "1", "OMP_NUM_THREADS": "1",
           "PIP_CONSTRAINT": ""}  # Colab has no constraints file; the cell itself keeps torch out
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = nbformat.read(nb_path, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="colab-sim",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    setup_out = "".join(o.get("text", "") for o in nb.cells[[c.cell_type for c in nb.cells].index("code")].outputs)
    assert "llmfs: mode=FAST" in setup_out
    torch_version = run([str(python), "-c", "import torch; print(torch.__version__)"]).stdout
    assert torch_version.startswith("2.13.0"), "the setup cell must keep Colab's own torch"
    assert (clone / "01CB-basics").is_dir() and not (tmp_path / "llmfs").exists()
