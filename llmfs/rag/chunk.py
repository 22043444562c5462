"""Chunking: cutting documents into the pieces a retriever indexes.

    fixed_windows(text, size=500, overlap=50)           # characters, a window every size - overlap
    recursive_split(text, chunk_size=500, chunk_overlap=50)  # = LangChain's RecursiveCharacterTextSplitter
    sentence_windows(text, n=3, overlap=1)              # n sentences per chunk
    python_chunks(source, path="json/encoder.py", module="json.encoder")  # functions, classes, methods

Text chunkers return strings. ``python_chunks`` returns ``Chunk`` records that know where they come
from (file, qualified name, first and last line), so that an answer can cite ``path:line``.
"""

from __future__ import annotations

import ast
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass

SEPARATORS = ("\n\n", "\n", " ", "")  # paragraphs, lines, words, characters: LangChain's default order


def _check_sizes(size, overlap) -> None:
    for name, value, low in (("size", size, 1), ("overlap", overlap, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if overlap >= size:
        raise ValueError(f"overlap ({overlap}) must be smaller than size ({size})")


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def fixed_windows(text: str, size: int = 500, overlap: int = 50) -> list[str]:
    """Windows of ``size`` characters, each starting ``size - overlap`` after the previous one; the last
    window ends at the end of the text (so no window is only overlap)."""
    _check_text(text)
    _check_sizes(size, overlap)
    step = size - overlap
    starts = range(0, max(len(text) - overlap, 1), step)
    return [text[s:s + size] for s in starts if text[s:s + size]]


def _pieces(text: str, separator: str) -> list[str]:
    """Split at ``separator``, keeping it at the start of the piece after it ('a\\nb' -> 'a', '\\nb')."""
    if not separator:
        return list(text)
    first, *rest = text.split(separator)
    return [p for p in [first, *(separator + r for r in rest)] if p]


def _merge(pieces: list[str], size: int, overlap: int) -> list[str]:
    """Greedily pack consecutive pieces into chunks of at most ``size`` characters; a new chunk starts
    with the last pieces of the previous one, as long as they hold at most ``overlap`` characters."""
    chunks, window, total = [], [], 0  # window: the pieces of the chunk being built, total: their length
    for piece in pieces:
        if window and total + len(piece) > size:
            if text := "".join(window).strip():
                chunks.append(text)
            while total > overlap or (total > 0 and total + len(piece) > size):  # keep only the overlap
                total -= len(window.pop(0))
        window.append(piece)
        total += len(piece)
    if text := "".join(window).strip():
        chunks.append(text)
    return chunks


def recursive_split(text: str, chunk_size: int = 500, chunk_overlap: int = 50,
                    separators: Sequence[str] = SEPARATORS) -> list[str]:
    """Split at the coarsest separator present (paragraphs first), pack the pieces into chunks of at
    most ``chunk_size`` characters with ``chunk_overlap`` of context carried over, and split any piece
    that is still too long with the next, finer separator. Chunks are stripped of surrounding whitespace.
    Equal, chunk for chunk, to LangChain's ``RecursiveCharacterTextSplitter(chunk_size, chunk_overlap)``."""
    _check_text(text)
    _check_sizes(chunk_size, chunk_overlap)
    if isinstance(separators, str) or not all(isinstance(s, str) for s in separators) or not separators:
        raise ValueError(f"separators must be a non-empty list of str, got {separators!r}")
    separator, finer = separators[-1], ()
    for i, s in enumerate(separators):
        if s == "" or s in text:
            separator, finer = s, (tuple(separators[i + 1:]) if s else ())
            break
    chunks, small = [], []
    for piece in _pieces(text, separator):
        if len(piece) < chunk_size:
            small.append(piece)
            continue
        chunks += _merge(small, chunk_size, chunk_overlap)  # what fitted so far, then the long piece
        small = []
        chunks += recursive_split(piece, chunk_size, chunk_overlap, finer) if finer else [piece]
    return chunks + _merge(small, chunk_size, chunk_overlap)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")  # ". The" ends a sentence, "e.g. the" does not


def sentences(text: str) -> list[str]:
    """A simple sentence splitter: a sentence ends at . ! or ? followed by space and a capital or digit."""
    _check_text(text)
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def sentence_windows(text: str, n: int = 3, overlap: int = 1) -> list[str]:
    """Chunks of ``n`` consecutive sentences, each sharing ``overlap`` sentences with the previous one."""
    _check_sizes(n, overlap)
    sents = sentences(text)
    return [" ".join(sents[s:s + n]) for s in range(0, max(len(sents) - overlap, 1), n - overlap) if sents[s:s + n]]


@dataclass(frozen=True)
class Chunk:
    """A piece of a source file: its text, the file, the qualified name of what it defines, and its line
    span (1-based, inclusive), e.g. Chunk(text, "json/encoder.py", "json.encoder.JSONEncoder.default", 161, 182)."""

    text: str
    path: str
    symbol: str
    start_line: int
    end_line: int

    @property
    def citation(self) -> str:
        return f"{self.path}:{self.start_line}"


def _span(node: ast.AST) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])  # decorators belong to it
    return first, node.end_lineno


_BLOCKS = (ast.If, ast.Try, ast.TryStar, ast.With, ast.For, ast.While)  # may hold definitions: `if sys.platform...: def f`


def _flatten(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` with the blocks that contain definitions opened up, in line order."""
    out = []
    for node in body:
        if isinstance(node, _BLOCKS) and any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                                             for n in ast.walk(node)):
            inner = [*getattr(node, "body", []), *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                     *(s for h in getattr(node, "handlers", []) for s in h.body)]
            out += _flatten(sorted(inner, key=lambda n: n.lineno))
        else:
            out.append(node)
    return out


def python_chunks(source: str, path: str = "<string>", module: str = "", max_lines: int = 120) -> list[Chunk]:
    """Chunks of a Python file along its syntax tree: one per function, one per method (``Class.method``),
    one per class for its header and class-level code (without its methods), and one per run of module-level
    code between definitions (symbol: the module). Definitions inside ``if`` / ``try`` / ``with`` blocks at
    module or class level count too (``if hasattr(os, "statvfs"): def disk_usage``). Definitions longer than
    ``max_lines`` are cut into windows of ``max_lines`` lines with the same symbol. Chunks come in file order.

    Raises ``ValueError`` naming the file and line when ``source`` is not valid Python."""
    _check_text(source)
    if isinstance(max_lines, bool) or not isinstance(max_lines, numbers.Integral) or max_lines < 1:
        raise ValueError(f"max_lines must be an integer >= 1, got {max_lines!r}")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes in the source
        line = getattr(e, "lineno", None)
        raise ValueError(f"{path}{f':{line}' if line else ''} is not valid Python: {e}") from None
    lines = source.splitlines()
    prefix = f"{module}." if module else ""
    spans: list[tuple[str, int, int]] = []  # (symbol, first line, last line)

    def visit(body: list[ast.stmt], scope: str, outer: str, first: int, last: int) -> None:
        # the statements of `body` (lines first..last) that are not definitions form chunks named `outer`
        loose = first
        for node in _flatten(body):
            start, end = _span(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                spans.append((outer, loose, start - 1))
                spans.append((f"{prefix}{scope}{node.name}", start, end))
            elif isinstance(node, ast.ClassDef):
                spans.append((outer, loose, start - 1))
                inner = f"{prefix}{scope}{node.name}"
                visit(node.body, f"{scope}{node.name}.", inner, start, end)
            else:
                continue
            loose = end + 1
        spans.append((outer, loose, last))

    visit(tree.body, "", module or path, 1, len(lines))
    chunks = []
    for symbol, start, end in sorted(spans, key=lambda s: s[1]):
        while start <= end and not lines[start - 1].strip():  # no blank lines at either end
            start += 1
        while end >= start and not lines[end - 1].strip():
            end -= 1
        for s in range(start, end + 1, max_lines):
            e = min(s + max_lines - 1, end)
            chunks.append(Chunk("\n".join(lines[s - 1:e]), path, symbol, s, e))
    return chunks
