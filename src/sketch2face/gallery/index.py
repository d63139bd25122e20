"""Vector search over a gallery's embeddings: exact (numpy) and HNSW (faiss-cpu, or usearch).

The SQL database is the source of truth; everything here is derived from it and can be deleted
at any time. :class:`GalleryIndexes` keeps, per process, the index of each gallery for the
gallery's current ``version`` (a counter bumped in the same transaction as every enrolment or
removal), and saves it beside the instance data (``<data_dir>/gallery-index/``, owner-only) so
that other processes (gunicorn workers, the CLI) load the same files instead of reading SQL:

- ``g<id>/v<version>-<embedder>.vectors.npy`` and ``.ids.npy``: the snapshot of the embeddings
  (float32, memory-mapped by readers, so workers share one copy in the page cache); exact search
  runs on it;
- ``g<id>/v<version>-<embedder>.faiss``: the HNSW index, for galleries of at least
  ``exact_below`` faces. It is built by one process (a ``.building`` marker file claims the job)
  in a background thread; until it is there, exact search answers (~75 ms p50 at 1M faces on
  one core, so a rebuild never blocks searching). The CLI builds it on the spot after enrolling.

Every search first reads the gallery's version from SQL, so a process never answers from an
index older than the database; files are written to a temporary name and renamed (atomic), so a
reader never sees a half-written file, and two processes building the same version at once
write identical content. benchmarks/bench_gallery_index.py measured the backends (docs/gallery.md).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

#: Below this many faces, search is exact (numpy); from it on, the approximate index is used.
#: Measured (docs/gallery.md, benchmarks/bench_gallery_index.py, one core): exact search takes
#: 0.3 ms at 10k faces, 6 ms at 100k and ~75 ms at 1M, and needs no build; the HNSW index answers
#: in 5 ms at 1M but takes ~9 CPU-minutes to build there.
DEFAULT_EXACT_BELOW = 200_000
#: The approximate backend, chosen by measurement (docs/gallery.md): at 100k faces faiss's HNSW
#: built 2.7x faster than usearch's (27 vs 73 CPU-s) and reached recall@10 0.97-0.99 at the same
#: latency (usearch 0.935).
DEFAULT_BACKEND = "faiss"
BACKENDS = ("exact", "usearch", "faiss")


class VectorIndex(Protocol):
    """k-nearest-neighbour search by Euclidean distance; ids are the gallery's photo ids."""

    kind: str

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, dim) float32 queries -> ids (Q, k) int64 and distances (Q, k) float32, nearest
        first; rows are padded with id -1 and distance inf when the index holds fewer than k."""
        ...


def _pad(ids: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if ids.shape[1] >= k:
        return ids[:, :k], dist[:, :k]
    n, have = ids.shape
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_dist = np.full((n, k), np.inf, dtype=np.float32)
    out_ids[:, :have], out_dist[:, :have] = ids, dist
    return out_ids, out_dist


class ExactIndex:
    """Brute force: ||x||^2 - 2 x.q + ||q||^2 over every vector, then a partial sort."""

    kind = "exact"

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vectors = vectors  # may be a read-only memory map
        self.sq_norms = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        n = len(self.ids)
        if n == 0:
            return _pad(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0)), k)
        kk = min(k, n)
        d2 = self.sq_norms[None, :] - 2.0 * (queries @ self.vectors.T)
        d2 += np.einsum("ij,ij->i", queries, queries)[:, None]
        part = (
            np.argpartition(d2, kk - 1, axis=1)[:, :kk]
            if kk < n
            else np.tile(np.arange(n), (len(queries), 1))
        )
        part_d2 = np.take_along_axis(d2, part, axis=1)
        order = np.lexsort((self.ids[part], part_d2), axis=1)  # by distance, then photo id
        best = np.take_along_axis(part, order, axis=1)
        dist = np.sqrt(np.maximum(np.take_along_axis(part_d2, order, axis=1), 0.0))
        return _pad(self.ids[best], dist.astype(np.float32), k)


class UsearchIndex:
    """usearch HNSW (f32 vectors, squared-L2 metric); keys are row positions."""

    kind = "usearch"
    #: HNSW parameters: graph degree, and the candidate lists when adding and searching.
    CONNECTIVITY = 16
    EXPANSION_ADD = 128
    EXPANSION_SEARCH = 64

    def __init__(self, ids: np.ndarray, index: object) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.index = index

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, threads: int = 1) -> UsearchIndex:
        from usearch.index import Index

        index = Index(
            ndim=vectors.shape[1],
            metric="l2sq",
            dtype="f32",
            connectivity=cls.CONNECTIVITY,
            expansion_add=cls.EXPANSION_ADD,
            expansion_search=cls.EXPANSION_SEARCH,
        )
        if len(vectors):
            index.add(
                np.arange(len(vectors), dtype=np.uint64),
                np.asarray(vectors, np.float32),
                threads=threads,
            )
        return cls(ids, index)

    @classmethod
    def load(cls, ids: np.ndarray, path: Path) -> UsearchIndex:
        from usearch.index import Index

        index = Index.restore(str(path), view=True)  # memory-mapped: shared through the page cache
        if index is None:
            raise OSError(f"{path} is not a usearch index")
        index.expansion_search = cls.EXPANSION_SEARCH
        return cls(ids, index)

    def save(self, path: Path) -> None:
        self.index.save(str(path))  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self.ids) == 0:
            return _pad(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0)), k)
        kk = min(k, len(self.ids))
        matches = self.index.search(queries, kk, threads=1)  # type: ignore[attr-defined]
        if hasattr(matches, "counts"):  # BatchMatches: (Q, kk) arrays and a count per query
            keys = np.asarray(matches.keys, dtype=np.int64).reshape(len(queries), -1)
            d2 = np.asarray(matches.distances, dtype=np.float32).reshape(len(queries), -1)
            counts = np.asarray(matches.counts).reshape(-1)
        else:  # one query: Matches holds only what was found
            found = len(matches.keys)
            keys = np.zeros((1, kk), np.int64)
            d2 = np.zeros((1, kk), np.float32)
            keys[0, :found] = matches.keys
            d2[0, :found] = matches.distances
            counts = np.array([found])
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        ids = np.where(valid, self.ids[np.clip(keys, 0, len(self.ids) - 1)], -1)
        dist = np.where(valid, np.sqrt(np.maximum(d2, 0.0)), np.inf).astype(np.float32)
        return _pad(ids, dist, k)


class FaissIndex:
    """faiss-cpu ``IndexHNSWFlat`` (squared L2); rows are positions in ``ids``."""

    kind = "faiss"
    M = 32
    EF_CONSTRUCTION = 40
    #: candidate list when searching: 512 keeps recall@10 >= 0.95 up to a million faces
    #: (measured: 0.876 at 128, 0.925 at 256, 0.958 at 512 for 1M; 5 ms per query on one core)
    EF_SEARCH = 512

    def __init__(self, ids: np.ndarray, index: object) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.index = index

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, threads: int = 1) -> FaissIndex:
        import faiss

        faiss.omp_set_num_threads(max(1, threads))
        index = faiss.IndexHNSWFlat(vectors.shape[1], cls.M)
        index.hnsw.efConstruction = cls.EF_CONSTRUCTION
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        index.hnsw.efSearch = cls.EF_SEARCH
        return cls(ids, index)

    @classmethod
    def load(cls, ids: np.ndarray, path: Path) -> FaissIndex:
        import faiss

        index = faiss.read_index(str(path))
        index.hnsw.efSearch = cls.EF_SEARCH
        return cls(ids, index)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self.ids) == 0:
            return _pad(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0)), k)
        d2, rows = self.index.search(queries, min(k, len(self.ids)))  # type: ignore[attr-defined]
        valid = rows >= 0
        ids = np.where(valid, self.ids[np.clip(rows, 0, None)], -1)
        dist = np.where(valid, np.sqrt(np.maximum(d2, 0.0)), np.inf).astype(np.float32)
        return _pad(ids, dist, k)


_ANN: dict[str, type[UsearchIndex] | type[FaissIndex]] = {
    "usearch": UsearchIndex,
    "faiss": FaissIndex,
}


def backend_available(kind: str) -> bool:
    """Whether the Python package behind ``kind`` is installed ('exact' always is)."""
    import importlib.util

    module = {"exact": "numpy", "usearch": "usearch", "faiss": "faiss"}.get(kind)
    if module is None:
        raise ValueError(f"unknown index backend {kind!r}; choose from {', '.join(BACKENDS)}")
    return importlib.util.find_spec(module) is not None


def build_index(
    kind: str, ids: np.ndarray, vectors: np.ndarray, *, threads: int = 1
) -> VectorIndex:
    """Build an index of ``kind`` ('exact', 'usearch', 'faiss') over ``vectors``."""
    if kind == "exact":
        return ExactIndex(ids, vectors)
    try:
        return _ANN[kind].build(ids, vectors, threads=threads)
    except KeyError:
        raise ValueError(
            f"unknown index backend {kind!r}; choose from {', '.join(BACKENDS)}"
        ) from None


# ---------------------------------------------------------------------------- per-process cache
@dataclass(frozen=True)
class Snapshot:
    """The embeddings of one gallery at one version, as read from SQL."""

    gallery_id: int
    version: int
    embedder: str
    ids: np.ndarray  # (N,) int64 photo ids, ascending
    vectors: np.ndarray  # (N, dim) float32


#: loads a consistent snapshot for (gallery_id, embedder) from the database
SnapshotLoader = Callable[[], Snapshot]

#: a ``.building`` marker older than this is from a process that died: build anyway
STALE_BUILD_S = 6 * 3600


@dataclass
class _Entry:
    version: int
    index: VectorIndex
    ids: np.ndarray
    vectors: np.ndarray


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


#: face embeddings are biometric data: the index folder and files are the service account's only
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _private_dir(folder: Path) -> None:
    """Create ``folder`` (and missing parents) with mode 0700; existing folders are kept."""
    missing = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            pass


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp)`` to a private temporary file, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        write(tmp)  # writers truncate the file; its mode stays
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class GalleryIndexes:
    """Per-process cache of gallery indexes, backed by files under ``root`` (None: memory only).

    ``get(gallery_id, version, embedder, load_snapshot)`` returns an index for exactly that
    version: from memory, else from the files, else from a snapshot read from SQL (and saved).
    A gallery of ``exact_below`` faces or more is searched with the approximate index once it is
    built; until then (right after a change) exact search answers, while one process builds the
    index in a background thread (``wait=True``, as the CLI does, builds it on the spot).
    """

    def __init__(
        self,
        root: Path | None,
        *,
        backend: str = DEFAULT_BACKEND,
        exact_below: int = DEFAULT_EXACT_BELOW,
        build_threads: int = 1,
        background: bool = True,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown index backend {backend!r}; choose from {', '.join(BACKENDS)}"
            )
        if backend != "exact" and not backend_available(backend):
            log.warning(
                "index backend %s is not installed (pip install 'sketch2face[gallery]'); gallery "
                "search will be exact",
                backend,
            )
            backend = "exact"
        self.root = root
        self.backend = backend
        self.exact_below = exact_below
        self.build_threads = build_threads
        self.background = background
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[int, str], threading.Lock] = {}
        self._building: dict[tuple[int, str], threading.Thread] = {}

    def kind_for(self, size: int) -> str:
        """The backend a gallery of ``size`` faces is searched with once its index is built."""
        return "exact" if size < self.exact_below or self.backend == "exact" else self.backend

    def _paths(self, gallery_id: int, version: int, embedder: str) -> dict[str, Path]:
        assert self.root is not None
        stem = f"v{version}-{_slug(embedder)}"
        folder = self.root / f"g{gallery_id}"
        return {
            "vectors": folder / f"{stem}.vectors.npy",
            "ids": folder / f"{stem}.ids.npy",
            "ann": folder / f"{stem}.{self.backend}",
            "building": folder / f"{stem}.{self.backend}.building",
        }

    # ------------------------------------------------------------------ lookup
    def get(
        self,
        gallery_id: int,
        version: int,
        embedder: str,
        load_snapshot: SnapshotLoader,
        *,
        wait: bool = False,
    ) -> VectorIndex:
        """The index of ``gallery_id`` at ``version`` (``wait``: build the approximate index now
        if the gallery needs one, instead of answering exactly meanwhile)."""
        key = (gallery_id, embedder)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._entries.get(key)
            if entry is None or entry.version != version:
                entry = self._load_or_snapshot(gallery_id, version, embedder, load_snapshot)
                with self._lock:
                    self._entries[key] = entry
            wanted = self.kind_for(len(entry.ids))
            if entry.index.kind == wanted:
                return entry.index
            ann = self._load_ann(gallery_id, entry, embedder)  # another process may have built it
            if ann is None and wait:
                ann = self._build_ann(gallery_id, entry, embedder)
            if ann is not None:
                entry.index = ann
                return ann
            self._start_background_build(gallery_id, entry, embedder)
            return entry.index

    def _load_or_snapshot(
        self, gallery_id: int, version: int, embedder: str, load_snapshot: SnapshotLoader
    ) -> _Entry:
        if self.root is not None:
            paths = self._paths(gallery_id, version, embedder)
            try:
                ids = np.load(paths["ids"])
                vectors = np.load(paths["vectors"], mmap_mode="r")
                if len(ids) == len(vectors):
                    return _Entry(version, ExactIndex(ids, vectors), ids, vectors)
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:  # damaged file: rebuild from SQL
                log.warning("ignoring unreadable gallery index files %s: %s", paths["ids"], exc)
        snapshot = load_snapshot()
        if self.root is not None:
            try:
                self._save_snapshot(snapshot)
            except OSError as exc:  # a read-only or full disk costs speed, not answers
                log.warning("could not save the gallery index under %s: %s", self.root, exc)
        log.info(
            "gallery %s v%s: %d faces read from the database",
            gallery_id,
            snapshot.version,
            len(snapshot.ids),
        )
        return _Entry(
            snapshot.version,
            ExactIndex(snapshot.ids, snapshot.vectors),
            snapshot.ids,
            snapshot.vectors,
        )

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        paths = self._paths(snapshot.gallery_id, snapshot.version, snapshot.embedder)
        _private_dir(paths["vectors"].parent)
        _atomic_write(paths["vectors"], lambda p: _save_npy(p, snapshot.vectors))
        # the ids go last: a reader that finds them finds the vectors they describe
        _atomic_write(paths["ids"], lambda p: _save_npy(p, snapshot.ids))
        self._remove_older(snapshot.gallery_id, snapshot.version)

    # ------------------------------------------------------------------ approximate index
    def _load_ann(self, gallery_id: int, entry: _Entry, embedder: str) -> VectorIndex | None:
        path = self._ann_path(gallery_id, entry, embedder)
        if path is None or not path.is_file():
            return None
        try:
            return _ANN[self.backend].load(entry.ids, path)
        except (OSError, RuntimeError, ValueError) as exc:  # damaged: build again
            log.warning("ignoring unreadable gallery index %s: %s", path, exc)
            return None

    def _ann_path(self, gallery_id: int, entry: _Entry, embedder: str) -> Path | None:
        return (
            None if self.root is None else self._paths(gallery_id, entry.version, embedder)["ann"]
        )

    def _build_ann(self, gallery_id: int, entry: _Entry, embedder: str) -> VectorIndex:
        started = time.perf_counter()
        index = _ANN[self.backend].build(
            entry.ids, np.asarray(entry.vectors), threads=self.build_threads
        )
        path = self._ann_path(gallery_id, entry, embedder)
        if path is not None:
            try:
                _private_dir(path.parent)
                _atomic_write(path, index.save)
            except OSError as exc:
                log.warning("could not save the gallery index %s: %s", path, exc)
        log.info(
            "gallery %s v%s: %s index over %d faces built in %.1f s",
            gallery_id,
            entry.version,
            index.kind,
            len(index),
            time.perf_counter() - started,
        )
        return index

    def _start_background_build(self, gallery_id: int, entry: _Entry, embedder: str) -> None:
        key = (gallery_id, embedder)
        if not self.background:
            return
        with self._lock:
            running = self._building.get(key)
            if running is not None and running.is_alive():
                return
            marker = None
            if self.root is not None:
                marker = self._paths(gallery_id, entry.version, embedder)["building"]
                if not _claim(marker):
                    return  # another process is building this version
            thread = threading.Thread(
                target=self._background_build,
                args=(gallery_id, entry, embedder, marker),
                name=f"gallery-index-{gallery_id}",
                daemon=True,
            )
            self._building[key] = thread
        thread.start()

    def _background_build(
        self, gallery_id: int, entry: _Entry, embedder: str, marker: Path | None
    ) -> None:
        try:
            index = self._build_ann(gallery_id, entry, embedder)
            with self._lock:
                current = self._entries.get((gallery_id, embedder))
                if current is entry:
                    entry.index = index
        except Exception:  # the exact index keeps answering
            log.exception("building the index of gallery %s failed", gallery_id)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)

    def wait_for_builds(self, timeout: float | None = None) -> None:
        """Join the background builds of this process (tests, shutdown)."""
        for thread in list(self._building.values()):
            thread.join(timeout)

    # ------------------------------------------------------------------ housekeeping
    def _remove_older(self, gallery_id: int, version: int) -> None:
        """Delete files of older versions (readers that mapped them keep their copy on POSIX)."""
        assert self.root is not None
        for path in (self.root / f"g{gallery_id}").glob("v*"):
            match = re.match(r"v(\d+)-", path.name)
            if match and int(match.group(1)) < version:
                path.unlink(missing_ok=True)

    def forget(self, gallery_id: int) -> None:
        """Drop a removed gallery from memory and disk."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == gallery_id]:
                del self._entries[key]
        if self.root is not None:
            shutil.rmtree(self.root / f"g{gallery_id}", ignore_errors=True)


def _claim(marker: Path) -> bool:
    """Create ``marker`` exclusively (one builder across processes); a stale one is taken over."""
    _private_dir(marker.parent)
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        try:
            age = time.time() - marker.stat().st_mtime
        except FileNotFoundError:
            return _claim(marker)
        if age < STALE_BUILD_S:
            return False
        marker.unlink(missing_ok=True)
        return _claim(marker)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    return True


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)
