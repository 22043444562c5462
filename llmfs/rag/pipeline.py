"""The RAG pipeline as a LangChain LCEL chain: retriever | prompt | model | parser, all local.

    chat = ChatTransformers.smollm2(max_new_tokens=48)      # SmolLM2-135M-Instruct as a LangChain chat model
    retriever = DenseRetriever.build(squad_passages(), k=3)  # MiniLM vectors in our FlatIndex
    chain = rag_chain(retriever, chat)
    out = chain.invoke("Which NFL team represented the AFC at Super Bowl 50?")
    out["answer"], out["sources"], out["docs"]               # the answer, the passages it cites, those it was given
    for chunk in chain.stream(question):                     # the answer's text as it is generated, then the rest
        print(chunk.get("text", ""), end="")
    closed_book_chain(chat).invoke(question)                 # the baseline: the model alone, no passages

Three LangChain interfaces hold our own parts (no LangChain integration package, no network):

- ``ChatTransformers`` is a ``BaseChatModel``: it turns LangChain messages into the model's chat
  template, decodes greedily with ``transformers``' ``generate`` (``_generate``) or streams the tokens as
  they come (``_stream``, a background thread), and honours ``stop`` sequences and ``max_new_tokens``.
- ``DenseRetriever`` is a ``BaseRetriever``: MiniLM (``llmfs.rag.embed``) embeds the question and our
  ``FlatIndex`` (``llmfs.rag.index``) finds the ``k`` nearest passages, returned as ``Document``\\ s whose
  metadata carries the passage id and title (and the cosine, ``score``).
- The chain numbers the passages ``[1]..[k]`` in the prompt and asks the model to cite them; the parser
  (``cite``) reads the markers back and returns the answer with the passages it cited (``sources``). The
  answer is the reply's first line (generation stops at ``STOP``).

The model is asked to cite; whether a 135M model's citations can be trusted is measured in 04RAG/06
(is the answer's text in the passage it cites?), not assumed.
"""

from __future__ import annotations

import numbers
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableParallel, RunnablePassthrough
from langchain_core.runnables.utils import AddableDict
from pydantic import ConfigDict, field_validator
from transformers.generation.streamers import BaseStreamer

SYSTEM = ("You are a helpful assistant that answers questions from the given passages. Answer briefly and "
          "cite the passage number like [1].")
USER = "Passages:\n{passages}\n\nQuestion: {question}"
CLOSED_BOOK_SYSTEM = "You are a helpful assistant. Answer briefly."
STOP = ("\n",)  # the answer is the reply's first line: a small model rambles on after it
ROLES = {"system": "system", "human": "user", "ai": "assistant"}  # LangChain message type -> chat-template role
CITATION = re.compile(r"\[(\d+)\]")


# ------------------------------------------------------------------------------------------------ the passages


def squad_passages() -> list[Document]:
    """The 803 distinct SQuAD paragraphs of ``llmfs.rag.data.squad_questions`` as ``Document``\\ s, in the
    same order (``Document.metadata``: ``{"id": paragraph_id, "title": the Wikipedia article}``)."""
    from llmfs.rag.data import squad_articles, squad_paragraph_articles, squad_questions

    _, paragraphs = squad_questions()
    titles = [a.title for a in squad_articles()]
    return [Document(page_content=p, metadata={"id": i, "title": titles[a]})
            for i, (p, a) in enumerate(zip(paragraphs, squad_paragraph_articles()))]


def _check_question(question) -> str:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"the question must be a non-empty str, got {question!r:.80}")
    return question


def _check_docs(docs, name: str = "docs") -> list[Document]:
    if isinstance(docs, (str, Document)) or not isinstance(docs, Sequence) or not all(isinstance(d, Document) for d in docs):
        raise ValueError(f"{name} must be a list of langchain Document, got {type(docs).__name__}")
    return list(docs)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------ the chat model


class _TokenQueue(BaseStreamer):
    """What ``generate`` hands a streamer: the prompt first (skipped), then each new token id; ``None`` ends."""

    def __init__(self):
        self.tokens: queue.Queue[int | None] = queue.Queue()
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self.prompt_seen:
            for t in value.reshape(-1).tolist():
                self.tokens.put(t)
        self.prompt_seen = True

    def end(self) -> None:
        self.tokens.put(None)

    def __iter__(self) -> Iterator[int]:
        while (t := self.tokens.get()) is not None:
            yield t


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """(``text`` up to the first stop sequence, whether one was found): the stop sequence is not kept."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    hits = [i for i in (text.find(s) for s in stop or ()) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def _safe_end(text: str, stop: Sequence[str] | None) -> int:
    """How much of a growing text can be streamed now: hold back a cut character (byte-level tokens may
    end inside one: U+FFFD) and any tail that could still become a stop sequence."""
    end = len(text.rstrip("\ufffd"))
    hold = max((n for s in stop or () for n in range(1, len(s)) if text[:end].endswith(s[:n])), default=0)
    return end - hold


class ChatTransformers(BaseChatModel):
    """A ``transformers`` causal LM with a chat template as a LangChain chat model; greedy decoding.

    ``invoke`` / ``batch`` run ``_generate`` (one ``generate`` call per conversation), ``stream`` runs
    ``_stream`` (the same call on a background thread, text handed out as tokens arrive): the same text."""

    model: Any  # a transformers causal LM in eval mode, e.g. LlamaForCausalLM
    tokenizer: Any  # its tokenizer, with a chat template
    max_new_tokens: int = 64
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("max_new_tokens")
    @classmethod
    def _positive(cls, v: int) -> int:
        return _check_int("max_new_tokens", v, 1)

    @classmethod
    def smollm2(cls, **kwargs) -> ChatTransformers:
        """SmolLM2-135M-Instruct (``llmfs.finetune.model.load_smollm2``: offline, ~1 s)."""
        from llmfs.finetune.model import load_smollm2

        model, tokenizer = load_smollm2()
        return cls(model=model, tokenizer=tokenizer, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "transformers-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model.config.name_or_path, "max_new_tokens": self.max_new_tokens}

    def _inputs(self, messages: list[BaseMessage], kwargs: dict) -> tuple[dict, dict]:
        """(token ids of the conversation in the chat template, keyword arguments of ``generate``)."""
        unknown = set(kwargs) - {"max_new_tokens"}
        if unknown:
            raise TypeError(f"ChatTransformers takes stop= and max_new_tokens=, not {sorted(unknown)}")
        if not messages:
            raise ValueError("no messages to answer")
        chat = []
        for m in messages:
            if m.type not in ROLES or not isinstance(m.content, str):
                raise ValueError(f"messages must be system, human or ai messages with text content, got {m.type!r}")
            chat.append({"role": ROLES[m.type], "content": m.content})
        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        gen = dict(max_new_tokens=_check_int("max_new_tokens", kwargs.get("max_new_tokens", self.max_new_tokens), 1),
                   do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return {k: v.to(self.model.device) for k, v in ids.items()}, gen

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs) -> ChatResult:
        inputs, gen = self._inputs(messages, kwargs)
        if stop:  # generate stops once the text holds a stop sequence (it needs the tokenizer to read text)
            gen.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        out = self.model.generate(**inputs, **gen)[0, inputs["input_ids"].shape[1]:]  # the new tokens only
        text, stopped = cut_at_stop(self._decode(out), stop)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(
            content=text, response_metadata={"finish_reason": "stop" if stopped or len(out) < gen["max_new_tokens"]
                                             else "length", "new_tokens": len(out)}))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs) -> Iterator[ChatGenerationChunk]:
        inputs, gen = self._inputs(messages, kwargs)
        if stop:
            gen.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        streamer, failure = _TokenQueue(), []

        def work():
            try:
                self.model.generate(**inputs, **gen, streamer=streamer)
            except Exception as e:  # handed to the reading thread, which re-raises it
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        ids, sent, stopped = [], 0, False  # sent: characters of the text already handed out
        for token in streamer:
            ids.append(token)
            if stopped:
                continue  # generate runs on a token or two past a stop sequence: drain them
            text, stopped = cut_at_stop(self._decode(ids), stop)
            end = len(text) if stopped else _safe_end(text, stop)
            if end > sent:
                piece, sent = text[sent:end], end
                if run_manager:
                    run_manager.on_llm_new_token(piece)
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        worker.join()
        if failure:
            raise failure[0]
        text, stopped = cut_at_stop(self._decode(ids), stop)
        finish = "stop" if stopped or len(ids) < gen["max_new_tokens"] else "length"
        yield ChatGenerationChunk(message=AIMessageChunk(content=text[sent:], response_metadata={
            "finish_reason": finish, "new_tokens": len(ids)}))


# ------------------------------------------------------------------------------------------------ the retriever


class DenseRetriever(BaseRetriever):
    """The ``k`` passages nearest to the question: MiniLM vectors, exact inner-product search (``FlatIndex``)."""

    documents: list[Document]
    embedder: Any  # llmfs.rag.embed.MiniLM (anything with .encode(list[str]) -> (n, dim) unit vectors)
    index: Any  # llmfs.rag.index.FlatIndex holding one vector per document, in order
    k: int = 3
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("k")
    @classmethod
    def _positive(cls, v: int) -> int:
        return _check_int("k", v, 1)

    @classmethod
    def build(cls, documents: Sequence[Document], embedder=None, k: int = 3, batch_size: int = 32) -> DenseRetriever:
        """Embed every document's text (``embedder``: default the cached all-MiniLM-L6-v2) into a new ``FlatIndex``."""
        from llmfs.rag.index import FlatIndex

        if not _check_docs(documents, "documents"):
            raise ValueError("documents must be a non-empty list of Document, got an empty one")
        k = _check_int("k", k, 1)
        if embedder is None:
            from llmfs.rag.embed import MiniLM

            embedder = MiniLM.load()
        vectors = embedder.encode([d.page_content for d in documents], batch_size=batch_size)  # (n, dim)
        index = FlatIndex(vectors.shape[1])
        index.add(vectors)
        return cls(documents=list(documents), embedder=embedder, index=index, k=k)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        scores, ids = self.index.search(self.embedder.encode([_check_question(query)]), self.k)  # (1, k) each
        return [Document(page_content=self.documents[i].page_content,
                         metadata={**self.documents[i].metadata, "score": float(s)})
                for s, i in zip(scores[0], ids[0]) if i >= 0]


# ------------------------------------------------------------------------------------------------ prompt and parser


def number_passages(docs: Sequence[Document]) -> str:
    """The passages as the prompt shows them, ``[1] text``, a blank line between two. (With the title in
    the label, ``[1] (Super_Bowl_50) text``, SmolLM2 copied the label and the passage's start instead of
    answering.)"""
    return "\n\n".join(f"[{n}] {d.page_content}" for n, d in enumerate(_check_docs(docs), 1))


def parse_cited(text: str, docs: Sequence[Document]) -> dict:
    """The model's text -> ``{"answer": text without its [n] markers, "sources": the cited passages'
    metadata, in the order first cited}``; numbers outside 1..len(docs) are dropped (not passages)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    docs = _check_docs(docs)
    cited = list(dict.fromkeys(int(n) for n in CITATION.findall(text) if 1 <= int(n) <= len(docs)))
    answer = " ".join(re.sub(r"\s*\[\d+\]", "", text).split())  # 'Denver Broncos [1].' -> 'Denver Broncos.'
    return {"answer": answer, "sources": [docs[n - 1].metadata for n in cited]}


def cite(chunks: Iterator[dict]) -> Iterator[AddableDict]:
    """The chain's output parser, streaming: hands on the answer's ``text`` as it arrives, then adds
    ``answer``, ``sources`` (``parse_cited``) and the ``docs`` the model was given. ``invoke`` sums the chunks."""
    seen = AddableDict()
    for chunk in chunks:
        seen = seen + chunk  # the first steps' keys arrive whole; "text" in pieces
        if "text" in chunk:
            yield AddableDict(text=chunk["text"])
    yield AddableDict(parse_cited(seen["text"], seen["docs"]), docs=seen["docs"])


def _stopped(chat: BaseChatModel, stop: Sequence[str] | None) -> Runnable:
    if stop is not None and (isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop)):
        raise ValueError(f"stop must be a list of non-empty str (or None), got {stop!r}")
    return chat.bind(stop=list(stop)) if stop else chat


def rag_chain(retriever: BaseRetriever, chat: BaseChatModel, stop: Sequence[str] | None = STOP) -> Runnable:
    """question -> ``{"text", "answer", "sources", "docs"}``: retrieve, number the passages in the prompt,
    generate until a ``stop`` sequence, parse the citations. ``retriever`` returns ``Document``\\ s;
    ``chat`` is any chat model."""
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", USER)])
    return (RunnableParallel(question=RunnablePassthrough(), docs=retriever)
            | RunnablePassthrough.assign(passages=lambda x: number_passages(x["docs"]))
            | RunnablePassthrough.assign(text=prompt | _stopped(chat, stop) | StrOutputParser())
            | RunnableGenerator(cite))


def closed_book_chain(chat: BaseChatModel, stop: Sequence[str] | None = STOP) -> Runnable:
    """question -> the model's answer from its weights alone (no passages): the baseline of RAG."""
    prompt = ChatPromptTemplate.from_messages([("system", CLOSED_BOOK_SYSTEM), ("human", "{question}")])
    return {"question": _check_question} | prompt | _stopped(chat, stop) | StrOutputParser()
