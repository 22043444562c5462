"""A real vector database: Chroma with our MiniLM, on disk or behind a local server.

    ef = MiniLMEmbedding()                                   # Chroma's face of llmfs.rag.embed.MiniLM
    client = chromadb.PersistentClient(path, settings=client_settings())
    kjv = client.get_or_create_collection("kjv", embedding_function=ef, configuration={"hnsw": {"space": "cosine"}})
    kjv.add(ids=["Gen 1:1"], documents=["In the beginning ..."], metadatas=[{"book": "Genesis"}])
    kjv.query(query_texts=["who made the world?"], n_results=5)

    with chroma_server(path) as server:                      # `chroma run` on 127.0.0.1, stopped on exit
        remote = chromadb.HttpClient(host=server.host, port=server.port, settings=client_settings())

**Always pass an embedding function.** Without one, Chroma uses its default (an ONNX copy of
all-MiniLM-L6-v2) and downloads it on first use, which fails offline. Chroma 1.x stores the function's
``name()`` and ``get_config()`` in the collection and rebuilds it with ``build_from_config`` when a
process reopens the collection by name: a class missing those is "legacy" and draws deprecation
warnings, and one that is not registered cannot be rebuilt. ``MiniLMEmbedding`` has them all and is
registered when this module is imported, so a new process only needs ``import llmfs.rag.store``.

The model loads once per process, at the first call (importing this module does not import torch):
a process that reads the store with vectors it already has never pays for it.

What survives a crash (chromadb 1.5.9, measured in 04RAG/05 and tests/test_vector_store.py): an ``add``
is one transaction of the SQLite write-ahead log, so a process killed mid-batch loses no batch that
``add`` returned and leaves no half batch. The HNSW graph is a cache of the log, rewritten in place
every ``sync_threshold`` records; a kill during that write can leave a collection that no longer opens.
Keep the texts and vectors the store was built from.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function


def client_settings() -> Settings:
    """Settings for every Chroma client of the course: no usage reports sent (telemetry off)."""
    return Settings(anonymized_telemetry=False)


@lru_cache(maxsize=1)
def _minilm():
    from llmfs.rag.embed import MiniLM  # torch is imported here, not when the module is

    return MiniLM.load()


@register_embedding_function
class MiniLMEmbedding(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (``llmfs.rag.embed.MiniLM``) as a Chroma embedding function: 384-d unit vectors."""

    def __init__(self, batch_size: int = 64):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)

    def __call__(self, input: Documents) -> Embeddings:
        """Texts -> one (384,) float32 unit vector per text (Chroma's name for the argument is ``input``)."""
        if isinstance(input, str) or not isinstance(input, (list, tuple)) or not input \
                or not all(isinstance(t, str) for t in input):
            raise ValueError(f"input must be a non-empty list of str, got {type(input).__name__}"
                             + (" (a single str: wrap it in a list)" if isinstance(input, str) else ""))
        return list(_minilm().encode(list(input), batch_size=self.batch_size))

    @staticmethod
    def name() -> str:
        return "llmfs_minilm"  # the key Chroma stores, and looks up in its registry when reopening

    def get_config(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedding:
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict such as {{'batch_size': 64}}, got {type(config).__name__}")
        return MiniLMEmbedding(batch_size=config.get("batch_size", 64))

    def default_space(self) -> Space:
        return "cosine"  # unit vectors: cosine, inner product and L2 rank alike

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]


# ------------------------------------------------------------------------------------------------ on disk


def disk_size(path: str | Path) -> int:
    """Bytes of every file under the folder ``path`` (a store's size on disk)."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
    if not Path(path).is_dir():
        raise ValueError(f"path {str(path)!r} is not a folder")
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ------------------------------------------------------------------------------------------------ the server


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the OS picks it). Another process could take it before the
    server binds it: rare, and then ``chroma_server`` fails with the server's log and can be rerun."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty str such as '127.0.0.1', got {host!r}")
    with socket.socket() as s:
        try:
            s.bind((host, 0))
        except OSError as err:
            raise ValueError(f"cannot open a port on host {host!r}: {err}") from None
        return s.getsockname()[1]


@dataclass(frozen=True)
class ChromaServer:
    """Where a running server listens: ``chromadb.HttpClient(host=server.host, port=server.port)``."""

    host: str
    port: int
    log: Path  # the server's stdout and stderr, while it runs

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def heartbeat(url: str, timeout: float = 1.0) -> bool:
    """True when a Chroma server answers ``GET {url}/api/v2/heartbeat``."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be a str such as 'http://127.0.0.1:8000', got {url!r}")
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=timeout) as r:
            return r.status == 200
    except OSError:  # refused, reset, timed out (urllib's URLError is an OSError)
        return False


def _chroma_command() -> str:
    """The ``chroma`` command of this interpreter's environment (the venv's bin/ or Scripts/ folder)."""
    here = Path(sys.executable).parent
    for name in ("chroma", "chroma.exe"):
        if (here / name).is_file():
            return str(here / name)
    found = shutil.which("chroma")
    if found is None:
        raise FileNotFoundError(f"no `chroma` command next to {sys.executable} or on PATH: pip install chromadb")
    return found


@contextlib.contextmanager
def chroma_server(path: str | Path, port: int | None = None, host: str = "127.0.0.1",
                  timeout: float = 60.0) -> Iterator[ChromaServer]:
    """Serve the Chroma store in the folder ``path`` with ``chroma run`` while the block runs.

    ``port`` None takes a free one. Waits until the heartbeat answers (at most ``timeout`` seconds: a
    server that exits or stays silent raises RuntimeError with its log); on leaving the block, even by
    an exception, the server is stopped: SIGTERM, then SIGKILL if it is still up after 10 s. Close
    every PersistentClient of the same folder first: one process at a time should own a store."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path (the store's folder), got {type(path).__name__}")
    if not Path(path).is_dir():
        raise ValueError(f"path {str(path)!r} is not a folder: give the folder of a PersistentClient's store")
    if port is not None and (isinstance(port, bool) or not isinstance(port, numbers.Integral) or not 1 <= port <= 65535):
        raise ValueError(f"port must be an integer in 1..65535 or None (a free one), got {port!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty str such as '127.0.0.1', got {host!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    port = free_port(host) if port is None else int(port)
    command = [_chroma_command(), "run", "--path", str(path), "--host", host, "--port", str(port)]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}  # the server's settings come from the environment
    with tempfile.TemporaryDirectory(prefix="chroma-server-") as tmp:
        server = ChromaServer(host, port, Path(tmp) / "server.log")
        with open(server.log, "wb") as log:  # a file, not a pipe: a pipe nobody reads fills up and blocks the server
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=tmp)  # cwd: whatever it writes beside itself goes away with tmp
        try:
            deadline = time.monotonic() + timeout
            while not heartbeat(server.url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = (f"exited with code {proc.returncode}" if proc.poll() is not None
                           else f"gave no heartbeat within {timeout:g} s")
                    raise RuntimeError(f"the Chroma server for {str(path)!r} on {server.url} {why}; its log ends:\n"
                                       + server.log.read_bytes()[-3000:].decode("utf-8", "replace"))
                time.sleep(0.2)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
