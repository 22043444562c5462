"""The chunking notebook's data and edge cases: SQuAD's articles rebuilt from their paragraphs; the recursive
splitter equal to LangChain's where splitters go wrong; every chunker refuses what is not text."""

import pytest
from langchain_text_splitters import RecursiveCharacterTextSplitter

from llmfs.rag import chunk, data
from llmfs.rag.metrics import normalize_answer


def test_squad_articles_hold_every_paragraph_once_in_order():
    questions, paragraphs = data.squad_questions()
    articles, article_of = data.squad_articles(), data.squad_paragraph_articles()
    assert len(articles) == 48 and len(article_of) == len(paragraphs) == 803
    assert len({a.title for a in articles}) == 48 and articles[0] == (articles[0].title, articles[0].text)
    for i, (title, text) in enumerate(articles):
        mine = [p for p, a in zip(paragraphs, article_of) if a == i]
        assert mine and text.split("\n\n") == mine, f"{title}: its paragraphs, in order, joined by a blank line"
    assert sorted(set(article_of)) == list(range(48)), "every article has a paragraph"


def test_every_answer_is_in_its_article():
    questions, paragraphs = data.squad_questions()
    articles, article_of = data.squad_articles(), data.squad_paragraph_articles()
    for q in questions[:200]:
        text = articles[article_of[q.paragraph_id]].text
        assert paragraphs[q.paragraph_id] in text and any(a in text for a in q.answers)
    # the notebook's test: a normalised answer, as whole words, in the normalised text
    hits = [any(f" {normalize_answer(a)} " in f" {normalize_answer(paragraphs[q.paragraph_id])} " for a in q.answers)
            for q in questions]
    assert sum(hits) >= 980, "SQuAD answers are spans of their paragraph (a few lose a word to punctuation)"


def test_squad_articles_are_copies():
    articles = data.squad_articles()
    articles.clear()
    data.squad_paragraph_articles().append(-1)
    assert len(data.squad_articles()) == 48 and len(data.squad_paragraph_articles()) == 803


EDGE_CASES = ["", " ", "   \n\n  ", "shorter than a chunk", "x" * 1234, "supercalifragilistic" * 30 + " end",
              "\n\n" * 40, "a line\nanother line\n" * 60, "word " * 300, "é ü 中文 " * 80, "a\n\n\n\nb " * 50]


@pytest.mark.parametrize("size, overlap", [(500, 50), (200, 0), (1000, 200), (50, 10), (7, 3), (2, 1)])
def test_recursive_split_edge_cases_equal_langchain(size, overlap):
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    for text in EDGE_CASES:
        assert chunk.recursive_split(text, size, overlap) == splitter.split_text(text), (size, overlap, text[:30])


def test_recursive_split_of_a_real_article_equals_langchain():
    text = data.squad_articles()[2].text
    for size, overlap in [(500, 50), (2000, 200), (4000, 400)]:
        ours = chunk.recursive_split(text, size, overlap)
        assert ours == RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap).split_text(text)
        assert all(len(c) <= size for c in ours)


def test_windows_of_a_short_text_are_the_text():
    assert chunk.fixed_windows("short", 500, 50) == ["short"]
    assert chunk.sentence_windows("One sentence only.", 3, 1) == ["One sentence only."]
    assert chunk.sentence_windows("", 3, 1) == [] and chunk.recursive_split("", 10, 2) == []


def test_sentence_windows_without_overlap_hold_every_sentence_once():
    text = data.squad_articles()[0].text
    sents = chunk.sentences(text)
    assert " ".join(chunk.sentence_windows(text, 4, 0)) == " ".join(sents)
    wins = chunk.sentence_windows(text, 3, 1)
    assert all(chunk.sentences(a)[-1] == chunk.sentences(b)[0] for a, b in zip(wins, wins[1:]))


@pytest.mark.parametrize("call", [
    lambda: chunk.fixed_windows(b"bytes", 10, 2),
    lambda: chunk.fixed_windows(None, 10, 2),
    lambda: chunk.sentence_windows(["a list"], 3, 1),
    lambda: chunk.sentences(42),
    lambda: chunk.recursive_split(None, 10, 2),
    lambda: chunk.python_chunks(b"def f(): pass"),
])
def test_chunkers_refuse_what_is_not_text(call):
    with pytest.raises(TypeError, match="must be a str"):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: chunk.fixed_windows("abc", 1.5, 0), "size must be an integer"),
    (lambda: chunk.fixed_windows("abc", True, 0), "size must be an integer"),
    (lambda: chunk.sentence_windows("A. B.", 0, 0), "size must be an integer >= 1"),
    (lambda: chunk.recursive_split("abc", 10, 2, "\n"), "separators must be"),
    (lambda: chunk.recursive_split("abc", 10, 2, ["\n", 3]), "separators must be"),
    (lambda: chunk.python_chunks("x = 1", max_lines=2.0), "max_lines must be"),
])
def test_bad_sizes_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
