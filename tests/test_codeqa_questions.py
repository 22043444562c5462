"""The code-QA question set: enough questions, disjoint splits, and every gold definition exists in the
running interpreter's standard library as a chunk of llmfs.rag.chunk.python_chunks."""

import sys
import sysconfig
from pathlib import Path

from llmfs.rag import code_questions
from llmfs.rag.chunk import python_chunks

LIB = Path(sysconfig.get_paths()["stdlib"])


def test_enough_questions_and_disjoint_splits():
    dev, test = code_questions.questions("dev"), code_questions.questions("test")
    assert len(code_questions.QUESTIONS) >= 100 and len(test) >= 60 and len(code_questions.questions("test", fast=True)) >= 40
    assert not set(dev) & set(test) and len(dev) + len(test) == len(code_questions.QUESTIONS)
    assert len({q for q, _, _ in code_questions.QUESTIONS}) == len(code_questions.QUESTIONS), "a question is repeated"


def test_gold_definitions_exist_in_this_python():
    symbols: dict[str, set[str]] = {}
    missing = []
    for _, path, symbol in code_questions.QUESTIONS:
        if path not in symbols:
            file = LIB / path
            module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
            symbols[path] = {c.symbol for c in python_chunks(file.read_text("utf-8"), path, module)} if file.exists() else set()
        if symbol not in symbols[path]:
            missing.append(f"{path}: {symbol}")
    if sys.version_info[:2] in ((3, 11), (3, 12)):
        assert not missing, f"gold definitions not found: {missing}"
    else:  # the library moves between versions: most questions must still have their answer
        assert len(missing) <= len(code_questions.QUESTIONS) // 10, f"too many gold definitions moved: {missing}"
