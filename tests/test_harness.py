"""The test harness itself: a failing notebook fails `make test`, `make lab` serves JupyterLab,
and `make slides` renders offline slides."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.integration  # `make unit` leaves these to `make test` / `make integration`

ROOT = Path(__file__).resolve().parent.parent


def _notebook(tmp_path, name, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _nbval(path):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:langsmith_plugin", "-p", "no:cacheprovider",
           "--nbval", "--nbval-current-env", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=path.parent, timeout=300)


def test_a_notebook_with_a_failing_cell_fails_the_run(tmp_path):
    bad = _nbval(_notebook(tmp_path, "bad.ipynb", "x = 1", "assert x == 2, 'wrong on purpose'"))
    assert bad.returncode == 1, bad.stdout
    assert "wrong on purpose" in bad.stdout
    good = _nbval(_notebook(tmp_path, "good.ipynb", "x = 1", "assert x == 1"))
    assert good.returncode == 0, good.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_jupyterlab(tmp_path):
    port = _free_port()
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token="
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status, deadline = None, time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5).status
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, proc.stdout.read1().decode() if proc.poll() is not None else "no answer"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


REMOTE_SCRIPT = re.compile(r"""<(?:script|link)[^>]+(?:src|href)=["'](?:https?:)?//""")


def test_slides_render_with_local_scripts_only(tmp_path):
    from tools import slides

    vendor = ROOT / "build" / "vendor"
    if not (vendor / "reveal.js").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, so the offline slide scripts were not fetched: only `make slides` needs them")
        pytest.fail("build/vendor is missing although npm is installed: `make setup` fetches the offline slide scripts")
    out = slides.render(ROOT / "assets" / "template.ipynb", tmp_path, vendor, execute=True)
    html = out.read_text()
    for needed in ("reveal.js/dist/reveal.js", "requirejs/require.js", "jquery/dist/jquery.min.js", "mathjax/MathJax.js"):
        assert needed in html
    assert not REMOTE_SCRIPT.search(html), REMOTE_SCRIPT.search(html).group(0)
    assert "mermaid" not in html or "mermaid-stub.mjs" in html
    assert "data:image/png" in html  # the executed figure is in the slides
