"""04RAG: retrieval-augmented generation, built from its parts and proven against the libraries.

- ``data``    the retrieval question sets: SQuAD v1.1 (1,000 questions, their paragraphs)
- ``embed``   all-MiniLM-L6-v2, the sentence encoder, from scratch in torch (04RAG/01)
- ``index``   vector search: exact, IVF (k-means) and HNSW (the graph), with faiss's shapes (04RAG/02)
- ``bm25``    lexical retrieval: Okapi BM25 with an inverted index, scores equal to rank_bm25 (04RAG/04)
- ``hybrid``  reciprocal-rank fusion of rankings, maximal marginal relevance (04RAG/04)
- ``rerank``  reranking candidates with the local LLM: how likely is the question given the passage (04RAG/04)
- ``chunk``   cutting documents: fixed and sentence windows, LangChain's recursive splitter, Python by syntax tree (04RAG/03)
- ``store``   Chroma with our embeddings, persistent and as a server (04RAG/05)
- ``pipeline`` the RAG chain in LangChain (SmolLM2 as a chat model, our index as a retriever) and in plain Python (04RAG/06)
- ``metrics`` recall@k, MRR, nDCG; SQuAD's exact match and F1 (04RAG/07)
- ``evaluate`` SQuAD rankings per retriever (BM25, dense, hybrid, reranked), bootstrap intervals, the LLM reader (04RAG/07)
- ``codeqa``  question answering over a Python codebase, citing path:line; ``code_questions`` its question set (04RAG/08)

Imports only the core (``llmfs.*``) and the earlier series.
"""
