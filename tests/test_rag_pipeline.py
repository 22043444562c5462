"""llmfs.rag.pipeline: the LangChain chat model over SmolLM2 (invoke, stream and batch give the same greedy
text; stop sequences and max_new_tokens honoured; equal to transformers' generate), the retriever (k hits
with metadata, the exact top k), the citation parser, the LCEL chain equal to the same pipeline written in
plain Python, and bad input refused with clear errors."""

import re

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage

from llmfs.rag import pipeline
from llmfs.rag.pipeline import ChatTransformers, DenseRetriever, cite, parse_cited, rag_chain

PASSAGES = [  # a tiny corpus: retrieval is easy, so the tests are about the plumbing
    ("Paris", "Paris is the capital and largest city of France, on the river Seine."),
    ("Berlin", "Berlin is the capital of Germany. A wall divided the city from 1961 to 1989."),
    ("Super_Bowl_50", "The Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50."),
    ("Photosynthesis", "Plants turn light, water and carbon dioxide into sugar and oxygen by photosynthesis."),
    ("Everest", "Mount Everest, 8,849 metres high, is the highest mountain above sea level."),
]
DOCS = [Document(page_content=text, metadata={"id": i, "title": title}) for i, (title, text) in enumerate(PASSAGES)]
MESSAGES = [SystemMessage("You are a helpful assistant."), HumanMessage("What is the capital of France?")]


@pytest.fixture(scope="module")
def chat():
    return ChatTransformers.smollm2(max_new_tokens=8)


@pytest.fixture(scope="module")
def retriever():
    return DenseRetriever.build(DOCS, k=2)


def reference_text(chat, messages, max_new_tokens):
    """transformers' own greedy generate on the chat template, decoded: what the chat model must return."""
    tok = chat.tokenizer
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    ids = tok.apply_chat_template([{"role": roles[m.type], "content": m.content} for m in messages],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = chat.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_invoke_stream_and_batch_give_the_greedy_text_of_generate(chat):
    text = chat.invoke(MESSAGES).content
    assert text and text == reference_text(chat, MESSAGES, 8)
    pieces = [c.content for c in chat.stream(MESSAGES)]
    assert len([p for p in pieces if p]) > 1, "stream must hand out the text in pieces"
    assert "".join(pieces) == text
    other = [SystemMessage("You are a helpful assistant."), HumanMessage("Name a colour.")]
    assert [m.content for m in chat.batch([MESSAGES, other])] == [text, chat.invoke(other).content]


def test_max_new_tokens_is_honoured_and_greedy_text_grows_by_prefix(chat):
    short = chat.invoke(MESSAGES, max_new_tokens=3)
    assert short.response_metadata["new_tokens"] == 3 and short.response_metadata["finish_reason"] == "length"
    assert chat.invoke(MESSAGES).content.startswith(short.content), "greedy: 3 tokens are the start of 8"
    assert "".join(c.content for c in chat.stream(MESSAGES, max_new_tokens=3)) == short.content


def test_stop_sequences_cut_the_text_before_them(chat):
    text = chat.invoke(MESSAGES).content
    word = text.split()[1]  # a word inside the reply: stop there
    expected = text[:text.find(word)]
    assert chat.invoke(MESSAGES, stop=[word]).content == expected
    assert "".join(c.content for c in chat.stream(MESSAGES, stop=[word])) == expected
    assert chat.invoke(MESSAGES, stop=["no such text"]).content == text


def test_streaming_holds_back_what_could_still_become_a_stop_sequence():
    assert pipeline.cut_at_stop("Paris.\nQuestion: next", ["\n", "Question"]) == ("Paris.", True)
    assert pipeline.cut_at_stop("Paris", ["\n"]) == ("Paris", False)
    assert pipeline._safe_end("Paris. Ques", ["Question"]) == len("Paris. ")  # 'Ques' may grow into the stop
    assert pipeline._safe_end("caf\ufffd", None) == 3, "a character cut in half by a token waits for the next one"


def test_retriever_returns_k_documents_with_metadata_the_exact_top_k(retriever):
    docs = retriever.invoke("Who won Super Bowl 50?")
    assert len(docs) == 2 and docs[0].metadata["title"] == "Super_Bowl_50"
    assert all({"id", "title", "score"} <= set(d.metadata) for d in docs)
    assert docs[0].page_content == DOCS[docs[0].metadata["id"]].page_content
    E = retriever.embedder.encode([d.page_content for d in DOCS])  # NumPy: every cosine, sorted
    cos = E @ retriever.embedder.encode(["Who won Super Bowl 50?"])[0]
    assert [d.metadata["id"] for d in docs] == list(np.argsort(-cos)[:2])
    assert np.allclose([d.metadata["score"] for d in docs], np.sort(cos)[::-1][:2], atol=1e-5)
    assert "score" not in DOCS[docs[0].metadata["id"]].metadata, "the stored documents are not changed"


def test_parse_cited_worked_cases():
    docs = DOCS[:3]
    assert parse_cited("Denver Broncos [3].", docs) == {"answer": "Denver Broncos.", "sources": [docs[2].metadata]}
    out = parse_cited("[2] In 1961 [1], as [2] says; see [7].", docs)  # repeats once, out-of-range numbers dropped
    assert out == {"answer": "In 1961, as says; see.", "sources": [docs[1].metadata, docs[0].metadata]}
    assert parse_cited("no citation", docs) == {"answer": "no citation", "sources": []}


def test_cite_streams_the_text_then_the_parsed_answer():
    chunks = [{"question": "q"}, {"docs": DOCS[:2]}, {"passages": "..."}, {"text": "Paris "}, {"text": "[1]"}]
    out = list(cite(iter(chunks)))
    assert [c.get("text") for c in out[:2]] == ["Paris ", "[1]"]
    assert out[-1]["answer"] == "Paris" and out[-1]["sources"] == [DOCS[0].metadata]


def plain_rag(question, retriever, chat, k=2):
    """The same pipeline in plain Python: embed, search, format the prompt, generate, parse."""
    _, ids = retriever.index.search(retriever.embedder.encode([question]), k)
    given = [DOCS[i] for i in ids[0]]
    passages = "\n\n".join(f"[{n}] {d.page_content}" for n, d in enumerate(given, 1))
    messages = [{"role": "system", "content": pipeline.SYSTEM},
                {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {question}"}]
    tok = chat.tokenizer
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = chat.model.generate(**inputs, max_new_tokens=chat.max_new_tokens, do_sample=False, stop_strings=["\n"],
                              tokenizer=tok, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).split("\n")[0]
    cited = list(dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", text) if 1 <= int(n) <= k))
    answer = " ".join(re.sub(r"\s*\[\d+\]", "", text).split())
    return text, answer, [given[n - 1].metadata["id"] for n in cited], [d.metadata["id"] for d in given]


def test_the_lcel_chain_equals_the_plain_pipeline_and_streams(retriever, chat):
    chain = rag_chain(retriever, chat)
    question = "How high is Mount Everest?"
    out = chain.invoke(question)
    assert (out["text"], out["answer"], [s["id"] for s in out["sources"]], [d.metadata["id"] for d in out["docs"]]) \
        == plain_rag(question, retriever, chat)
    chunks = list(chain.stream(question))
    assert len([c for c in chunks if c.get("text")]) > 1, "the chain streams the answer's text"
    assert "".join(c.get("text", "") for c in chunks) == out["text"] and chunks[-1]["answer"] == out["answer"]


def test_squad_passages_carry_id_and_title():
    from llmfs.rag.data import squad_questions

    docs = pipeline.squad_passages()
    questions, paragraphs = squad_questions()
    assert len(docs) == len(paragraphs) == 803 and [d.page_content for d in docs] == paragraphs
    assert [d.metadata["id"] for d in docs] == list(range(803)) and all(d.metadata["title"] for d in docs)
    q = next(q for q in questions if q.question == "What station aired the Super Bowl?")
    assert docs[q.paragraph_id].metadata["title"] == "Super_Bowl_50"


@pytest.mark.parametrize("call, error, match", [
    (lambda c, r: r.invoke(""), ValueError, "non-empty str"),
    (lambda c, r: r.invoke("   "), ValueError, "non-empty str"),
    (lambda c, r: rag_chain(r, c).invoke(""), ValueError, "non-empty str"),
    (lambda c, r: pipeline.closed_book_chain(c).invoke(" "), ValueError, "non-empty str"),
    (lambda c, r: DenseRetriever.build(DOCS, embedder=r.embedder, k=0), ValueError, "k must be an integer >= 1"),
    (lambda c, r: DenseRetriever(documents=DOCS, embedder=r.embedder, index=r.index, k=0), ValueError, "k must"),
    (lambda c, r: DenseRetriever.build([], embedder=r.embedder), ValueError, "non-empty list of Document"),
    (lambda c, r: DenseRetriever.build(["text"], embedder=r.embedder), ValueError, "list of langchain Document"),
    (lambda c, r: pipeline.number_passages("a passage"), ValueError, "list of langchain Document"),
    (lambda c, r: parse_cited(b"[1]", DOCS), TypeError, "text must be a str"),
    (lambda c, r: parse_cited("[1]", [{"id": 0}]), ValueError, "list of langchain Document"),
    (lambda c, r: pipeline.cut_at_stop(None, ["\n"]), TypeError, "text must be a str"),
    (lambda c, r: ChatTransformers(model=c.model, tokenizer=c.tokenizer, max_new_tokens=0), ValueError, "max_new_tokens"),
    (lambda c, r: c.invoke(MESSAGES, max_new_tokens=0), ValueError, "max_new_tokens"),
    (lambda c, r: c.invoke(MESSAGES, temperature=0.7), TypeError, "temperature"),
    (lambda c, r: c.invoke([]), ValueError, "no messages"),
    (lambda c, r: rag_chain(r, c, stop="\n"), ValueError, "stop must"),
])
def test_bad_input_is_refused(chat, retriever, call, error, match):
    with pytest.raises(error, match=match):
        call(chat, retriever)
