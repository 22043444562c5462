"""Every slide of every course notebook fits a 1280x720 screen.

The unit tests check the layout planner of ``tools/slides.py`` (height estimates, splitting, packing) without a
browser. The integration test renders every notebook's deck, measures each slide in headless Chromium
(``tools/slide_fit.py``) and fails on any slide whose content runs past the frame, is cut off inside a box, or
shows a broken image. Every deck is executed first (FAST mode), as `make slides` does, so that its figures, tables
and printed output are measured too: the deck an instructor presents.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tools import slide_fit, slides

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "build" / "vendor"
KERNELS = 2  # notebooks executed at once (one per core)


def course_notebooks() -> list[Path]:
    return sorted(ROOT.glob("0*-*/*.ipynb")) + [ROOT / "assets" / "template.ipynb"]


# ---------------------------------------------------------------------------------------------------------
# the planner, without a browser

def _png(width: int, height: int) -> str:
    """A PNG's signature and header (all ``png_size`` reads), base64 as notebooks store images."""
    ihdr = struct.pack(">II", width, height) + bytes([8, 6, 0, 0, 0])
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0").decode()


def _code(source: str, outputs=()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def _section(title: str, *cells) -> list:
    head = nbformat.v4.new_markdown_cell(f"## {title}")
    head.metadata["slideshow"] = {"slide_type": "slide"}
    return [head, *cells]


def _subslides(nb) -> list[list]:
    """The planned cells grouped as the deck shows them: a new group at each slide or sub-slide."""
    groups: list[list] = []
    for cell in nb.cells:
        kind = cell.metadata.get("slideshow", {}).get("slide_type", "-")
        if kind == "notes":
            continue
        if kind in ("slide", "subslide") or not groups:
            groups.append([])
        groups[-1].append(cell)
    return groups


def _lines(n: int, prefix: str = "x") -> str:
    return "\n".join(f"{prefix}{i} = {i}" for i in range(n))


def test_png_size_reads_the_header():
    assert slides.png_size(base64.b64decode(_png(640, 480))) == (640, 480)
    assert slides.png_size(b"GIF89a" + bytes(30)) is None


def test_the_colab_badge_becomes_a_text_link():
    src = ("# Title\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
           "(https://colab.research.google.com/github/llmfs-course/llmfs/blob/main/assets/template.ipynb)")
    out = slides.offline_badges(src)
    assert "colab-badge.svg" not in out and "<img" not in out
    assert 'href="https://colab.research.google.com/github/llmfs-course/llmfs/blob/main/assets/template.ipynb"' in out
    assert "Open in Colab" in out


def test_markdown_blocks_keep_code_math_and_solutions_whole():
    src = ("Intro text.\n\n```python\na = 1\n\nb = 2\n```\n\n$$x =\n\ny$$\n\n"
           "<details><summary>Solution</summary>\n\n1. one\n\n2. two\n</details>\n\nEnd.")
    blocks = slides.markdown_blocks(src)
    assert blocks[0] == "Intro text." and blocks[-1] == "End."
    assert len(blocks) == 5, blocks
    assert "Solution" in slides.fold_details(src) and "two" not in slides.fold_details(src)


def test_heights_grow_with_content():
    short, long_ = slides.markdown_height("Some text."), slides.markdown_height("Some text. " * 200)
    assert 20 < short < long_
    assert slides.code_height(_lines(30)) > slides.code_height(_lines(10)) > 0
    assert slides.code_height("x" * 1000) > slides.code_height("x" * 10)  # a long line wraps
    small = {"output_type": "display_data", "data": {"image/png": _png(400, 200)}, "metadata": {}}
    wide = {"output_type": "display_data", "data": {"image/png": _png(4000, 2000)}, "metadata": {}}
    assert slides.output_height(small) == pytest.approx(210)
    assert slides.output_height(wide) <= slides.IMG_MAX_H + 10  # scaled to the slide's width, capped


def test_sections_are_packed_onto_subslides_that_fit():
    nb = nbformat.v4.new_notebook(cells=_section("One", *[_code(_lines(12)) for _ in range(6)])
                                  + _section("Two", nbformat.v4.new_markdown_cell("Short.")))
    planned, layout = slides.plan(nb)
    groups = _subslides(planned)
    assert layout.slides == 2 and layout.scrolling == 0
    assert len(groups) >= 3  # section One needs several sub-slides
    for group in groups:
        assert sum(slides.cell_height(c) for c in group) <= slides.BUDGET
    continued = [g[0] for g in groups[1:-1]]
    assert all("One, continued" in c.source for c in continued)
    assert planned.cells[-2].metadata["slideshow"]["slide_type"] == "slide"  # section Two still starts a slide
    assert [c.source for c in planned.cells if c.cell_type == "code"] == [c.source for c in nb.cells if c.cell_type == "code"]


def test_a_tall_cell_is_split_code_from_outputs_and_at_blank_lines():
    chunks = [_lines(12, f"v{k}_") for k in range(5)]
    image = {"output_type": "display_data", "data": {"image/png": _png(900, 500), "text/plain": "<Figure>"}, "metadata": {}}
    cell = _code("\n\n".join(chunks), [{"output_type": "stream", "name": "stdout", "text": "done\n"}, image])
    pieces = slides.split_cell(cell)
    assert len(pieces) >= 3
    assert all(slides.cell_height(p) <= slides.BUDGET for p in pieces)
    shown = [p for p in pieces if not p.metadata.get("transient", {}).get("remove_source")]
    assert "\n\n".join(p.source for p in shown) == cell.source  # every line of code, in order, once
    assert [o for p in pieces for o in p.outputs] == cell.outputs  # every output, in order, once
    assert len({p.id for p in pieces}) == len(pieces)
    assert not any(slides.SCROLL_TAG in p.metadata.get("tags", []) for p in pieces)


def test_code_with_no_blank_line_gets_a_smaller_font_or_is_cut_between_lines():
    (compact,) = slides.split_cell(_code(_lines(32)))
    assert slides.COMPACT_TAG in compact.metadata["tags"] and slides.cell_height(compact) <= slides.BUDGET
    source = "DATA = [\n" + "\n".join(f"    ({i}, 'item {i}')," for i in range(60)) + "\n]\nprint(len(DATA))"
    pieces = slides.split_cell(_code(source))
    assert len(pieces) > 1 and "\n".join(p.source for p in pieces) == source
    assert all(slides.cell_height(p) <= slides.BUDGET for p in pieces)
    assert not any(slides.SCROLL_TAG in p.metadata.get("tags", []) for p in pieces)
    (scrolls,) = slides.split_cell(_code("x = '" + "y" * 20000 + "'"))  # one line longer than a slide
    assert slides.SCROLL_TAG in scrolls.metadata["tags"]


def test_long_printed_output_is_split_by_lines_or_scrolls():
    text = "".join(f"step {i}: loss {1 / (i + 1):.4f}\n" for i in range(60))
    pieces = slides.split_cell(_code("train()", [{"output_type": "stream", "name": "stdout", "text": text}]))
    assert "".join(o.text for p in pieces for o in p.outputs) == text
    assert all(slides.cell_height(p) <= slides.BUDGET for p in pieces)
    huge = "".join(f"line {i}\n" for i in range(1000))
    pieces = slides.split_cell(_code("train()", [{"output_type": "stream", "name": "stdout", "text": huge}]))
    assert any(slides.SCROLL_TAG in p.metadata.get("tags", []) for p in pieces)


def test_empty_and_skipped_cells_make_no_blank_slides():
    empty_slide = nbformat.v4.new_markdown_cell("")
    empty_slide.metadata["slideshow"] = {"slide_type": "slide"}
    skipped = nbformat.v4.new_markdown_cell("## Hidden")
    skipped.metadata["slideshow"] = {"slide_type": "skip"}
    cells = (_section("One", _code("x = 1")) + [empty_slide, nbformat.v4.new_markdown_cell("Orphan text."), skipped,
                                               _code(""), nbformat.v4.new_markdown_cell("   ")])
    planned, layout = slides.plan(nbformat.v4.new_notebook(cells=cells))
    assert [c.source for c in planned.cells] == ["## One", "x = 1", "Orphan text."]
    assert planned.cells[2].metadata["slideshow"]["slide_type"] == "slide"  # takes the empty cell's place
    assert layout.slides == 2


def test_course_notebooks_fit_by_the_estimate():
    """Without a browser: every planned sub-slide of every notebook (as committed) is within the budget."""
    scrolling = []
    for path in course_notebooks():
        planned, layout = slides.plan(nbformat.read(path, as_version=4))
        for group in _subslides(planned):
            assert sum(slides.cell_height(c) for c in group) <= slides.BUDGET or any(
                slides.SCROLL_TAG in c.metadata.get("tags", []) for c in group), (path.name, [c.source[:40] for c in group])
        scrolling += [path.name] * layout.scrolling
    if scrolling:
        warnings.warn(f"{len(scrolling)} cells scroll on their slide (the last resort): {sorted(set(scrolling))}", stacklevel=1)


# ---------------------------------------------------------------------------------------------------------
# every deck, measured in a real browser

def _render(nb_path: Path, out: Path, execute: bool) -> Path:
    rel = nb_path.relative_to(ROOT)
    return slides.render(nb_path, out / rel.parent, VENDOR, execute=execute, allow_errors=True)


@pytest.mark.integration
def test_every_slide_fits_the_screen_in_chromium(tmp_path, monkeypatch):
    browser = slide_fit.find_browser()
    if browser is None:
        pytest.skip("no Chromium-family browser on PATH (chromium, chromium-browser, google-chrome, or $LLMFS_CHROMIUM): "
                    "the slides are not measured; install one, e.g. `apt-get install chromium`")
    if not (VENDOR / "reveal.js").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, so the offline slide scripts were not fetched: only `make slides` needs them")
        pytest.fail("build/vendor is missing although npm is installed: `make setup` fetches the offline slide scripts")
    if "LLMFS_FAST" not in os.environ:  # `make test` sets it; executing here must stay fast anyway
        monkeypatch.setenv("LLMFS_FAST", "1")
    with ThreadPoolExecutor(max_workers=KERNELS) as pool:  # each notebook runs in its own kernel process
        decks = list(pool.map(lambda path: _render(path, tmp_path, True), course_notebooks()))
    for deck in decks:
        html = deck.read_text(encoding="utf-8")
        assert not re.search(r"<img[^>]+src=[\"']?(?:https?:)?//", html), f"{deck.name} shows an image from the network"
    measured = slide_fit.measure_all(decks, browser)
    lines, bad = slide_fit.summary(measured)
    sizes = {(size["width"], size["height"]) for size, _ in measured.values()}
    assert sizes == {(slides.SLIDE_W, slides.SLIDE_H)}, sizes
    pending = [f"{s.deck} {s.h}/{s.v}" for _, ss in measured.values() for s in ss if s.math_pending]
    assert not pending, f"MathJax did not typeset these slides before they were measured: {pending}"
    n_scroll = sum(s.scrolls for _, ss in measured.values() for s in ss)
    if n_scroll:
        warnings.warn(f"{n_scroll} slides hold a cell that scrolls (the last resort)", stacklevel=1)
    assert not bad, "slides that do not fit the screen:\n" + "\n".join(lines)
