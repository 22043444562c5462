"""Vector search written by hand: exact, IVF (k-means lists) and HNSW (a layered graph), with faiss's shapes.

    index = FlatIndex(384);  index.add(X)                 # X: (n, 384) float32 unit vectors
    D, I = index.search(Q, k=10)                          # (nq, 10) similarities, best first, and row ids
    ivf = IVFIndex(384, nlist=128);  ivf.train(X);  ivf.add(X)
    D, I = ivf.search(Q, 10, nprobe=8)                    # look in the 8 lists whose centroids are nearest
    hnsw = HNSWIndex(384, M=16, ef_construction=200);  hnsw.add(X)
    D, I = hnsw.search(Q, 10, ef=64)                      # beam width 64 on the bottom layer

Every index scores by **inner product**, which is the cosine for unit vectors (``llmfs.rag.embed`` makes
them); ``D`` holds similarities (higher is better) as float32 and ``I`` the ids (the order of ``add``)
as int64, both (nq, k), as faiss's ``IndexFlatIP``, ``IndexIVFFlat`` and ``IndexHNSWFlat`` return them.
When the index holds fewer than ``k`` vectors the rows end in id -1 and similarity -3.4e38, as faiss's.
Otherwise each row holds ``k`` hits: our IVF probes more lists than ``nprobe`` when those lists hold
fewer than ``k`` vectors (faiss would pad with -1), and our HNSW tops its answer up with an exact scan if
the graph walk reached fewer than ``k`` vectors (which a connected graph never does).

- **Flat**: score every vector (one matrix product), keep the k best. Exact, O(n) per query.
- **IVF** (inverted file, Jégou et al. 2011): k-means cuts the space into ``nlist`` cells; a vector is
  stored in the list of its nearest centroid; a query scores only the vectors of its ``nprobe`` nearest
  cells. Faster by about ``nlist / nprobe``; misses neighbours that fell in an unprobed cell.
- **HNSW** (Malkov & Yashunin 2018): every vector is a node of a graph linked to near nodes; a few
  nodes also appear in sparser upper layers (a node's top layer is ``floor(-ln U * mL)``, ``mL = 1/ln M``)
  that act as express lanes. A search descends greedily through the upper layers, then keeps a beam of
  the ``ef`` best nodes found on layer 0, expanding the nearest unexpanded one until none can improve
  the beam. Inserting a vector is a search for its neighbours, then links both ways.
"""

from __future__ import annotations

import heapq
import math
import numbers

import numpy as np

MISSING_SCORE = float(-np.finfo(np.float32).max)  # faiss's similarity for "no hit" (id -1)


# ------------------------------------------------------------------------------------------------ checks


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _as_vectors(name: str, X, dim: int | None) -> np.ndarray:
    """X as a C-contiguous (n, dim) float32 array with n >= 1 and finite numbers, or a ValueError saying why not.
    ``dim`` None: any width."""
    if not isinstance(X, (np.ndarray, list, tuple)):
        raise ValueError(f"{name} must be a 2-D array (n, {dim or 'dim'}) of floats, got {type(X).__name__}")
    X = np.asarray(X)
    dim = X.shape[-1] if dim is None and X.ndim == 2 else dim
    if X.dtype.kind not in "fiu" or X.ndim != 2 or X.shape[1] != dim or X.shape[0] == 0 or dim == 0:
        raise ValueError(f"{name} must be a 2-D array (n, {dim}) of floats with n >= 1, got {X.dtype} array of shape {X.shape}"
                         + (" (one vector? use X[None, :])" if X.ndim == 1 and X.shape == (dim,) else ""))
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(f"{name} holds NaN or infinite numbers (rows {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''})")
    return X


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row of ``scores`` (nq, n): (values, column ids), each (nq, min(k, n)), best
    first; ties go to the lower id. ``argpartition`` finds the k best in O(n), only they are sorted."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(k), (len(scores), 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)  # by score, then by id
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(part, order, axis=1)


def _pad(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (nq, m) results to (nq, k) with faiss's "no hit" (-3.4e38, -1); float32 and int64."""
    nq, m = sims.shape
    out_sims = np.full((nq, k), MISSING_SCORE, dtype=np.float32)
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_sims[:, :m], out_ids[:, :m] = sims, ids
    return out_sims, out_ids


class _VectorIndex:
    """What every index shares: the stored vectors, argument checks, the result shapes."""

    def __init__(self, dim: int):
        self.dim = _check_int("dim", dim, 1)
        self.vectors = np.empty((0, self.dim), dtype=np.float32)  # (ntotal, dim), row i is id i

    @property
    def ntotal(self) -> int:
        return len(self.vectors)

    def _store(self, X) -> np.ndarray:
        """Check X (n, dim), append it; returns the new ids."""
        X = _as_vectors("X", X, self.dim)
        first = self.ntotal
        self.vectors = np.concatenate([self.vectors, X])
        return np.arange(first, self.ntotal)

    def _queries(self, Q, k) -> tuple[np.ndarray, int]:
        Q = _as_vectors("Q", Q, self.dim)
        k = _check_int("k", k, 1)
        if self.ntotal == 0:
            raise ValueError(f"the {type(self).__name__} is empty: add vectors before searching")
        return Q, k


# ------------------------------------------------------------------------------------------------ exact search


class FlatIndex(_VectorIndex):
    """Exact search: every stored vector is scored (faiss ``IndexFlatIP``)."""

    def add(self, X) -> None:
        """X: (n, dim) float vectors; their ids are ntotal, ntotal + 1, ..."""
        self._store(X)

    def search(self, Q, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Q: (nq, dim) -> (D, I), each (nq, k): the k largest inner products and their ids, best first."""
        Q, k = self._queries(Q, k)
        step = max(1, 2**24 // self.ntotal)  # queries per block: a block's scores stay within 64 MB
        sims, ids = zip(*(top_k(Q[i:i + step] @ self.vectors.T, k) for i in range(0, len(Q), step)))
        return _pad(np.concatenate(sims), np.concatenate(ids), k)


# ------------------------------------------------------------------------------------------------ IVF


def kmeans(X: np.ndarray, k: int, n_iter: int = 20, seed: int = 0) -> np.ndarray:
    """Spherical k-means (Lloyd's iterations on inner products): X (n, dim) -> k unit centroids (k, dim).

    Starts from k distinct rows of X drawn with ``seed``; each step gives every vector to the centroid of
    largest inner product, then moves each centroid to the normalised mean of its vectors. A cell left
    empty takes the vector that fits its own centroid worst, so every centroid stays in use."""
    X = _as_vectors("X", X, None)
    k, n_iter = _check_int("k", k, 1), _check_int("n_iter", n_iter, 0)
    if len(X) < k:
        raise ValueError(f"k-means needs at least k={k} training vectors, got {len(X)}")
    rng = np.random.default_rng(seed)
    C = X[rng.choice(len(X), size=k, replace=False)].copy()
    for _ in range(n_iter):
        scores = X @ C.T  # (n, k)
        assign = scores.argmax(axis=1)
        fit = scores[np.arange(len(X)), assign]  # each vector's similarity to its own centroid
        sums = np.zeros_like(C)
        np.add.at(sums, assign, X)
        sizes = np.bincount(assign, minlength=k)
        for c, worst in zip(np.flatnonzero(sizes == 0), np.argsort(fit)):
            sums[c] = X[worst]  # an empty cell restarts at a badly served vector
        C = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return C.astype(np.float32)


class IVFIndex(_VectorIndex):
    """Inverted file: vectors kept in ``nlist`` lists, one per k-means cell (faiss ``IndexIVFFlat``, inner product)."""

    def __init__(self, dim: int, nlist: int):
        super().__init__(dim)
        self.nlist = _check_int("nlist", nlist, 1)
        self.centroids: np.ndarray | None = None  # (nlist, dim) once trained
        self.lists: list[np.ndarray] = [np.empty(0, dtype=np.int64) for _ in range(self.nlist)]  # ids per cell

    @property
    def is_trained(self) -> bool:
        return self.centroids is not None

    def train(self, X, n_iter: int = 20, seed: int = 0) -> None:
        """Learn the nlist centroids from X (n, dim), n >= nlist, by k-means (faiss suggests n >= 39 * nlist)."""
        X = _as_vectors("X", X, self.dim)
        if len(X) < self.nlist:
            raise ValueError(f"training needs at least nlist={self.nlist} vectors, got {len(X)}")
        self.centroids = kmeans(X, self.nlist, n_iter=n_iter, seed=seed)

    def add(self, X) -> None:
        """Store X (n, dim): each vector goes to the list of its nearest centroid."""
        if not self.is_trained:
            raise ValueError("the IVFIndex is not trained: call train(X) before add")
        ids = self._store(X)
        cells = (self.vectors[ids] @ self.centroids.T).argmax(axis=1)
        for c in np.unique(cells):
            self.lists[c] = np.concatenate([self.lists[c], ids[cells == c]])

    def search(self, Q, k: int, nprobe: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Q: (nq, dim) -> (D, I), each (nq, k), scoring the vectors of the ``nprobe`` cells nearest to each
        query, and of more cells (in order of nearness) while those hold fewer than k vectors."""
        if not self.is_trained:
            raise ValueError("the IVFIndex is not trained: call train(X), then add(X), before searching")
        Q, k = self._queries(Q, k)
        nprobe = _check_int("nprobe", nprobe, 1)
        if nprobe > self.nlist:
            raise ValueError(f"nprobe must be at most nlist={self.nlist}, got {nprobe}")
        want = min(k, self.ntotal)
        cell_order = np.argsort(-(Q @ self.centroids.T), axis=1, kind="stable")  # (nq, nlist) nearest cell first
        sizes = np.array([len(ids) for ids in self.lists])
        sims, ids = np.empty((len(Q), want), dtype=np.float32), np.empty((len(Q), want), dtype=np.int64)
        for qi, (q, cells) in enumerate(zip(Q, cell_order)):
            # probe nprobe cells, or as many (nearest first) as it takes to hold k vectors
            n_cells = max(nprobe, int(np.searchsorted(np.cumsum(sizes[cells]), want)) + 1)
            members = np.concatenate([self.lists[c] for c in cells[:n_cells]])
            best, j = top_k((self.vectors[members] @ q)[None], want)
            sims[qi], ids[qi] = best[0], members[j[0]]
        return _pad(sims, ids, k)


# ------------------------------------------------------------------------------------------------ HNSW


class HNSWIndex(_VectorIndex):
    """Hierarchical navigable small-world graph (faiss ``IndexHNSWFlat``, hnswlib), inner product.

    ``M``: links per node on the upper layers (2M on layer 0); ``ef_construction``: beam width while
    inserting (wider: better links, slower build). ``graph[level][node]`` lists the node's neighbours."""

    def __init__(self, dim: int, M: int = 16, ef_construction: int = 200, seed: int = 0):
        super().__init__(dim)
        self.M = _check_int("M", M, 2)
        self.ef_construction = _check_int("ef_construction", ef_construction, 1)
        self.max_links = [2 * self.M]  # per level: 2M on layer 0, M above (the paper's M_max0, M_max)
        self.mL = 1 / math.log(self.M)  # level multiplier: about one node in M reaches the next layer up
        self.rng = np.random.default_rng(seed)
        self.graph: list[dict[int, list[int]]] = []  # graph[level][node] -> neighbour ids
        self.entry = -1  # a node of the top layer, where every search starts

    def add(self, X) -> None:
        """Insert the vectors X (n, dim) one by one (ids ntotal, ntotal + 1, ...)."""
        for node in self._store(X):
            self._insert(int(node))

    def _insert(self, node: int) -> None:
        q = self.vectors[node]
        level = int(-math.log(1.0 - self.rng.random()) * self.mL)  # 1 - U is in (0, 1]: no log(0)
        top = len(self.graph) - 1  # the entry node's level, the graph's top (-1: the graph is empty)
        while len(self.graph) <= level:  # layers that only this node reaches, so far
            self.graph.append({node: []})
            self.max_links.append(self.M)
        if level > top:
            self.entry, entry = node, self.entry  # the new node starts every later search
        else:
            entry = self.entry
        if entry < 0:  # the first node: nothing to link to
            return
        entries = [entry]
        for lc in range(top, level, -1):  # above the node's own layers: greedy, keep only the nearest
            entries = [self._search_layer(q, entries, 1, lc)[0][1]]
        for lc in range(min(level, top), -1, -1):  # on its layers: a beam search, then links both ways
            found = self._search_layer(q, entries, self.ef_construction, lc)
            neighbours = self._select_neighbours(found, self.M)
            self.graph[lc][node] = neighbours
            for n in neighbours:
                self._link(n, node, lc)
            entries = [i for _, i in found]

    def _search_layer(self, q: np.ndarray, entries: list[int], ef: int, level: int) -> list[tuple[float, int]]:
        """The beam search of one layer: the ef nodes most similar to q reachable from ``entries``,
        as (similarity, id) pairs, best first. Keeps two heaps: the candidates still to expand (nearest
        first) and the beam of the ef best found (worst on top, to be dropped first)."""
        V, links = self.vectors, self.graph[level]
        sims = (V[entries] @ q).tolist()
        visited = set(entries)
        candidates = [(-s, i) for s, i in zip(sims, entries)]  # max-heap by similarity (negated)
        beam = sorted(zip(sims, entries))[-ef:]  # min-heap: a sorted list is a valid heap
        heapq.heapify(candidates)
        while candidates:
            neg_s, c = heapq.heappop(candidates)
            if -neg_s < beam[0][0] and len(beam) >= ef:
                break  # the nearest candidate is worse than the whole beam: nothing left can improve it
            new = [n for n in links[c] if n not in visited]
            if not new:
                continue
            visited.update(new)
            for s, n in zip((V[new] @ q).tolist(), new):  # one matrix-vector product per expanded node
                if len(beam) < ef or s > beam[0][0]:
                    heapq.heappush(candidates, (-s, n))
                    heapq.heappush(beam, (s, n))
                    if len(beam) > ef:
                        heapq.heappop(beam)
        return sorted(beam, reverse=True)

    def _select_neighbours(self, found: list[tuple[float, int]], m: int) -> list[int]:
        """The paper's heuristic (Alg. 4, as hnswlib): walk the candidates from the most similar; keep one
        only if it is more similar to the new node than to every neighbour kept so far. Links then point
        in different directions instead of all into the nearest cluster, which keeps the graph navigable."""
        if len(found) <= m:
            return [i for _, i in found]
        ids = [i for _, i in found]
        X = self.vectors[ids]
        closest = np.full(len(ids), -np.inf)  # each candidate's similarity to its most similar kept neighbour
        kept: list[int] = []
        for j, (s, _) in enumerate(found):
            if closest[j] <= s:  # nearer to the new node than to any kept neighbour: a new direction
                kept.append(ids[j])
                if len(kept) == m:
                    break
                closest = np.maximum(closest, X @ X[j])  # one matrix-vector product per kept neighbour
        return kept

    def _link(self, node: int, new: int, level: int) -> None:
        """Add the link node -> new; a list over its limit is pruned by the same heuristic."""
        links = self.graph[level][node]
        links.append(new)
        if len(links) > self.max_links[level]:
            sims = (self.vectors[links] @ self.vectors[node]).tolist()
            self.graph[level][node] = self._select_neighbours(sorted(zip(sims, links), reverse=True),
                                                              self.max_links[level])

    def search(self, Q, k: int, ef: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Q: (nq, dim) -> (D, I), each (nq, k). ``ef``: the beam width on layer 0 (faiss's efSearch, default
        16); at least k is used. Wider: higher recall, slower."""
        Q, k = self._queries(Q, k)
        ef = max(_check_int("ef", ef, 1), k)
        want = min(k, self.ntotal)
        sims, ids = np.empty((len(Q), want), dtype=np.float32), np.empty((len(Q), want), dtype=np.int64)
        for qi, q in enumerate(Q):
            entries = [self.entry]
            for lc in range(len(self.graph) - 1, 0, -1):
                entries = [self._search_layer(q, entries, 1, lc)[0][1]]
            found = self._search_layer(q, entries, ef, 0)[:want]
            if len(found) < want:  # part of the graph was out of reach: finish with an exact scan
                seen = {i for _, i in found}
                rest = np.array([i for i in range(self.ntotal) if i not in seen])
                best, j = top_k((self.vectors[rest] @ q)[None], want - len(found))
                found += list(zip(best[0].tolist(), rest[j[0]].tolist()))
            sims[qi], ids[qi] = [s for s, _ in found], [i for _, i in found]
        return _pad(sims, ids, k)
