"""The question sets of retrieval: SQuAD v1.1 questions and the paragraphs that answer them.

    questions, paragraphs = squad_questions()    # 1,000 questions; 803 distinct paragraphs
    q = questions[0]                             # SquadQuestion(question, answers, paragraph_id)
    paragraphs[q.paragraph_id]                   # the paragraph that holds the answer

The file is AllenAI's OLMo evaluation copy of 1,000 SQuAD v1.1 validation questions (``llmfs.assets``:
``squad``): each line's ``doc.query`` reads ``Title: ...\\nBackground: <paragraph>\\nQuestion: ...\\nAnswer:``
and ``doc.answers_text`` lists the crowd's answers (spans of the paragraph). A retriever searches the
distinct paragraphs for each question; the right one is ``paragraph_id``. The King James verses, the
course's other corpus, come from ``llmfs.data.kjv_verses()``.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from typing import NamedTuple

from llmfs import assets


class SquadQuestion(NamedTuple):
    question: str
    answers: list[str]  # every annotator's answer, a span of the paragraph (repeats kept, as SQuAD's)
    paragraph_id: int  # index into the list of distinct paragraphs


def _parse_query(query: str) -> tuple[str, str, str]:
    """'Title: T\\nBackground: P\\nQuestion: Q\\nAnswer:' -> (T, P, Q). A paragraph may hold a newline
    (chemical formulas such as 'O\\n2'), so the paragraph ends at the *last* '\\nQuestion: '."""
    if not (query.startswith("Title: ") and "\nBackground: " in query and query.endswith("\nAnswer:")):
        raise ValueError("not a SQuAD query of the form 'Title: ...\\nBackground: ...\\nQuestion: ...\\nAnswer:': "
                         f"{query[:80]!r}")
    title, rest = query.removeprefix("Title: ").removesuffix("\nAnswer:").split("\nBackground: ", 1)
    paragraph, question = rest.rsplit("\nQuestion: ", 1)
    return title, paragraph, question


@lru_cache(maxsize=1)
def _load_squad() -> tuple[tuple[SquadQuestion, ...], tuple[str, ...]]:
    questions, paragraph_ids = [], {}
    with gzip.open(assets.path("squad"), "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)["doc"]
            _, paragraph, question = _parse_query(doc["query"])
            pid = paragraph_ids.setdefault(paragraph, len(paragraph_ids))  # numbered in order of first use
            questions.append(SquadQuestion(question, list(doc["answers_text"]), pid))
    return tuple(questions), tuple(paragraph_ids)


def squad_questions() -> tuple[list[SquadQuestion], list[str]]:
    """``(questions, paragraphs)``: 1,000 ``SquadQuestion(question, answers, paragraph_id)`` and the 803
    distinct paragraphs they were asked about; ``paragraphs[q.paragraph_id]`` contains every answer of ``q``."""
    questions, paragraphs = _load_squad()
    return [q._replace(answers=list(q.answers)) for q in questions], list(paragraphs)  # copies: callers may edit
