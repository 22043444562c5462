"""Question answering over a Python codebase, citing ``path:line`` (the 04RAG milestone).

    index = CodeIndex.build([Path(sysconfig.get_paths()["stdlib"])])  # syntax-tree chunks, BM25, MiniLM vectors
    index.save(folder); index = CodeIndex.load(folder)                # a persistent store on disk
    hits = index.search("how does pathlib join paths?", k=5)          # Hit(path, start_line, end_line, symbol, score)
    for piece in index.answer("how does pathlib join paths?"):        # streamed text, then the sources
        print(piece, end="")

From the command line (the store defaults to the course cache):

    python -m llmfs.rag.codeqa index /usr/lib/python3.11 --exclude test tests idle_test site-packages
    python -m llmfs.rag.codeqa ask "where does json decide how to format floats?"

Every file becomes chunks along its syntax tree (``chunk.python_chunks``: functions, methods, class
headers, module code; long ones cut into windows), named by their import path (``json.encoder.JSONEncoder
.iterencode``: a file's module name follows its packages' ``__init__.py`` files up to the import root, and
paths are relative to that root). A question is matched two ways, BM25 over the words of the code with
identifiers split (``JSONEncoder`` -> ``jsonencoder``, ``json``, ``encoder``), and MiniLM vectors of
each definition's name and first lines; the two rankings are fused by reciprocal rank (``llmfs.rag.hybrid.rrf``). Windows
of one definition count once. The answer is the local LLM's, given the top definitions' first lines; the
sources it was given follow it, with their lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import numbers
import os
import re
import sys
import threading
import time
import tokenize as py_tokenize
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from llmfs.config import progress as progress_bar
from llmfs.pretrain.checkpoint import read_safetensors, write_atomic
from llmfs.rag.bm25 import BM25
from llmfs.rag.chunk import Chunk, python_chunks
from llmfs.rag.hybrid import rrf

EXCLUDE = ("test", "tests", "idle_test", "site-packages", "__pycache__")  # folder names skipped: test suites, installs
METHODS = ("hybrid", "bm25", "dense")
EMBED_LINES = 5  # lines of each chunk that MiniLM embeds (see dense_text)
SYSTEM = ("You answer questions about Python source code. Use only the code given. Answer in two or three "
          "sentences and name the function that does it.")


@dataclass(frozen=True)
class Hit:
    """One retrieved definition: where it is and how well it matched (fused score, higher is better)."""

    path: str
    start_line: int
    end_line: int
    symbol: str
    score: float
    text: str

    @property
    def citation(self) -> str:
        return f"{self.path}:{self.start_line}"


_IDENTIFIER_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def code_tokens(text: str) -> list[str]:
    """Lower-case words of code or a question; an identifier gives itself and its parts:
    'JSONEncoder.iterencode(o)' -> ['jsonencoder', 'json', 'encoder', 'iterencode', 'o']."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out = []
    for word in re.findall(r"\w+", text):
        parts = [p.lower() for w in word.split("_") for p in _IDENTIFIER_PART.findall(w)]
        out += [word.lower().strip("_")] + (parts if len(parts) > 1 else [])
    return [t for t in out if t]


def _import_root(file: Path) -> Path:
    """The folder a file is imported from: up through the folders that are packages (hold __init__.py)."""
    root = file.parent
    while (root / "__init__.py").is_file():
        root = root.parent
    return root


def python_files(paths: Sequence[str | os.PathLike], exclude: Sequence[str] = EXCLUDE) -> list[Path]:
    """The .py files named in ``paths`` or found under them (sorted), skipping folders named in ``exclude``."""
    if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Sequence) or not paths:
        raise ValueError(f"paths must be a non-empty list of files or folders, got {paths!r:.80}")
    files = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += sorted(f for f in p.rglob("*.py") if not set(f.relative_to(p).parts[:-1]) & set(exclude))
        else:
            raise ValueError(f"{p} does not exist")
    return files


def lexical_text(c: Chunk) -> str:
    """What BM25 indexes: the path, the qualified name three times (the name says most: a field weight, as
    in BM25F), and the code with its comments and docstrings."""
    return f"{c.path} {c.symbol} {c.symbol} {c.symbol} {c.text}"


def dense_text(c: Chunk) -> str:
    """What MiniLM embeds: the qualified name and the first ``EMBED_LINES`` lines (signature, docstring).
    MiniLM was trained on sentences, not code: on the dev questions the head of a definition matched
    better than its whole text (and is cheaper to embed)."""
    return c.symbol + "\n" + "\n".join(c.text.splitlines()[:EMBED_LINES])


class CodeIndex:
    """Chunks of a codebase with their BM25 index and MiniLM vectors; ``search`` and ``answer``."""

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray, embedder=None):
        """``chunks`` and their (n, dim) unit vectors, as ``build`` makes them; ``embedder`` embeds questions."""
        if not chunks or not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or len(chunks) != len(vectors):
            raise ValueError(f"need one vector per chunk, got {len(chunks)} chunks and vectors of shape "
                             f"{getattr(vectors, 'shape', None)}")
        self.chunks, self.vectors = chunks, np.ascontiguousarray(vectors, dtype=np.float32)
        self.bm25 = BM25([code_tokens(lexical_text(c)) for c in chunks])
        self._embedder, self._llm = embedder, None
        self.skipped: list[str] = []  # files found under a folder that are not valid Python

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = _minilm()
        return self._embedder

    @staticmethod
    def chunk_files(paths: Sequence[str | os.PathLike], exclude: Sequence[str] = EXCLUDE,
                    max_lines: int = 60) -> tuple[list[Chunk], list[str]]:
        """(chunks of every file, files skipped). A file named in ``paths`` that is not valid Python raises
        ``ValueError``; one found under a folder is skipped and reported (a codebase may hold a few)."""
        named = {Path(p).resolve() for p in paths if Path(p).is_file()}
        chunks, skipped = [], []
        for file in python_files(paths, exclude):
            root = _import_root(file.resolve())
            rel = file.resolve().relative_to(root)
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            try:
                with py_tokenize.open(file) as f:  # honours a file's coding declaration
                    source = f.read()
                chunks += python_chunks(source, rel.as_posix(), module, max_lines)
            except (ValueError, SyntaxError, UnicodeDecodeError) as e:
                if file.resolve() in named:
                    raise ValueError(f"{file} is not valid Python: {e}") from None
                skipped.append(f"{file}: {e}")
        return chunks, skipped

    @classmethod
    def build(cls, paths: Sequence[str | os.PathLike], exclude: Sequence[str] = EXCLUDE, embedder=None,
              max_lines: int = 60, batch_size: int = 64, progress: bool = False) -> CodeIndex:
        """Chunk every .py file under ``paths`` and embed the chunks (``embedder``: a ``MiniLM``, default the
        cached all-MiniLM-L6-v2). Raises ``ValueError`` for a path that does not exist, a named file that is
        not valid Python, or no Python code at all."""
        chunks, skipped = cls.chunk_files(paths, exclude, max_lines)
        if not chunks:
            raise ValueError(f"no Python code found under {[str(p) for p in paths]}")
        embedder = embedder or _minilm()
        texts = [dense_text(c) for c in chunks]
        step = batch_size * 16
        starts = progress_bar(range(0, len(texts), step), desc=f"embedding {len(texts):,} chunks", disable=not progress)
        vectors = np.concatenate([embedder.encode(texts[i:i + step], batch_size) for i in starts])
        index = cls(chunks, vectors, embedder)
        index.skipped = skipped
        return index

    def scores(self, question: str, method: str = "hybrid") -> np.ndarray:
        """A score per chunk (n,), higher is better: "bm25", "dense" (cosine of MiniLM vectors) or "hybrid"
        (the two rankings fused by reciprocal rank)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if method != "dense":
            lexical = self.bm25.get_scores(code_tokens(question))
        if method != "bm25":
            dense = self.vectors @ self.embedder.encode([question])[0]  # (n, dim) @ (dim,)
        if method == "hybrid":
            return rrf([np.argsort(-lexical, kind="stable"), np.argsort(-dense, kind="stable")])
        return lexical if method == "bm25" else dense

    def search(self, question: str, k: int = 5, method: str = "hybrid") -> list[Hit]:
        """The ``k`` best definitions for ``question`` (fewer only if the codebase has fewer), best first."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty str, got {question!r:.80}")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        scores = self.scores(question, method)
        hits, seen = [], set()
        for i in np.argsort(-scores, kind="stable"):
            c = self.chunks[i]
            if (c.path, c.symbol) in seen:  # another window of a definition already in the list
                continue
            seen.add((c.path, c.symbol))
            hits.append(Hit(c.path, c.start_line, c.end_line, c.symbol, float(scores[i]), c.text))
            if len(hits) == k:
                break
        return hits

    def prompt(self, question: str, hits: Sequence[Hit], context_lines: int = 8) -> list[dict]:
        """The chat messages for the LLM: each hit's first ``context_lines`` lines, numbered [1], [2], ..."""
        sources = "\n\n".join(f"[{i}] {h.citation} {h.symbol}\n" + "\n".join(h.text.splitlines()[:context_lines])
                              for i, h in enumerate(hits, 1))
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Code:\n{sources}\n\nQuestion: {question}"}]

    def answer(self, question: str, k: int = 3, max_new_tokens: int = 80, context_lines: int = 8,
               llm=None) -> Iterator[str]:
        """Stream the answer: the LLM's text as it is generated (greedy), then a line per source with
        ``path:line``. ``llm``: (model, tokenizer), default SmolLM2-135M-Instruct loaded once."""
        from transformers import TextIteratorStreamer

        hits = self.search(question, k)
        if llm is None:
            if self._llm is None:
                from llmfs.finetune.model import load_smollm2

                self._llm = load_smollm2()
            llm = self._llm
        model, tokenizer = llm
        ids = tokenizer.apply_chat_template(self.prompt(question, hits, context_lines), add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        worker = threading.Thread(target=model.generate, kwargs=dict(
            **ids, streamer=streamer, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id))
        worker.start()
        yield from streamer
        worker.join()
        yield "\n\nSources:\n" + "\n".join(f"[{i}] {h.citation}-{h.end_line} {h.symbol}" for i, h in enumerate(hits, 1))

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the store: ``chunks.jsonl`` then ``vectors.safetensors`` (which records the chunks' sha256,
        so a half-written store is detected), each atomically."""
        folder = Path(folder)
        data = "".join(json.dumps(asdict(c)) + "\n" for c in self.chunks).encode()
        write_atomic(folder / "chunks.jsonl", data)
        from safetensors.torch import save

        meta = {"chunks_sha256": hashlib.sha256(data).hexdigest(), "n_chunks": str(len(self.chunks)),
                "skipped": json.dumps(self.skipped)}
        write_atomic(folder / "vectors.safetensors", save({"vectors": torch.from_numpy(self.vectors)}, metadata=meta))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, embedder=None) -> CodeIndex:
        """Reopen a store written by ``save``."""
        folder = Path(folder)
        if not (folder / "vectors.safetensors").is_file() or not (folder / "chunks.jsonl").is_file():
            raise ValueError(f"no code index in {folder}: build one with `python -m llmfs.rag.codeqa index PATH...`")
        tensors, meta = read_safetensors(folder / "vectors.safetensors")
        data = (folder / "chunks.jsonl").read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("chunks_sha256"):
            raise ValueError(f"{folder}: chunks.jsonl does not match vectors.safetensors (an interrupted save?); "
                             "rebuild with `python -m llmfs.rag.codeqa index PATH...`")
        index = cls([Chunk(**json.loads(line)) for line in data.decode().splitlines()], tensors["vectors"].numpy(), embedder)
        index.skipped = json.loads(meta.get("skipped", "[]"))
        return index


def _minilm():
    from llmfs.rag.embed import MiniLM

    return MiniLM.load()


def default_store() -> Path:
    from llmfs.assets import cache_dir

    return cache_dir() / "codeqa"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmfs.rag.codeqa", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_index = sub.add_parser("index", help="chunk and embed the Python files under PATH...")
    p_index.add_argument("paths", nargs="+")
    p_index.add_argument("--exclude", nargs="*", default=list(EXCLUDE), help="folder names to skip")
    p_ask = sub.add_parser("ask", help="answer a question, citing path:line")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", type=int, default=3, help="definitions given to the LLM")
    p_ask.add_argument("--no-llm", action="store_true", help="only list the hits")
    for p in (p_index, p_ask):
        p.add_argument("--store", default=str(default_store()), help="index folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.command == "index":
            t = time.perf_counter()
            index = CodeIndex.build(args.paths, args.exclude, progress=True)
            index.save(args.store)
            lines = sum(c.end_line - c.start_line + 1 for c in index.chunks)
            seconds = time.perf_counter() - t
            print(f"indexed {len(index.chunks):,} chunks ({lines:,} lines) in {seconds:.0f} s ({lines / seconds:,.0f} lines/s)"
                  f" into {args.store}")
            for s in index.skipped:
                print(f"skipped (not valid Python): {s}")
        else:
            index = CodeIndex.load(args.store)
            if args.no_llm:
                for h in index.search(args.question, args.k):
                    print(f"{h.score:.4f}  {h.citation}-{h.end_line}  {h.symbol}")
            else:
                for piece in index.answer(args.question, args.k):
                    print(piece, end="", flush=True)
                print()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
