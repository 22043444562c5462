"""llmfs.rag.codeqa: files become syntax-tree chunks named by import path; hybrid search fills k with
distinct definitions; the store survives save/load and detects a torn write; bad input raises clear
errors; the command line indexes and answers; answers stream and cite path:line."""

import hashlib
import json

import numpy as np
import pytest

from llmfs.rag import codeqa
from llmfs.rag.hybrid import rrf


class HashEmbedder:
    """A stand-in for MiniLM: a unit vector of hashed code tokens (deterministic, instant)."""

    def encode(self, texts, batch_size=32):
        out = np.zeros((len(texts), 64), np.float32)
        for row, text in zip(out, texts):
            for t in codeqa.code_tokens(text):
                row[int(hashlib.md5(t.encode()).hexdigest(), 16) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


MOD = '''"""Geometry helpers."""


def circle_area(radius):
    """Area of a circle."""
    return 3.14159 * radius ** 2


class Shape:
    """A shape."""

    def perimeter(self):
        return 0

    def scale(self, factor):
''' + "\n".join(f"        x{i} = factor * {i}" for i in range(30)) + '''
        return self
'''


@pytest.fixture()
def codebase(tmp_path):
    pkg = tmp_path / "src" / "geo"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("\"\"\"The geo package.\"\"\"\nVERSION = 1\n")
    (pkg / "shapes.py").write_text(MOD)
    (pkg / "tests" / "test_shapes.py").write_text("def test_x():\n    pass\n")
    (tmp_path / "src" / "broken.py").write_text("def f(:\n")
    return tmp_path / "src"


def test_code_tokens_split_identifiers():
    assert codeqa.code_tokens("JSONEncoder.iterencode(o)") == ["jsonencoder", "json", "encoder", "iterencode", "o"]
    assert codeqa.code_tokens("_make_iterencode") == ["make_iterencode", "make", "iterencode"]


def test_build_names_chunks_by_import_path_and_skips_tests_and_broken_files(codebase):
    index = codeqa.CodeIndex.build([codebase], embedder=HashEmbedder(), max_lines=10)
    symbols = {c.symbol for c in index.chunks}
    assert {"geo", "geo.shapes.circle_area", "geo.shapes.Shape", "geo.shapes.Shape.perimeter",
            "geo.shapes.Shape.scale"} <= symbols
    assert not any("test_" in c.path for c in index.chunks), "test suites are excluded"
    assert {c.path for c in index.chunks} == {"geo/__init__.py", "geo/shapes.py"}
    assert len(index.skipped) == 1 and "broken.py" in index.skipped[0]
    assert sum(c.symbol == "geo.shapes.Shape.scale" for c in index.chunks) >= 3, "a long method is cut into windows"
    hits = index.search("area of a circle radius", k=3)
    assert hits[0].symbol == "geo.shapes.circle_area" and hits[0].citation == "geo/shapes.py:4"
    assert len({h.symbol for h in hits}) == 3, "windows of one definition count once"
    assert len(index.search("scale", k=50)) == len(symbols), "asked for more than exist: every definition, once"
    for method in ("bm25", "dense"):
        assert index.search("area of a circle radius", k=1, method=method)[0].symbol == "geo.shapes.circle_area"
    bm25, dense = (np.argsort(-index.scores("area of a circle", m), kind="stable") for m in ("bm25", "dense"))
    assert np.array_equal(index.scores("area of a circle"), rrf([bm25, dense])), "hybrid = RRF of the two"


def test_store_round_trip_and_torn_write(codebase, tmp_path):
    index = codeqa.CodeIndex.build([codebase / "geo"], embedder=HashEmbedder())
    store = index.save(tmp_path / "store")
    again = codeqa.CodeIndex.load(store, embedder=HashEmbedder())
    assert again.chunks == index.chunks and np.array_equal(again.vectors, index.vectors)
    assert again.search("perimeter of a shape", 3) == index.search("perimeter of a shape", 3)
    (store / "chunks.jsonl").write_text((store / "chunks.jsonl").read_text()[:-40])  # a save cut short
    with pytest.raises(ValueError, match="does not match"):
        codeqa.CodeIndex.load(store)
    with pytest.raises(ValueError, match="no code index"):
        codeqa.CodeIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("paths, message", [
    (lambda root: [root / "missing"], "does not exist"),
    (lambda root: [root / "broken.py"], "broken.py is not valid Python"),
    (lambda root: [root / "empty"], "no Python code found"),
    (lambda root: str(root), "paths must be a non-empty list"),
    (lambda root: [], "paths must be a non-empty list"),
])
def test_bad_paths(codebase, paths, message):
    with pytest.raises(ValueError, match=message):
        (codebase / "empty").mkdir(exist_ok=True)
        codeqa.CodeIndex.build(paths(codebase), embedder=HashEmbedder())


def test_bad_search_arguments(codebase):
    index = codeqa.CodeIndex.build([codebase / "geo"], embedder=HashEmbedder())
    for kwargs, message in [({"k": 0}, "k must be"), ({"question": "  "}, "question must be"), ({"k": 2.0}, "k must be"),
                            ({"method": "bm-25"}, "method must be one of")]:
        with pytest.raises(ValueError, match=message):
            index.search(**{"question": "area", "k": 3, **kwargs})


def test_command_line(codebase, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(codeqa, "_minilm", HashEmbedder)
    store = str(tmp_path / "cli-store")
    assert codeqa.main(["index", str(codebase / "geo"), "--store", store]) == 0
    assert "indexed" in capsys.readouterr().out
    assert codeqa.main(["ask", "area of a circle", "--no-llm", "-k", "2", "--store", store]) == 0
    assert "geo/shapes.py:4-" in capsys.readouterr().out.splitlines()[0]
    assert codeqa.main(["ask", "x", "--store", str(tmp_path / "none")]) == 2
    assert "no code index" in capsys.readouterr().err


def test_answer_streams_text_then_cited_sources(codebase):
    index = codeqa.CodeIndex.build([codebase / "geo"], embedder=HashEmbedder())
    pieces = list(index.answer("how is the area of a circle computed?", k=2, max_new_tokens=12))
    text = "".join(pieces)
    assert len(pieces) >= 3, "the answer arrives in pieces (streamed)"
    assert text.split("Sources:")[0].strip(), "the model wrote something before the sources"
    assert "[1] geo/shapes.py:4-6 geo.shapes.circle_area" in text
    assert json.dumps(text)  # plain text
