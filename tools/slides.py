"""Render course notebooks as reveal.js slides that work offline and fit a 1280x720 screen (``make slides``).

nbconvert's slides load reveal.js, require.js, jQuery and MathJax from CDNs; here every script comes
from local copies of pinned npm packages (``make setup`` puts them in ``build/vendor``), referenced by
relative URLs, so the slides open from ``file://`` with no network.

Every ``## `` section of a notebook starts a slide (its cell metadata says so). At render time, never in the
committed notebook, each section is laid out on vertical sub-slides of ``SLIDE_W`` x ``SLIDE_H`` pixels:
each cell's height is estimated (lines of source and output text wrapped at the slide's width, images'
pixel sizes from their PNG headers, table rows), cells are packed greedily, and a cell too tall for one
sub-slide is split: its code from its outputs, long code and markdown at blank lines, long text output by
lines. Only what still cannot fit (a single unbreakable block) scrolls, inside its own cell. Code wraps
instead of running off the right edge, images and tables are held to the slide's width, and the Colab badge
(an image on the network) becomes a text link. ``python -m tools.slide_fit`` measures the result in Chromium.

    python -m tools.slides 01CB-basics --out build/slides --vendor build/vendor
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import math
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

MERMAID_STUB = "export default { initialize() {} };\n"  # the course draws no mermaid diagrams

# The slide frame, in CSS pixels, and what the text in it looks like: the CSS below sets these sizes, overriding
# the reveal.js theme's, so that the estimates of ``markdown_height`` and ``code_height`` can be close.
SLIDE_W, SLIDE_H = 1280, 720
SECTION_PAD = 20  # reveal.js pads each slide 20 px top and bottom
PROMPT_W = 76  # the In [ ]: column
TEXT_W = SLIDE_W - PROMPT_W - 40  # width of markdown text and code, after prompts and paddings
CONTENT_PX, CONTENT_LINE = 20, 29.0  # markdown font size and line height
CODE_PX, CODE_LINE = 16, 21.0  # code and text-output font size and line height
TABLE_PX, TABLE_LINE = 16, 22.0  # tables
CONTENT_CHAR_W = 0.5 * CONTENT_PX  # average advance of a character of text (DejaVu Sans, a wide font: 0.47 em)
WRAP_SLACK = 6  # characters a line loses on average by wrapping at a word
CODE_CHAR_W = 0.602 * CODE_PX  # advance of a monospace character
BLOCK_GAP = 10.0  # between paragraphs, lists, code blocks of a markdown cell
CELL_GAP = 14.0  # margins and paddings around a cell
CODE_PAD = 14.0  # padding inside a code box
HEADING = {1: (52, 62.0), 2: (36, 44.0), 3: (28, 35.0), 4: (23, 30.0), 5: (20, 27.0), 6: (20, 27.0)}  # px, line
HEADING_GAP = 24.0  # a heading's margins
DISPLAY_MATH = 84.0  # a $$ ... $$ block of one line of formula with a fraction, a sum, a root (26 px less without)
TALL_TEX = ("\\frac", "\\sum", "\\sqrt", "\\int", "\\prod", "\\binom", "\\over", "\\dfrac", "\\left", "\\begin{pmatrix")
BUDGET = SLIDE_H - 2 * SECTION_PAD - 30  # what one sub-slide may hold, with a margin for error in the estimate
CONTINUED_H = 34.0  # the "(continued)" line atop a section's later sub-slides
IMG_MAX_H = BUDGET - 70  # figures are scaled down to at most this height (CSS below)
MAX_TEXT_PIECES = 3  # a long text output is split over at most this many sub-slides; beyond that it scrolls
COMPACT_PX, COMPACT_LINE = 13, 17.0  # a block of code too tall at CODE_PX, with no blank line to split it at
COMPACT_TAG = "llmfs-compact"  # cell tag (class celltag_llmfs-compact): this cell's code in the smaller font
SCROLL_TAG = "llmfs-scroll"  # cell tag (class celltag_llmfs-scroll): the last resort, this cell scrolls
CONT_CLASS = "llmfs-continued"

_HEADING_CSS = "\n".join(
    f".reveal .slides .jp-RenderedHTMLCommon h{n} {{ font-size: {px}px; line-height: {line}px; margin: 16px 0 8px; }}"
    for n, (px, line) in HEADING.items())

CSS = f"""
<style type="text/css">
/* tools/slides.py: every slide fits {SLIDE_W}x{SLIDE_H}; the planner's estimates assume these sizes */
:root {{
  --jp-content-font-size1: {CONTENT_PX}px;
  --jp-ui-font-size1: {CONTENT_PX - 2}px;
  --jp-code-font-size: {CODE_PX}px;
  --jp-code-line-height: {CODE_LINE / CODE_PX:.4f};
  --jp-content-line-height: {CONTENT_LINE / CONTENT_PX:.4f};
  --jp-cell-prompt-width: {PROMPT_W}px;
}}
.reveal .slides section {{ box-sizing: border-box; }}
{_HEADING_CSS}
.reveal .slides .jp-RenderedHTMLCommon h1:first-child, .reveal .slides .jp-RenderedHTMLCommon h2:first-child,
.reveal .slides .jp-RenderedHTMLCommon h3:first-child {{ margin-top: 0; }}
.reveal .slides .jp-RenderedHTMLCommon h1, .reveal .slides .jp-RenderedHTMLCommon h2,
.reveal .slides .jp-RenderedHTMLCommon h3 {{ text-transform: none; letter-spacing: normal; text-shadow: none; }}
.reveal .slides .jp-RenderedHTMLCommon p, .reveal .slides .jp-RenderedHTMLCommon li {{
  font-size: {CONTENT_PX}px; line-height: {CONTENT_LINE}px;
}}
.reveal .slides .jp-RenderedHTMLCommon p {{ margin: {BLOCK_GAP}px 0; }}
.reveal .slides .jp-RenderedHTMLCommon ul, .reveal .slides .jp-RenderedHTMLCommon ol {{
  display: block; margin: {BLOCK_GAP}px 0; padding-left: 1.6em;
}}
.reveal .slides .jp-RenderedHTMLCommon li {{ margin: 0; }}
.reveal .slides .jp-RenderedHTMLCommon li > p {{ margin: 0; }}
.reveal .slides .jp-RenderedHTMLCommon li ul, .reveal .slides .jp-RenderedHTMLCommon li ol {{ margin: 0; }}
.reveal .slides .jp-RenderedHTMLCommon blockquote {{
  width: auto; margin: {BLOCK_GAP}px 0; padding: 2px 16px; font-style: normal; box-shadow: none;
  background: none; border-left: 4px solid #ccc;
}}
.reveal .slides .jp-RenderedHTMLCommon pre {{ margin: {BLOCK_GAP}px 0; padding: 6px 10px; }}
.reveal .slides .jp-RenderedHTMLCommon table {{ margin: {BLOCK_GAP}px 0; }}
.reveal .slides .jp-RenderedHTMLCommon details {{ margin: {BLOCK_GAP}px 0; }}
.reveal .slides .jp-RenderedHTMLCommon summary {{ font-size: {CONTENT_PX}px; line-height: {CONTENT_LINE}px; }}
.reveal section table {{ max-width: 100%; font-size: {TABLE_PX}px; line-height: {TABLE_LINE}px; }}
.reveal section th, .reveal section td {{ overflow-wrap: anywhere; padding: 4px 8px; }}
.reveal .jp-InputPrompt, .reveal .jp-OutputPrompt {{ font-size: {CODE_PX - 3}px; }}
.reveal pre, .reveal code, .reveal .highlight pre, .reveal div.highlight > pre,
.reveal div.jp-OutputArea-output > pre, .reveal .jp-RenderedText pre {{
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal;
  font-size: {CODE_PX}px; line-height: {CODE_LINE}px;
}}
.reveal div.jp-OutputArea-output > pre {{ width: auto; }}
.reveal div.highlight > pre, .reveal div.jp-OutputArea-output > pre {{ box-sizing: border-box; max-width: 100%; }}
.reveal .jp-RenderedHTMLCommon code {{ font-size: 0.85em; line-height: inherit; white-space: pre-wrap; }}
.reveal .jp-RenderedHTMLCommon pre code {{ font-size: {CODE_PX}px; }}
.reveal section img, .reveal section svg, .reveal section canvas, .reveal section video {{
  max-width: 100%; max-height: {IMG_MAX_H}px; width: auto; height: auto; object-fit: contain; margin: 2px 0;
}}
.reveal .jp-RenderedImage {{ max-width: 100%; }}
.reveal .jp-RenderedHTMLCommon, .reveal .jp-OutputArea-output {{ max-width: 100%; overflow-wrap: anywhere; }}
.reveal .MathJax_CHTML_Display, .reveal .MJXc-display {{ max-width: 100%; }}
.reveal .celltag_{COMPACT_TAG} .jp-InputArea pre {{ font-size: {COMPACT_PX}px; line-height: {COMPACT_LINE}px; }}
.reveal .celltag_{SCROLL_TAG} {{ max-height: {BUDGET - CONTINUED_H}px; overflow-y: auto; }}
.reveal .slides .jp-RenderedHTMLCommon p.{CONT_CLASS} {{ font-size: {CODE_PX}px; color: #666; margin: 0; line-height: 20px; }}
.reveal a.llmfs-colab {{ font-size: {CODE_PX}px; }}
</style>
"""


def _vendor_urls(out_dir: Path, vendor: Path) -> dict[str, str]:
    """Exporter settings pointing at the local copies, relative to the folder of the HTML file."""
    rel = Path(os.path.relpath(vendor.resolve(), out_dir.resolve())).as_posix()
    stub = vendor / "mermaid-stub.mjs"
    if not stub.exists():
        stub.write_text(MERMAID_STUB)
    return {
        "reveal_url_prefix": f"{rel}/reveal.js",
        "require_js_url": f"{rel}/requirejs/require.js",
        "jquery_url": f"{rel}/jquery/dist/jquery.min.js",
        "mathjax_url": f"{rel}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        "mermaid_js_url": f"{rel}/mermaid-stub.mjs",
    }


# ---------------------------------------------------------------------------------------------------------
# Height estimates, in CSS pixels of the slide frame

def _wrapped(n_chars: int, chars_per_line: int) -> int:
    return max(1, math.ceil(n_chars / max(chars_per_line, 1)))


def _text_lines(text: str, chars_per_line: int) -> int:
    """Rendered lines of preformatted ``text`` wrapped at ``chars_per_line`` (a carriage return overwrites)."""
    lines = text.rstrip("\n").split("\n")
    return sum(_wrapped(len(line.rsplit("\r", 1)[-1].expandtabs()), chars_per_line) for line in lines)


CODE_CHARS = int(TEXT_W / CODE_CHAR_W)
OUT_CHARS = int((TEXT_W - 10) / CODE_CHAR_W)

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_INLINE_MATH = re.compile(r"\$([^$]+)\$")
_HTML_TAG = re.compile(r"<[^>]+>")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the colours of a traceback


def _plain(text: str) -> str:
    """Markdown text as it reads: links by their text, no emphasis marks, inline math about as wide as shown."""
    text = _LINK.sub(r"\1", text)
    text = _INLINE_MATH.sub(lambda m: "x" * max(1, int(len(m.group(1)) * 0.6)), text)
    text = _HTML_TAG.sub("", text)
    return text.replace("**", "").replace("`", "").replace("__", "")


def markdown_blocks(source: str) -> list[str]:
    """Split markdown at blank lines that are outside fenced code, $$ math and <details>: each block renders on its
    own, so a cell can be cut between any two of them."""
    blocks, current, fence, math_open, details = [], [], False, False, 0
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            fence = not fence
        elif not fence:
            math_open ^= stripped.count("$$") % 2 == 1
            details += len(re.findall(r"<details[\s>]", line)) - line.count("</details>")
        if not stripped and not fence and not math_open and details <= 0:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


_DETAILS = re.compile(r"<details[^>]*>\s*(?:<summary>(.*?)</summary>)?.*?</details>", re.S)


def fold_details(source: str) -> str:
    """Markdown as shown before anyone opens its <details> (the exercises' solutions): only the summaries."""
    return _DETAILS.sub(lambda m: "\n\n" + (m.group(1) or "Details") + "\n\n", source)


_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")


def _table_height(rows: list[list[str]]) -> float:
    """Rows of cells' text (markdown): columns share the width in proportion to their longest text, cells wrap."""
    raw, rows = rows, [[_plain(c) for c in r] for r in rows]
    n_cols = max(len(r) for r in rows)
    longest = [max((len(r[j]) if j < len(r) else 0) for r in rows) + 2 for j in range(n_cols)]
    total_chars = int(TEXT_W / (0.58 * TABLE_PX)) - 2 * n_cols
    shares = [max(4, int(total_chars * n / sum(longest))) if sum(longest) > total_chars else n for n in longest]
    height = 0.0
    for r, source in zip(rows, raw):
        lines = max(_wrapped(len(text), shares[j]) for j, text in enumerate(r))
        math = "$" in "".join(source)
        tall = math and any(t in "".join(source) for t in TALL_TEX)
        height += lines * TABLE_LINE + 9 + (24 if tall else 16 if math else 0)
    return height + BLOCK_GAP


def _markdown_table_rows(lines: list[str]) -> list[list[str]]:
    rows = [line.strip().strip("|") for line in lines if line.strip().startswith("|")]
    return [[c.strip() for c in r.split("|")] for r in rows if not re.fullmatch(r"[\s|:-]+", r)]


def markdown_height(source: str) -> float:
    """Estimated height of a rendered markdown cell (its <details> folded)."""
    height = CELL_GAP
    for block in markdown_blocks(fold_details(source)):
        lines = block.split("\n")
        first = lines[0].strip()
        if first.startswith("```") or first.startswith("~~~"):
            height += sum(_wrapped(len(line), CODE_CHARS - 2) for line in lines[1:-1]) * CODE_LINE + 12 + BLOCK_GAP
            continue
        if first.startswith("$$"):
            for formula in re.findall(r"\$\$(.*?)\$\$", block, re.S) or [block]:
                rows = formula.count("\\\\") + 1 if "\\begin" in formula else 1
                tall = any(t in formula for t in TALL_TEX)
                height += (DISPLAY_MATH if tall else DISPLAY_MATH - 26) + (rows - 1) * (1.9 if tall else 1.5) * CONTENT_PX
            height += BLOCK_GAP
            continue
        if first.startswith("|"):
            height += _table_height(_markdown_table_rows(lines))
            continue
        quote = first.startswith(">")
        # paragraphs, headings and lists: source lines of one paragraph or list item are joined when rendered
        items: list[list[int]] = []  # [indent in px, characters] of each paragraph / list item
        for line in lines:
            if quote:
                line = re.sub(r"^\s*>\s?", "", line)
            heading = re.match(r"^(#{1,6})\s+(.*)", line)
            item = _LIST_ITEM.match(line)
            if heading:
                px, line_h = HEADING[len(heading.group(1))]
                height += _wrapped(len(_plain(heading.group(2))), int(TEXT_W / (0.6 * px))) * line_h + HEADING_GAP
                items.append([-1, 0])  # what follows a heading is a new paragraph
            elif item:
                indent = 32 * (1 + len(item.group(1).expandtabs()) // 2)
                items.append([indent, len(_plain(line[item.end():]))])
            elif items and items[-1][0] >= 0 and line.strip():
                items[-1][1] += 1 + len(_plain(line.strip()))
            elif line.strip():
                items.append([20 if quote else 0, len(_plain(line.strip()))])
        paragraphs = [it for it in items if it[0] >= 0 and it[1] > 0]
        for indent, n in paragraphs:
            height += _wrapped(n, int((TEXT_W - indent) / CONTENT_CHAR_W) - WRAP_SLACK) * CONTENT_LINE
        height += BLOCK_GAP if paragraphs else 0.0
    return height


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None if ``data`` is no PNG."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _image_height(output: dict, mime: str) -> float:
    data, meta = output["data"][mime], output.get("metadata", {}).get(mime, {}) or {}
    width = height = None
    if mime == "image/png":
        try:
            size = png_size(base64.b64decode(data if isinstance(data, str) else "".join(data))[:32])
        except ValueError:
            size = None
        if size:
            width, height = size
    elif mime == "image/svg+xml":
        text = data if isinstance(data, str) else "".join(data)
        found = re.search(r'<svg[^>]*\bwidth="([\d.]+)(pt|px)?"[^>]*\bheight="([\d.]+)(pt|px)?"', text)
        if found:
            unit = 4 / 3 if found.group(2) == "pt" else 1
            width, height = float(found.group(1)) * unit, float(found.group(3)) * unit
    width, height = meta.get("width", width), meta.get("height", height)
    if not width or not height:
        return 0.6 * BUDGET  # a JPEG or an image without a size: assume a large one
    if width > TEXT_W:
        height *= TEXT_W / width
    return min(height, IMG_MAX_H) + 10


def _html_height(html: str) -> float:
    rows = re.findall(r"<tr[\s>].*?(?:</tr>|(?=<tr[\s>])|$)", html, re.S)
    if rows:
        cells = [[_HTML_TAG.sub("", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)] or [""] for r in rows]
        return _table_height(cells) + 20
    text = _HTML_TAG.sub("", re.sub(r"<br\s*/?>|</p>|</div>|</li>", "\n", html))
    return _text_lines(text.strip() or " ", int(TEXT_W / CONTENT_CHAR_W)) * CONTENT_LINE + 10


def output_height(output: dict) -> float:
    """Estimated height of one output of a code cell."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        return _text_lines(text if isinstance(text, str) else "".join(text), OUT_CHARS) * CODE_LINE + 10
    if kind == "error":
        return _text_lines(_ANSI.sub("", "\n".join(output.get("traceback", []))), OUT_CHARS) * CODE_LINE + 10
    data = output.get("data", {})
    for mime in ("image/png", "image/svg+xml", "image/jpeg"):
        if mime in data:
            return _image_height(output, mime)
    if "text/html" in data:
        html = data["text/html"]
        return _html_height(html if isinstance(html, str) else "".join(html))
    if "text/markdown" in data or "text/latex" in data:
        text = data.get("text/markdown") or data.get("text/latex")
        return markdown_height(text if isinstance(text, str) else "".join(text))
    if "text/plain" in data:
        text = data["text/plain"]
        return _text_lines(text if isinstance(text, str) else "".join(text), OUT_CHARS) * CODE_LINE + 10
    return 0.0


def code_height(source: str, compact: bool = False) -> float:
    """Estimated height of a code cell's input box (in the smaller font of ``COMPACT_TAG`` if ``compact``)."""
    if compact:
        return _text_lines(source or " ", int(TEXT_W / (0.602 * COMPACT_PX))) * COMPACT_LINE + CODE_PAD + CELL_GAP
    return _text_lines(source or " ", CODE_CHARS) * CODE_LINE + CODE_PAD + CELL_GAP


def cell_height(cell) -> float:
    """Estimated height of a whole cell on a slide (input, unless removed, and outputs)."""
    hidden_source = cell.get("metadata", {}).get("transient", {}).get("remove_source", False)
    if cell.cell_type == "markdown":
        return CONTINUED_H if CONT_CLASS in cell.source else markdown_height(cell.source)
    if cell.cell_type != "code":
        return _text_lines(cell.source or " ", OUT_CHARS) * CODE_LINE + CELL_GAP
    compact = COMPACT_TAG in cell.metadata.get("tags", [])
    height = 0.0 if hidden_source else code_height(cell.source, compact)
    outputs = cell.get("outputs", [])
    if outputs:
        height += sum(output_height(o) for o in outputs) + CELL_GAP
    return height


# ---------------------------------------------------------------------------------------------------------
# Splitting a cell that is too tall for one sub-slide

def _new_piece(cell, **changes):
    piece = copy.deepcopy(cell)
    for key, value in changes.items():
        piece[key] = value
    piece.metadata.pop("slideshow", None)
    return piece


def _tag(cell, tag: str):
    tags = list(cell.metadata.get("tags", []))
    if tag not in tags:
        cell.metadata["tags"] = tags + [tag]
    return cell


def _finish(cell, pieces: list) -> list:
    """The first piece of ``cell`` starts what the cell started (a slide, a fragment); later pieces get ids of
    their own (``<id>-p2``, ...), so ids stay unique in the page."""
    if "slideshow" in cell.metadata:
        pieces[0].metadata["slideshow"] = copy.deepcopy(cell.metadata["slideshow"])
    for i, piece in enumerate(pieces[1:], start=2):
        if "id" in piece:
            piece["id"] = f"{piece['id'][:60]}-p{i}"
    return pieces


def _group(parts: list, height, budget: float, joiner) -> list:
    """Greedily join consecutive ``parts`` while their estimated height stays within ``budget``."""
    groups, current = [], []
    for part in parts:
        if current and height(joiner(current + [part])) > budget:
            groups.append(joiner(current))
            current = []
        current.append(part)
    if current:
        groups.append(joiner(current))
    return groups


def _join_units(units: list[tuple[str, str]]) -> str:
    return "".join((sep if i else "") + text for i, (sep, text) in enumerate(units))


def _markdown_units(source: str, budget: float) -> list[tuple[str, str]]:
    """Markdown as (separator, text) units: its blocks, and a block too tall cut into its heading, list items and
    lines, so that a long list or a heading with its list can go over two sub-slides."""
    units = []
    for block in markdown_blocks(source):
        first = block.lstrip()
        if markdown_height(block) <= budget or first.startswith(("```", "~~~", "$$", "|")) or "<details" in block:
            units.append(("\n\n", block))
            continue
        pieces: list[str] = []
        for line in block.split("\n"):
            if pieces and (line.startswith((" ", "\t")) and not re.match(r"^#{1,6}\s", pieces[-1])):
                pieces[-1] += "\n" + line  # the continuation of a list item or an indented line
            else:
                pieces.append(line)
        units += [("\n\n" if i == 0 else "\n", piece) for i, piece in enumerate(pieces)]
    return units


def _code_chunks(source: str) -> list[str]:
    """Source split at blank lines (each chunk a statement or a few)."""
    chunks, current = [], []
    for line in source.split("\n"):
        if not line.strip() and current:
            chunks.append("\n".join(current))
            current = []
            continue
        current.append(line)
    if current:
        chunks.append("\n".join(current))
    return chunks


def _line_chunks(source: str, budget: float) -> list[str]:
    """Code cut between lines into pieces of at most ``budget`` px, each cut at the least indented line near the
    end of a piece (the start of a statement or of an item rather than the middle of one)."""
    lines, chunks, start = source.split("\n"), [], 0
    while start < len(lines):
        end = start + 1
        while end < len(lines) and code_height("\n".join(lines[start:end + 1])) <= budget:
            end += 1
        if end < len(lines):
            window = range(max(start + 1, end - max(3, (end - start) // 3)), end + 1)
            end = min(window, key=lambda i: (len(lines[i]) - len(lines[i].lstrip()) if i < len(lines) else 0, -i))
        chunks.append("\n".join(lines[start:end]))
        start = end
    return chunks


def _split_output(output: dict, budget: float) -> list[tuple[dict, bool]]:
    """A long stream or plain-text output as (output, scrolls) pieces: up to ``MAX_TEXT_PIECES`` pieces of
    ``budget`` px, or else itself, to scroll (as an image or a table too tall does)."""
    data = output.get("data", {})
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    elif set(data) == {"text/plain"}:
        text = data["text/plain"]
    else:
        return [(output, True)]
    text = text if isinstance(text, str) else "".join(text)
    per_piece = max(1, int((budget - CELL_GAP - 10) / CODE_LINE))
    chunks, current, used = [], [], 0
    for line in text.rstrip("\n").split("\n"):
        n = _text_lines(line, OUT_CHARS)
        if current and used + n > per_piece:
            chunks.append(current)
            current, used = [], 0
        current.append(line)
        used += n
    if current:
        chunks.append(current)
    if len(chunks) > MAX_TEXT_PIECES:
        return [(output, True)]
    pieces = []
    for chunk in chunks:
        piece = copy.deepcopy(output)
        if "text" in piece:
            piece["text"] = "\n".join(chunk) + "\n"
        else:
            piece["data"]["text/plain"] = "\n".join(chunk)
        pieces.append((piece, False))
    return pieces


def _outputs_height(outputs: list) -> float:
    return sum(output_height(o) for o in outputs) + CELL_GAP if outputs else 0.0


def _split_code(cell, budget: float) -> list:
    hidden_source = cell.metadata.get("transient", {}).get("remove_source", False)
    # the parts, in order: chunks of source, then outputs (a single output too tall already split or to scroll)
    parts: list[tuple[str, object, bool]] = []
    if not hidden_source:
        source = cell.source
        chunks = [source] if code_height(source) <= budget else _group(_code_chunks(source), code_height, budget, "\n\n".join)
        for chunk in chunks:  # a block without a blank line to cut at: smaller font, or else cut between lines
            fits = code_height(chunk) <= budget or code_height(chunk, compact=True) <= budget
            parts += [("source", c, False) for c in ([chunk] if fits else _line_chunks(chunk, budget))]
    for out in cell.get("outputs", []):
        if _outputs_height([out]) > budget:
            parts += [("output", piece, scrolls) for piece, scrolls in _split_output(out, budget)]
        else:
            parts.append(("output", out, False))
    # groups: a source chunk with the outputs that fit after it, or outputs alone
    groups: list[dict] = []
    for kind, part, scrolls in parts:
        last = groups[-1] if groups else None
        if kind == "output" and last is not None and not scrolls and not last["scroll"]:
            code = code_height(last["source"]) if last["source"] is not None else 0.0
            if code + _outputs_height(last["outputs"] + [part]) <= budget:
                last["outputs"].append(part)
                continue
        if kind == "source":
            groups.append({"source": part, "outputs": [], "scroll": False})
        else:
            groups.append({"source": None, "outputs": [part], "scroll": scrolls})
    pieces = []
    for group in groups:
        if group["source"] is None:
            piece = _new_piece(cell, outputs=group["outputs"])
            piece.metadata["transient"] = {"remove_source": True}
        else:
            piece = _new_piece(cell, source=group["source"], outputs=group["outputs"])
            if code_height(group["source"]) > budget:  # one block of code with no blank line to cut it at
                _tag(piece, COMPACT_TAG)
                group["scroll"] = code_height(group["source"], compact=True) > budget  # a single enormous line
        if group["scroll"]:
            _tag(piece, SCROLL_TAG)
        pieces.append(piece)
    return pieces


def split_cell(cell, budget: float = BUDGET) -> list:
    """``cell`` as pieces (copies of it) that each fit ``budget`` if they can: code apart from its outputs, code
    at blank lines (a block with none in a smaller font, or else between lines), markdown at blank lines, then at
    list items, text output at lines. A piece that still cannot fit (an output too tall) is tagged to scroll."""
    if cell_height(cell) <= budget:
        return [cell]
    if cell.cell_type == "markdown":
        units = _markdown_units(cell.source, budget)
        groups = _group(units, lambda u: markdown_height(_join_units(u)), budget, list)
        pieces = [_new_piece(cell, source=_join_units(g).strip("\n")) for g in groups]
        return _finish(cell, [p if markdown_height(p.source) <= budget else _tag(p, SCROLL_TAG) for p in pieces])
    if cell.cell_type == "code":
        return _finish(cell, _split_code(cell, budget) or [cell])
    return [_tag(cell, SCROLL_TAG)]


# ---------------------------------------------------------------------------------------------------------
# Laying out a notebook's slides

COLAB_BADGE = re.compile(r"\[!\[[^\]]*\]\((?:https?:)?//colab\.research\.google\.com/assets/colab-badge\.svg\)\]\(([^)\s]+)\)")


def offline_badges(source: str) -> str:
    """The Colab badge is an image on the network: in the offline slides it becomes a text link."""
    return COLAB_BADGE.sub(r'<a class="llmfs-colab" href="\1">Open in Colab</a>', source)


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def _is_empty(cell) -> bool:
    return not cell.source.strip() and not cell.get("outputs")


def _set_type(cell, slide_type: str):
    cell.metadata.setdefault("slideshow", {})["slide_type"] = slide_type


def _title(cell) -> str:
    """The heading of a section's first cell, as plain text (math kept for MathJax), for its "continued" lines."""
    found = re.search(r"^#{1,3}\s+(.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
    if not found:
        return ""
    text = _LINK.sub(r"\1", found.group(1)).replace("**", "").replace("`", "")
    return html.escape(_HTML_TAG.sub("", text).strip(), quote=False)


def _continued(title: str, n: int):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(f'<p class="{CONT_CLASS}">{title}, continued</p>' if title else "")
    cell.metadata["slideshow"] = {"slide_type": "subslide"}
    cell["id"] = f"llmfs-continued-{n}"
    return cell


@dataclass
class Layout:
    """What ``plan`` did: sub-slides it started and cells it split or left to scroll."""

    slides: int = 0
    subslides: int = 0
    split_cells: int = 0
    scrolling: int = 0


def plan(nb, budget: float = BUDGET) -> tuple[object, Layout]:
    """A copy of ``nb`` laid out to fit: sections (cells marked ``slide``) become slides, and the cells of each
    section are packed onto sub-slides of at most ``budget`` px; empty and skipped cells are dropped."""
    nb = copy.deepcopy(nb)
    layout = Layout()
    cells, pending = [], False  # pending: a dropped cell started a slide, so the next kept one does
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = offline_badges(cell.source)
        if _slide_type(cell) == "skip" or _is_empty(cell):
            pending = pending or _slide_type(cell) == "slide"
            continue
        if pending and _slide_type(cell) not in ("notes", "slide"):
            _set_type(cell, "slide")
        pending = pending and _slide_type(cell) == "notes"
        cells.append(cell)
    out: list = []
    used, title, on_slide, started = 0.0, "", 0, False
    for cell in cells:
        kind = _slide_type(cell)
        if kind == "notes":
            out.append(cell)
            continue
        if kind == "slide" or not started:
            _set_type(cell, "slide")
            layout.slides += 1
            used, on_slide, title, started = 0.0, 0, _title(cell) or title, True
        elif kind == "subslide":
            layout.subslides += 1
            used, on_slide = 0.0, 0
        pieces = split_cell(cell, budget - CONTINUED_H)  # each piece fits a sub-slide under its "continued" line
        layout.split_cells += len(pieces) > 1
        for i, piece in enumerate(pieces):
            if i and _slide_type(piece) in ("slide", "subslide"):
                _set_type(piece, "-")
            scrolls = SCROLL_TAG in piece.metadata.get("tags", [])
            layout.scrolling += scrolls
            height = budget - CONTINUED_H if scrolls else cell_height(piece)
            if on_slide and used + height > budget:
                # a new sub-slide; a short lead-in (text ending in a colon) moves along with what it introduces
                prev = out[-1]
                lead = (on_slide >= 2 and prev.cell_type == "markdown" and _slide_type(prev) == "-"
                        and prev.source.rstrip().endswith(":") and CONTINUED_H + cell_height(prev) + height <= budget)
                if lead:
                    out.pop()
                layout.subslides += 1
                out.append(_continued(title, layout.subslides))
                used, on_slide = CONTINUED_H, 0
                if lead:
                    out.append(prev)
                    used, on_slide = used + cell_height(prev), 1
                if _slide_type(piece) == "subslide":
                    _set_type(piece, "-")
            out.append(piece)
            used += height
            on_slide += 1
    nb.cells = out
    return nb, layout


# A formula MathJax cannot break over lines (an aligned block, a matrix) and that is wider than the slide is
# shrunk to fit, each time MathJax has typeset (the deck re-typesets a slide when it is shown).
FIT_MATH_JS = """
<script>
if (window.MathJax && MathJax.Hub) MathJax.Hub.Register.MessageHook("End Process", function () {
  document.querySelectorAll(".reveal .slides .MJXc-display").forEach(function (d) {
    d.style.fontSize = "";
    if (d.clientWidth > 0 && d.scrollWidth > d.clientWidth + 1)
      d.style.fontSize = Math.max(50, Math.floor(100 * d.clientWidth / d.scrollWidth)) + "%";
  });
});
</script>
"""


def _fit_html(page: str) -> str:
    """The exported page with this module's CSS (after the theme's) and the script that shrinks wide formulas."""
    cut = page.find("</head>")
    page = page[:cut] + CSS + page[cut:] if cut >= 0 else CSS + page
    cut = page.rfind("</body>")
    return page[:cut] + FIT_MATH_JS + page[cut:] if cut >= 0 else page + FIT_MATH_JS


def render(nb_path: Path, out_dir: Path, vendor: Path, execute: bool = True, allow_errors: bool = False) -> Path:
    """Execute ``nb_path`` (in FAST mode if ``LLMFS_FAST`` is set) and write ``out_dir/<name>.slides.html``, laid out
    by ``plan`` to fit ``SLIDE_W`` x ``SLIDE_H``. ``allow_errors`` keeps going past a failing cell (its error is shown)."""
    import nbformat
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    nb_path, out_dir, vendor = Path(nb_path), Path(out_dir), Path(vendor)
    missing = [p for p in ("reveal.js/dist/reveal.js", "requirejs/require.js", "jquery/dist/jquery.min.js",
                           "mathjax/MathJax.js") if not (vendor / p).is_file()]
    if missing:
        raise FileNotFoundError(f"offline slide scripts missing in {vendor}: {missing}. Run `make setup`.")
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(nb_path, as_version=4)
    if execute:
        ExecutePreprocessor(timeout=900, kernel_name="python3", allow_errors=allow_errors).preprocess(
            nb, {"metadata": {"path": str(nb_path.parent)}})
    nb, _ = plan(nb)
    exporter = SlidesExporter(reveal_width=str(SLIDE_W), reveal_height=str(SLIDE_H), **_vendor_urls(out_dir, vendor))
    page, _ = exporter.from_notebook_node(nb)
    out = out_dir / f"{nb_path.stem}.slides.html"
    out.write_text(_fit_html(page), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slides", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks or series folders")
    parser.add_argument("--out", type=Path, default=Path("build/slides"))
    parser.add_argument("--vendor", type=Path, default=Path("build/vendor"))
    parser.add_argument("--no-execute", action="store_true")
    args = parser.parse_args(argv)
    nbs = [q for p in args.paths for q in (sorted(p.glob("*.ipynb")) if p.is_dir() else [p])]
    for nb in nbs:
        out = render(nb, args.out / nb.parent.name, args.vendor, execute=not args.no_execute)
        print(f"slides: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
