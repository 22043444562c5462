"""llmfs.rag.chunk: the recursive splitter equals LangChain's chunk for chunk; fixed and sentence windows
cover the text with the asked overlap; Python chunks follow the syntax tree with exact line spans."""

import ast
import inspect
import json.encoder
import random

import pytest
from langchain_text_splitters import RecursiveCharacterTextSplitter

from llmfs.rag import chunk


def _random_text(rng: random.Random) -> str:
    words = ["alpha", "be", "gamma-ray", "d", "epsilonic", "zeta.", "Eta", "theta,", "iota!", "kappa?"]
    parts = []
    for _ in range(rng.randint(0, 60)):
        parts.append(rng.choice(words + ["a" * rng.randint(1, 90)]))
        parts.append(rng.choice([" ", " ", " ", "\n", "\n\n", "  ", "\n\n\n", " \n"]))
    return "".join(parts)


@pytest.mark.parametrize("size, overlap", [(40, 0), (40, 10), (100, 30), (7, 3), (250, 50)])
def test_recursive_split_equals_langchain(size, overlap):
    rng = random.Random(size * 100 + overlap)
    texts = [_random_text(rng) for _ in range(60)] + [inspect.getsource(json.encoder), "", "   ", "x" * 500]
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    for text in texts:
        assert chunk.recursive_split(text, size, overlap) == splitter.split_text(text)


def test_recursive_split_custom_separators_equal_langchain():
    text = inspect.getsource(json.encoder)
    seps = ["\ndef ", "\n\n", "\n", " ", ""]
    ours = chunk.recursive_split(text, 300, 40, seps)
    assert ours == RecursiveCharacterTextSplitter(separators=seps, chunk_size=300, chunk_overlap=40).split_text(text)


def test_fixed_windows_cover_the_text_with_overlap():
    text = "".join(chr(97 + i % 26) for i in range(1037))
    wins = chunk.fixed_windows(text, 100, 20)
    assert all(len(w) <= 100 for w in wins) and wins[-1].endswith(text[-20:])
    assert all(a[-20:] == b[:20] for a, b in zip(wins, wins[1:])), "each window starts with the last 20 of the one before"
    assert "".join([wins[0]] + [w[20:] for w in wins[1:]]) == text, "windows minus overlaps rebuild the text"
    assert chunk.fixed_windows("short", 100, 20) == ["short"] and chunk.fixed_windows("", 10, 2) == []


def test_sentence_windows():
    text = "One is here. Two follows, e.g. this! Three? 4 comes next. Five ends."
    assert chunk.sentences(text) == ["One is here.", "Two follows, e.g. this!", "Three?", "4 comes next.", "Five ends."]
    assert chunk.sentence_windows(text, 2, 1) == ["One is here. Two follows, e.g. this!", "Two follows, e.g. this! Three?",
                                                  "Three? 4 comes next.", "4 comes next. Five ends."]
    assert chunk.sentence_windows(text, 3, 0) == ["One is here. Two follows, e.g. this! Three?", "4 comes next. Five ends."]


SOURCE = '''"""Doc."""
import os

X = 1


@decorator
def top(a):
    return a


class Box:
    """A box."""
    size = 3

    def open(self):
        return 1

    async def close(self):
        pass
    tail = 4


def last():
    def inner():
        pass
    return inner
'''


def test_python_chunks_follow_the_syntax_tree():
    chunks = chunk.python_chunks(SOURCE, "pkg/mod.py", "pkg.mod")
    got = [(c.symbol, c.start_line, c.end_line) for c in chunks]
    assert got == [("pkg.mod", 1, 4), ("pkg.mod.top", 7, 9), ("pkg.mod.Box", 12, 14), ("pkg.mod.Box.open", 16, 17),
                   ("pkg.mod.Box.close", 19, 20), ("pkg.mod.Box", 21, 21), ("pkg.mod.last", 24, 27)]
    lines = SOURCE.splitlines()
    for c in chunks:
        assert c.text == "\n".join(lines[c.start_line - 1:c.end_line]) and c.path == "pkg/mod.py"
    assert chunks[1].text.startswith("@decorator") and chunks[1].citation == "pkg/mod.py:7"


def test_python_chunks_of_a_real_module_cover_every_definition():
    source = inspect.getsource(json.encoder)
    chunks = chunk.python_chunks(source, "json/encoder.py", "json.encoder", max_lines=40)
    symbols = {c.symbol for c in chunks}
    defs = {f"json.encoder.{n.name}" for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert defs <= symbols and "json.encoder.JSONEncoder.iterencode" in symbols
    assert all(c.end_line - c.start_line < 40 for c in chunks)
    starts = [c.start_line for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


@pytest.mark.parametrize("call, message", [
    (lambda: chunk.python_chunks("def f(:\n", "bad.py"), r"bad.py:1 is not valid Python"),
    (lambda: chunk.python_chunks("x = '\0'", "nul.py"), "nul.py is not valid Python"),
    (lambda: chunk.recursive_split("abc", 10, 10), "overlap"),
    (lambda: chunk.recursive_split("abc", 0, 0), "size must be"),
    (lambda: chunk.recursive_split("abc", 10, 2, []), "separators must be"),
    (lambda: chunk.fixed_windows("abc", 5, -1), "overlap must be"),
    (lambda: chunk.sentence_windows("A. B.", 2, 2), "overlap"),
    (lambda: chunk.python_chunks("x = 1", max_lines=0), "max_lines must be"),
])
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_text_must_be_a_string():
    with pytest.raises(TypeError, match="text must be a str"):
        chunk.recursive_split(b"bytes", 10, 2)
