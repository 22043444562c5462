"""llmfs.rag.store: Chroma with our MiniLM as its embedding function works offline and without warnings;
a collection written by one process is read by another with the same hits; a writer killed (SIGKILL) in
the middle of a batch insert loses no batch it reported committed and leaves whole batches only; the
`chroma run` server started by ``chroma_server`` serves the same hits and is stopped even when the block
fails; bad input is a clear ValueError / TypeError.

Stores hold random unit vectors (384-d, like MiniLM's): only the embedding-function tests run the model."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import chromadb
import numpy as np
import pytest

from llmfs import assets
from llmfs.rag.store import MiniLMEmbedding, chroma_server, client_settings, disk_size, free_port, heartbeat

DIM = 384
CONFIG = {"hnsw": {"space": "cosine"}}


def unit_vectors(n, seed):
    X = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def make_store(path, n=300, batch=100):
    """A store of n random vectors, ids v0.., metadata {"part": i % 3}; returns the vectors."""
    X = unit_vectors(n, 0)
    client = chromadb.PersistentClient(str(path), settings=client_settings())
    col = client.create_collection("test", embedding_function=MiniLMEmbedding(), configuration=CONFIG)
    for i in range(0, n, batch):
        col.add(ids=[f"v{j}" for j in range(i, i + batch)], embeddings=X[i:i + batch],
                metadatas=[{"part": j % 3} for j in range(i, i + batch)])
    return client, col, X


def run_python(code, *args, timeout=60, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kw)


# ------------------------------------------------------------------------------------------------ embedding function


def test_the_embedding_function_works_offline_and_downloads_nothing(tmp_path):
    """In a fresh process with the network cut (every non-loopback connect raises), HF_HUB_OFFLINE=1 and an
    empty HOME (where Chroma would cache its default model): add texts, query texts, no warning."""
    code = """
        import socket, sys, warnings
        def no_network(self, address, *a):
            if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost")):
                raise OSError(f"network used: {address}")
            return real_connect(self, address, *a)
        real_connect, socket.socket.connect = socket.socket.connect, no_network
        warnings.simplefilter("error")  # any warning (legacy embedding function, deprecation) fails the run
        import chromadb, numpy as np
        from llmfs.rag.store import MiniLMEmbedding, client_settings
        client = chromadb.PersistentClient(sys.argv[1], settings=client_settings())
        col = client.create_collection("offline", embedding_function=MiniLMEmbedding(),
                                       configuration={"hnsw": {"space": "cosine"}})
        col.add(ids=["a", "b", "c"], documents=["The Lord is my shepherd", "Jesus wept.", "In the beginning"])
        hits = col.query(query_texts=["a shepherd and his sheep"], n_results=1)["ids"][0]
        E = np.array(col.get(ids=["a"], include=["embeddings"])["embeddings"])
        print(hits, E.shape, round(float(np.linalg.norm(E)), 5), col.configuration_json["embedding_function"]["name"],
              "onnxruntime" in sys.modules)
    """
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "LLMFS_CACHE": str(assets.cache_dir()), "OMP_NUM_THREADS": "1"}
    (tmp_path / "home").mkdir()
    out = run_python(code, tmp_path / "store", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["['a']", "(1,", "384)", "1.0", "llmfs_minilm", "False"], out.stdout
    assert not (tmp_path / "home" / ".cache" / "chroma").exists(), "Chroma cached a model of its own"


def test_the_embedding_function_is_our_minilm():
    from llmfs.rag.embed import MiniLM

    texts = ["The Lord is my shepherd; I shall not want.", "Jesus wept.", "naïve café"]
    E = np.array(MiniLMEmbedding(batch_size=2)(texts))
    assert E.shape == (3, DIM) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(E, MiniLM.load().encode(texts), atol=1e-6)


def test_chroma_can_rebuild_the_embedding_function_from_its_config():
    from chromadb.utils.embedding_functions import known_embedding_functions

    ef = MiniLMEmbedding(batch_size=16)
    assert not ef.is_legacy(), "Chroma would store it as a legacy function and warn"
    assert known_embedding_functions[ef.name()] is MiniLMEmbedding, "not registered: a new process could not rebuild it"
    again = MiniLMEmbedding.build_from_config(ef.get_config())
    assert again.get_config() == {"batch_size": 16} and ef.default_space() in ef.supported_spaces()


# ------------------------------------------------------------------------------------------------ on disk


def test_another_process_reads_the_same_hits(tmp_path):
    client, col, X = make_store(tmp_path / "store")
    Q = unit_vectors(20, 1)
    here = col.query(query_embeddings=Q, n_results=10, where={"part": 1}, include=[])["ids"]
    client.close()
    np.save(tmp_path / "q.npy", Q)
    out = run_python("""
        import json, sys, chromadb, numpy as np
        from llmfs.rag.store import MiniLMEmbedding, client_settings
        col = chromadb.PersistentClient(sys.argv[1], settings=client_settings()).get_collection(
            "test", embedding_function=MiniLMEmbedding())
        hits = col.query(query_embeddings=np.load(sys.argv[2]), n_results=10, where={"part": 1}, include=[])["ids"]
        print(json.dumps([col.count(), hits]))
    """, tmp_path / "store", tmp_path / "q.npy")
    assert out.returncode == 0, out.stderr[-3000:]
    count, there = json.loads(out.stdout)
    assert count == len(X) and there == here
    assert all(int(i[1:]) % 3 == 1 for row in here for i in row), "the metadata filter let other parts through"
    assert disk_size(tmp_path / "store") > X.nbytes


def test_a_writer_killed_mid_batch_loses_no_committed_batch(tmp_path):
    batch, n_batches = 100, 8  # 800 records: below Chroma's sync_threshold (1,000), all of them live in its log
    np.save(tmp_path / "x.npy", unit_vectors(batch * n_batches, 0))
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, chromadb, numpy as np
        from llmfs.rag.store import MiniLMEmbedding, client_settings
        X, B = np.load(sys.argv[2]), int(sys.argv[3])
        col = chromadb.PersistentClient(sys.argv[1], settings=client_settings()).create_collection(
            "crash", embedding_function=MiniLMEmbedding(), configuration={"hnsw": {"space": "cosine"}})
        for b in range(len(X) // B):
            col.add(ids=[f"v{i}" for i in range(b * B, (b + 1) * B)], embeddings=X[b * B:(b + 1) * B])
            print(f"batch {b} committed", flush=True)
        """), str(tmp_path / "store"), str(tmp_path / "x.npy"), str(batch)], stdout=subprocess.PIPE, text=True)
    committed = []
    for line in writer.stdout:
        committed.append(int(line.split()[1]))
        if committed[-1] == 2:
            time.sleep(0.01)  # into the next batch's add
            writer.send_signal(signal.SIGKILL)
            break
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL, "the writer was not killed"
    col = chromadb.PersistentClient(str(tmp_path / "store"), settings=client_settings()).get_collection(
        "crash", embedding_function=MiniLMEmbedding())
    n = col.count()
    assert n % batch == 0 and len(committed) * batch <= n < batch * n_batches, f"{n} records after the crash"
    want = [f"v{i}" for i in range(len(committed) * batch)]
    assert len(col.get(ids=want, include=[])["ids"]) == len(want), "a batch reported committed is missing"
    assert len(col.query(query_embeddings=unit_vectors(3, 1), n_results=5, include=[])["ids"][0]) == 5


# ------------------------------------------------------------------------------------------------ the server


@pytest.mark.integration
def test_the_server_serves_the_same_hits_and_stops_even_on_error(tmp_path):
    client, col, X = make_store(tmp_path / "store")
    Q = unit_vectors(20, 1)
    local = col.query(query_embeddings=Q, n_results=10, include=[])["ids"]
    client.close()  # one owner at a time: the server opens the folder next
    with pytest.raises(KeyError, match="leaving by an exception"):
        with chroma_server(tmp_path / "store") as server:
            assert server.host == "127.0.0.1" and heartbeat(server.url)
            remote = chromadb.HttpClient(host=server.host, port=server.port, settings=client_settings())
            col = remote.get_collection("test", embedding_function=MiniLMEmbedding())
            assert col.count() == len(X)
            assert col.query(query_embeddings=Q, n_results=10, include=[])["ids"] == local
            raise KeyError("leaving by an exception")
    assert not heartbeat(server.url), "the server still answers after the block"


@pytest.mark.integration
def test_a_server_that_cannot_start_fails_with_its_log(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=rf"(?s)127\.0\.0\.1:{port} exited with code .*its log ends"):
            with chroma_server(tmp_path, port=port, timeout=60):
                pass


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "64", None])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedding(batch_size=bad)


@pytest.mark.parametrize("bad", ["one text", [], [1, 2], ["ok", None], None, {"a": 1}])
def test_bad_texts(bad):
    with pytest.raises(ValueError, match="list of str"):
        MiniLMEmbedding()(bad)


def test_bad_config():
    with pytest.raises(TypeError, match="config must be a dict"):
        MiniLMEmbedding.build_from_config("batch_size=64")
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedding.build_from_config({"batch_size": 0})


def test_bad_server_arguments(tmp_path):
    with pytest.raises(TypeError, match="path must be a str or Path"):
        chroma_server(123).__enter__()
    with pytest.raises(ValueError, match="is not a folder"):
        chroma_server(tmp_path / "missing").__enter__()
    for port in (0, -1, 65536, True, 80.0, "8000"):
        with pytest.raises(ValueError, match="port must be an integer in 1..65535"):
            chroma_server(tmp_path, port=port).__enter__()
    for timeout in (0, -1, float("nan"), float("inf"), "10", True):
        with pytest.raises(ValueError, match="timeout"):
            chroma_server(tmp_path, timeout=timeout).__enter__()
    with pytest.raises(ValueError, match="host"):
        chroma_server(tmp_path, host="").__enter__()
    with pytest.raises(TypeError, match="path must be a str or Path"):
        disk_size(None)
    with pytest.raises(ValueError, match="is not a folder"):
        disk_size(tmp_path / "missing")
    assert 1 <= free_port() <= 65535
    for host in ("", None, "no.such.host.invalid"):
        with pytest.raises(ValueError, match="host"):
            free_port(host)
    for url in (None, 8000, "127.0.0.1:8000"):
        with pytest.raises(ValueError, match="url must be"):
            heartbeat(url)
    assert not heartbeat(f"http://127.0.0.1:{free_port()}"), "nobody listens there"
