"""The question sets of retrieval: SQuAD v1.1 questions and the paragraphs that answer them.

    questions, paragraphs = squad_questions()    # 1,000 questions; 803 distinct paragraphs
    q = questions[0]                             # SquadQuestion(question, answers, paragraph_id)
    paragraphs[q.paragraph_id]                   # the paragraph that holds the answer
    articles = squad_articles()                  # 48 (title, text): an article's paragraphs joined by "\\n\\n"
    articles[squad_paragraph_articles()[q.paragraph_id]]   # the article that holds the answer

The file is AllenAI's OLMo evaluation copy of 1,000 SQuAD v1.1 validation questions (``llmfs.assets``:
``squad``): each line's ``doc.query`` reads ``Title: ...\\nBackground: <paragraph>\\nQuestion: ...\\nAnswer:``
and ``doc.answers_text`` lists the crowd's answers (spans of the paragraph). A retriever searches the
distinct paragraphs for each question; the right one is ``paragraph_id``. Each line also names the
Wikipedia article of its paragraph: ``squad_articles()`` joins an article's paragraphs back into one text,
for chunkers to cut as they like. The file holds only the paragraphs that have questions among these
1,000, in its own order (not SQuAD's), so an "article" here is those paragraphs, in the order the file
first shows them. The King James verses, the course's other corpus, come from ``llmfs.data.kjv_verses()``.
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


class SquadArticle(NamedTuple):
    title: str  # the Wikipedia page name, e.g. "Super_Bowl_50"
    text: str  # its paragraphs (those with questions here), in file order, joined by "\n\n"


@lru_cache(maxsize=1)
def _load_articles() -> tuple[tuple[SquadArticle, ...], tuple[int, ...]]:
    _, paragraphs = _load_squad()
    title_of = {}  # paragraph -> title; a paragraph belongs to one article
    with gzip.open(assets.path("squad"), "rt", encoding="utf-8") as f:
        for line in f:
            title, paragraph, _ = _parse_query(json.loads(line)["doc"]["query"])
            title_of.setdefault(paragraph, title)
    titles = list(dict.fromkeys(title_of[p] for p in paragraphs))  # in order of first use
    article_of = tuple(titles.index(title_of[p]) for p in paragraphs)
    articles = tuple(SquadArticle(t, "\n\n".join(p for p, a in zip(paragraphs, article_of) if a == i))
                     for i, t in enumerate(titles))
    return articles, article_of


def squad_articles() -> list[SquadArticle]:
    """The 48 articles of the SQuAD questions as ``SquadArticle(title, text)`` (a (title, text) tuple): the
    text is the article's distinct paragraphs, in the order the file first shows them, joined by ``"\\n\\n"``,
    so ``text.split("\\n\\n")`` gives them back (no paragraph holds a blank line)."""
    return list(_load_articles()[0])


def squad_paragraph_articles() -> list[int]:
    """For each of the 803 paragraphs of ``squad_questions()``, the index of its article in ``squad_articles()``."""
    return list(_load_articles()[1])
