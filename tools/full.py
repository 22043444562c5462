"""`make full`: run every notebook in FULL mode, with the machine's default threads, and record each one's
wall time and headline numbers in its series README.

    python -m tools.full                                   # every series
    python -m tools.full 02PT-pretraining                  # one series
    python -m tools.full 01CB-basics/03_mlp_numpy_mnist.ipynb --no-readme   # one notebook, print only

A notebook states its headline results with ``llmfs.headline(name, value)``, which prints
``headline: <name> = <value>``; this tool collects those lines from the executed outputs. Executed
notebooks are never written back into the repository (it keeps them stripped): each is kept in
``build/full/`` (ignored by git), where a failure can be read cell by cell. Each notebook must pass
(its asserts hold) within its budget on 2 cores (``budget``: 15 minutes, 20 for the fine-tuning series); a
failure or an overrun is reported and makes the exit status non-zero, and the README table says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIES = ["01CB-basics", "02PT-pretraining", "03FT-finetuning", "04RAG", "05Agent", "06Inference"]
FULL_BUDGET_S = 900  # 15 minutes per notebook on 2 CPU cores
SERIES_BUDGET_S = {"03FT-finetuning": 1200}  # fine-tuning a real 135M model: 20 minutes per notebook


def budget(nb_path: Path) -> int:
    """The FULL-mode time budget of a notebook in seconds: its series' own, else ``FULL_BUDGET_S``."""
    return SERIES_BUDGET_S.get(Path(nb_path).resolve().parent.name, FULL_BUDGET_S)
HEADLINE_RE = re.compile(r"^headline: (.+?) = (.+)$", re.M)
START, END = "<!-- full:start -->", "<!-- full:end -->"


@dataclass
class Result:
    path: Path
    seconds: float
    error: str = ""  # the first line of the failing cell's error; '' when every cell passed
    headlines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error:
            return "FAILED"
        return "over budget" if self.seconds > budget(self.path) else "ok"


def headlines(nb) -> list[tuple[str, str]]:
    """Every ``headline: name = value`` line printed by the executed notebook, in order."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                found += [(m.group(1).strip(), m.group(2).strip()) for m in HEADLINE_RE.finditer(out.get("text", ""))]
    return found


def _first_error_line(exc: Exception) -> str:
    """``AssertionError: <message>`` of a failed cell (nbclient keeps them as ``ename``/``evalue``), or the
    last line of the exception's text that is not a rule of dashes; 200 characters at most."""
    if getattr(exc, "ename", None):
        return f"{exc.ename}: {getattr(exc, 'evalue', '')}".strip()[:200]
    lines = [line for line in str(exc).strip().splitlines() if line.strip(" -")]
    return (lines or ["error"])[-1][:200]


def run(nb_path: Path, timeout: int | None = None) -> Result:
    """Execute one notebook in FULL mode in a fresh kernel (cwd = its folder); never raises on a failing cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(nb_path, as_version=4)
    env_fast = os.environ.pop("LLMFS_FAST", None)  # FULL mode; the kernel inherits this environment
    threads = {k: os.environ.pop(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    timeout = 2 * budget(nb_path) if timeout is None else timeout
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(nb_path.parent)}})
    start, error = time.perf_counter(), ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        error = _first_error_line(exc)
    finally:
        if env_fast is not None:
            os.environ["LLMFS_FAST"] = env_fast
        os.environ.update(threads)
    seconds = time.perf_counter() - start
    keep = ROOT / "build" / "full" / nb_path.name  # the executed notebook, outputs and all, to read a failure
    keep.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, keep)
    return Result(nb_path, seconds, error, headlines(nb))


def machine() -> str:
    """One line about where the numbers come from: CPU model, cores, and a GPU if torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}"


def row(r: Result) -> str:
    """One notebook's line of the README table."""
    numbers = "; ".join(f"{k} = {v}" for k, v in r.headlines) or "-"
    status = r.status if not r.error else f"FAILED: {r.error}"
    cells = [c.replace("|", "\\|") for c in (status, numbers)]  # a | inside a cell would end it
    return f"| {r.path.name} | {r.seconds / 60:.1f} min | {cells[0]} | {cells[1]} |"


def table(rows: list[str]) -> str:
    """The README's FULL-mode table (markdown), one line per notebook, in the notebooks' order."""
    return "\n".join([f"FULL mode, default threads, recorded {date.today().isoformat()} by `make full` on: {machine()}.",
                      "", "| notebook | wall time | status | headline numbers |", "|---|---|---|---|",
                      *sorted(rows)])


def write_readme(readme: Path, results: list[Result], keep: set[str] = frozenset()) -> None:
    """Replace the table between the FULL markers of ``readme`` (appended under a heading if absent).
    The rows of the notebooks named in ``keep`` stay as they were (a run of some of a series' notebooks)."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    old = text[text.index(START):text.index(END)] if START in text and END in text else ""
    kept = [line for line in old.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in keep]
    block = f"{START}\n{table(kept + [row(r) for r in results])}\n{END}"
    if old:
        text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## FULL mode: times and headline numbers\n\n" + block + "\n"
    readme.write_text(text, encoding="utf-8")


def notebooks(paths: list[Path]) -> list[Path]:
    return [q for p in paths for q in (sorted(p.glob("[0-9][0-9]_*.ipynb")) if p.is_dir() else [p])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.full", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="series folders or notebooks (default: every series)")
    parser.add_argument("--no-readme", action="store_true", help="print the results, do not touch the READMEs")
    args = parser.parse_args(argv)
    paths = notebooks(args.paths or [ROOT / s for s in SERIES])
    by_series: dict[Path, list[Result]] = {}
    for nb in paths:
        print(f"full: {nb} ...", flush=True)
        r = run(nb)
        print(f"full: {nb.name}: {r.seconds:.0f} s {r.status} {r.error} {r.headlines}", flush=True)
        by_series.setdefault(nb.parent, []).append(r)
    if not args.no_readme:
        for folder, results in by_series.items():
            others = {nb.name for nb in notebooks([folder])} - {r.path.name for r in results}
            write_readme(folder / "README.md", results, keep=others)  # the other notebooks' rows stay
    bad = [r for rs in by_series.values() for r in rs if r.status != "ok"]
    for r in bad:
        print(f"full: {r.path}: {r.status} {r.error}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
