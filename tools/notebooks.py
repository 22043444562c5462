"""The course's notebook conventions: one place that states them, checks them and fixes what it can.

    python -m tools.notebooks check 01CB-basics/*.ipynb   # list every broken convention
    python -m tools.notebooks fix   01CB-basics/*.ipynb   # strip outputs, stamp badge + slide metadata

A course notebook
- opens with a markdown cell: an H1 title, a one-paragraph story and the "Open in Colab" badge;
- then "Learning goals" and "Prerequisites" (links to earlier notebooks);
- has exactly one setup cell, the first code cell (``SETUP_CELL`` below): Colab install, seeds,
  device, FAST mode;
- starts every section (a markdown cell that begins with ``## ``) on a new slide, and has no ``## `` heading
  inside a cell (it would get no slide; "Prerequisites" may share the "Learning goals" cell);
- ends with "Summary", "Exercises" (with solutions in ``<details>``) and "References";
- is committed with outputs stripped and holds no absolute paths;
- imports only the installed package's layout (``llmfs.<core module>``, ``llmfs.<series>.<module>``), never
  an old flat path such as ``llmfs.gpt`` and never the course tooling in ``tools/``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from llmfs.config import REPO_URL

ROOT = Path(__file__).resolve().parent.parent
SERIES = ["01CB-basics", "02PT-pretraining", "03FT-finetuning", "04RAG", "05Agent", "06Inference"]
NAME_RE = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_MARK = "cfg = llmfs.setup("
SETUP_CELL = f"""\
# Setup: on Colab, clone the course, install it with its tested versions (Colab's torch stays) and
# fetch the data; everywhere: seed every generator, pick the device, read FAST mode (`make test` sets it).
import sys
if "google.colab" in sys.modules:
    !test -d /content/llmfs || git clone -q --depth 1 {REPO_URL} /content/llmfs
    !bash /content/llmfs/tools/colab_setup.sh {{sys.executable}}
    %cd /content/llmfs
import llmfs
cfg = llmfs.setup(seed=0)"""
# What a notebook may import from the package: the core, the series subpackages and llmfs's own names.
PACKAGE_NAMES = {"config", "assets", "data", "plots", "kernels", "basics", "pretrain", "finetune", "rag", "agents",
                 "inference", "FAST", "REPO_URL", "device", "headline", "progress", "seed_everything", "setup", "__version__"}
LLMFS_NAME_RE = re.compile(r"\bllmfs\.(\w+)")
FROM_LLMFS_RE = re.compile(r"^\s*from llmfs import ([\w, ]+)", re.M)
TOOLS_IMPORT_RE = re.compile(r"^\s*(?:from|import) tools\b", re.M)
ABSOLUTE_PATH_RE = re.compile(r"(?<![\w.~])(/home/|/Users/|/root/|/work/|/tmp/|[A-Z]:\\\\)")
CLOSING = ["Summary", "Exercises", "References"]
SHARES_A_SLIDE = ("Prerequisites",)  # may follow "Learning goals" in the same cell: one opening slide


def inner_headings(src: str) -> list[str]:
    """Level-2 headings that sit inside a markdown cell rather than at its start: they would get no slide."""
    lines = src.split("\n")
    return [line for line in lines[1:] if re.match(r"^## +\S", line) and not line[3:].strip().startswith(SHARES_A_SLIDE)]


def split_at_headings(src: str) -> list[str]:
    """A markdown cell's text cut before each inner level-2 heading (the pieces, in order)."""
    pieces, current = [], []
    for line in src.split("\n"):
        if current and line in inner_headings("\n" + line) and any(x.strip() for x in current):
            pieces.append("\n".join(current).rstrip("\n"))
            current = []
        current.append(line)
    pieces.append("\n".join(current).rstrip("\n"))
    return pieces


def colab_url(nb_path: Path) -> str:
    """The Colab link of a notebook of this repository (``REPO_URL`` is written once, in config)."""
    return _colab_url(nb_path)


def _colab_url(nb_path: Path) -> str:
    rel = Path(nb_path).resolve().relative_to(ROOT).as_posix()
    return f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/main/{rel}"


def colab_badge(nb_path: Path) -> str:
    return f"[![Open In Colab]({BADGE_IMG})]({colab_url(nb_path)})"


def course_notebooks() -> list[Path]:
    """Every notebook of the six series folders, in course order, plus the template."""
    nbs = [p for s in SERIES for p in sorted((ROOT / s).glob("*.ipynb"))]
    return nbs + [ROOT / "assets" / "template.ipynb"]


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _headings(cells: list[dict]) -> list[tuple[int, str]]:
    """(cell index, heading text) of every level-2 heading."""
    out = []
    for i, c in enumerate(cells):
        if c["cell_type"] == "markdown":
            out += [(i, m.group(1).strip()) for m in re.finditer(r"^## +(.+)$", _src(c), re.M)]
    return out


def check(nb_path: Path) -> list[str]:
    """Every convention this notebook breaks, as readable sentences (empty list: all good)."""
    nb_path = Path(nb_path)
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    problems = []
    if nb_path.parent.name in SERIES and not NAME_RE.match(nb_path.name):
        problems.append(f"file name {nb_path.name!r} is not NN_lowercase_name.ipynb")
    if not cells or cells[0]["cell_type"] != "markdown":
        return problems + ["the first cell must be markdown: title, story and Colab badge"]
    first = _src(cells[0])
    if not re.match(r"^# \S", first):
        problems.append("the first cell must start with an H1 title ('# ...')")
    story = [p for p in first.split("\n\n")[1:] if len(p.strip()) >= 150 and not p.lstrip().startswith(("[!", "#"))]
    if not story:
        problems.append("the first cell needs a story paragraph (at least 150 characters) under the title")
    if colab_url(nb_path) not in first or BADGE_IMG not in first:
        problems.append(f"the first cell needs the Colab badge linking to {colab_url(nb_path)}")
    intro = "\n".join(_src(c) for c in cells[:4] if c["cell_type"] == "markdown")
    for part in ("Learning goals", "Prerequisites"):
        if not re.search(rf"^#+ +{part}", intro, re.M):
            problems.append(f"a '## {part}' section is missing near the top")

    code = [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    setups = [i for i, c in code if SETUP_MARK in _src(c)]
    if len(setups) != 1:
        problems.append(f"there must be exactly one setup cell (containing {SETUP_MARK!r}); found {len(setups)}")
    elif code[0][0] != setups[0]:
        problems.append("the setup cell must be the first code cell")
    elif _src(cells[setups[0]]).strip() != SETUP_CELL.strip():
        problems.append("the setup cell differs from tools.notebooks.SETUP_CELL (run `python -m tools.notebooks fix`)")

    for i, c in enumerate(cells):
        src = _src(c)
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None):
            problems.append(f"cell {i} has outputs: commit notebooks stripped")
        if c["cell_type"] == "markdown" and i > 0:
            for heading in inner_headings(src):
                problems.append(f"cell {i}: the heading {heading.strip()!r} sits inside the cell and gets no slide: "
                                "start a new cell there (`python -m tools.notebooks fix` does)")
        if c["cell_type"] == "markdown" and (i == 0 or src.lstrip().startswith("## ")):
            if c.get("metadata", {}).get("slideshow", {}).get("slide_type") != "slide":
                problems.append(f"cell {i} starts a section but its slideshow.slide_type is not 'slide'")
        if c["cell_type"] == "code":
            names = LLMFS_NAME_RE.findall(src) + [n.split(" as ")[0].strip() for m in FROM_LLMFS_RE.finditer(src)
                                                  for n in m.group(1).split(",")]
            for name in sorted(set(names) - PACKAGE_NAMES):
                problems.append(f"cell {i} uses llmfs.{name}, which is not in the package (llmfs.<core module> or "
                                "llmfs.<series>.<module>, e.g. llmfs.pretrain.gpt)")
            if TOOLS_IMPORT_RE.search(src):
                problems.append(f"cell {i} imports the course tooling (tools/): learners have only the llmfs package")
        m = ABSOLUTE_PATH_RE.search(src)
        if m:
            problems.append(f"cell {i} holds an absolute path ({m.group(0)!r}...): use paths relative to the repo")

    titles = [t for _, t in _headings(cells)]
    positions = [next((k for k, t in enumerate(titles) if t.startswith(name)), -1) for name in CLOSING]
    if -1 in positions:
        missing = [n for n, p in zip(CLOSING, positions) if p == -1]
        problems.append(f"closing sections missing: {', '.join('## ' + m for m in missing)}")
    elif positions != sorted(positions):
        problems.append("the notebook must end with Summary, then Exercises, then References")
    else:
        idx = [i for i, t in _headings(cells) if t.startswith("Exercises")][0]
        rest = "\n".join(_src(c) for c in cells[idx:])
        if "<details>" not in rest or "Solution" not in rest:
            problems.append("exercises need solutions, folded in <details><summary>Solution</summary>")
    return problems


def fix(nb_path: Path) -> None:
    """Strip outputs, put sections on slides, and stamp the Colab badge and setup cell."""
    nb_path = Path(nb_path)
    import nbformat  # only the fixer needs it; it writes cells in nbformat's canonical layout

    nb = nbformat.read(nb_path, as_version=4)
    cells = []
    for i, c in enumerate(nb["cells"]):  # a section heading inside a markdown cell starts a cell of its own
        pieces = split_at_headings(_src(c)) if c["cell_type"] == "markdown" and i > 0 else [None]
        if len(pieces) > 1:
            c["source"] = pieces[0]
            cells += [c] + [nbformat.v4.new_markdown_cell(p) for p in pieces[1:]]
        else:
            cells.append(c)
    nb["cells"] = cells
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
            if SETUP_MARK in _src(c):
                c["source"] = SETUP_CELL
        elif i == 0 or _src(c).lstrip().startswith("## "):
            c.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = "slide"
    first = nb["cells"][0]
    src = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)", colab_badge(nb_path), _src(first))
    if BADGE_IMG not in src:
        lines = src.split("\n", 1)
        src = lines[0] + "\n\n" + colab_badge(nb_path) + ("\n" + lines[1] if len(lines) > 1 else "")
    first["source"] = src
    kernel = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.setdefault("metadata", {})["kernelspec"] = kernel
    nbformat.write(nb, nb_path)


def describe(nb_path: Path) -> tuple[str, str]:
    """(title, one-line description) of a notebook: its H1 and the first sentence of its story."""
    first = _src(json.loads(Path(nb_path).read_text(encoding="utf-8"))["cells"][0])
    title = re.match(r"^# +(.+)$", first, re.M).group(1).strip()
    story = next(p for p in first.split("\n\n")[1:] if len(p.strip()) >= 150 and not p.lstrip().startswith(("[!", "#")))
    sentence = re.split(r"(?<=[.!?])\s", " ".join(story.split()), maxsplit=1)[0]
    sentence = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", sentence)  # links are relative to the notebook: keep the text
    return title, sentence


README_START, README_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"


def readme_table() -> str:
    """The README's table of every notebook (regenerate with `python -m tools.notebooks readme`)."""
    rows = ["| Notebook | What you build and prove | Colab |", "|---|---|---|"]
    for nb in course_notebooks()[:-1]:  # not the template
        title, line = describe(nb)
        rel = nb.relative_to(ROOT).as_posix()
        rows.append(f"| [{rel}]({rel}) {title} | {line} | {colab_badge(nb)} |")
    return "\n".join(rows)


def write_readme_table(readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + readme_table() + "\n" + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.notebooks")
    parser.add_argument("action", choices=["check", "fix", "readme"])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every course notebook)")
    args = parser.parse_args(argv)
    if args.action == "readme":
        write_readme_table()
        return 0
    paths = args.paths or course_notebooks()
    bad = 0
    for p in paths:
        if args.action == "fix":
            fix(p)
        for problem in check(p):
            bad += 1
            print(f"{p}: {problem}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
