"""Vector search: exact against brute force, HNSW against exact, the file-backed index cache."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sketch2face.gallery.index import (
    ExactIndex,
    GalleryIndexes,
    Snapshot,
    backend_available,
    build_index,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_gallery_index import synthetic  # noqa: E402  (the benchmark's face-like vectors)


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(vectors.astype(np.float64) - query.astype(np.float64), axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


def test_exact_matches_brute_force_with_ids_and_padding() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((500, 128)).astype(np.float32)
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = ExactIndex(ids, vectors)
    queries = rng.standard_normal((7, 128)).astype(np.float32)
    got_ids, got_d = index.search(queries, 10)
    for q, row_ids, row_d in zip(queries, got_ids, got_d):
        want, want_d = brute_force(vectors, q, 10)
        assert list(row_ids) == list(ids[want])
        np.testing.assert_allclose(row_d, want_d, rtol=1e-4, atol=1e-4)
    small = ExactIndex(ids[:3], vectors[:3])
    pad_ids, pad_d = small.search(queries[:1], 5)
    assert list(pad_ids[0, 3:]) == [-1, -1] and np.isinf(pad_d[0, 3:]).all()
    assert sorted(pad_ids[0, :3]) == [1000, 1001, 1002]


def test_exact_ties_break_by_photo_id() -> None:
    vectors = np.zeros((4, 8), np.float32)
    index = ExactIndex(np.array([9, 3, 7, 1]), vectors)
    ids, _ = index.search(np.zeros((1, 8), np.float32), 4)
    assert list(ids[0]) == [1, 3, 7, 9]


@pytest.mark.parametrize("kind", ["faiss", "usearch"])
def test_hnsw_recall_at_10_against_exact(kind: str) -> None:
    if not backend_available(kind):
        pytest.skip(f"{kind} is not installed")
    vectors, queries = synthetic(10_000, 100, seed=3)
    ids = np.arange(len(vectors), dtype=np.int64) * 2 + 5  # ids are not positions
    exact = build_index("exact", ids, vectors)
    approx = build_index(kind, ids, vectors)
    want, want_d = exact.search(queries, 10)
    got, got_d = approx.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall >= 0.95, recall
    # distances are true Euclidean distances (not squared), nearest first
    assert np.all(np.diff(got_d, axis=1) >= -1e-6)
    np.testing.assert_allclose(got_d[:, 0], want_d[:, 0], atol=1e-3)
    single_ids, single_d = approx.search(queries[0], 10)  # one query, 1-D
    assert single_ids.shape == (1, 10) and single_d.shape == (1, 10)


def _snapshot(version: int, n: int, seed: int = 0) -> Snapshot:
    rng = np.random.default_rng(seed)
    return Snapshot(
        gallery_id=7,
        version=version,
        embedder="enc@1",
        ids=np.arange(1, n + 1, dtype=np.int64),
        vectors=rng.standard_normal((n, 16)).astype(np.float32),
    )


def test_index_cache_follows_the_version_and_shares_files(tmp_path: Path) -> None:
    loads: list[int] = []

    def loader(snap: Snapshot):  # type: ignore[no-untyped-def]
        def load() -> Snapshot:
            loads.append(snap.version)
            return snap

        return load

    v1, v2 = _snapshot(1, 50, seed=1), _snapshot(2, 60, seed=2)
    first = GalleryIndexes(tmp_path, backend="exact")
    index = first.get(7, 1, "enc@1", loader(v1))
    assert len(index) == 50 and loads == [1]
    assert first.get(7, 1, "enc@1", loader(v1)) is index  # memory
    # another process (another cache on the same folder) reads the files, not the database
    second = GalleryIndexes(tmp_path, backend="exact")
    other = second.get(7, 1, "enc@1", loader(v1))
    assert loads == [1]
    q = v1.vectors[:3]
    assert np.array_equal(index.search(q, 5)[0], other.search(q, 5)[0])
    # the gallery changed: version 2 is read from the database once, old files are removed
    index2 = second.get(7, 2, "enc@1", loader(v2))
    assert len(index2) == 60 and loads == [1, 2]
    assert (
        first.get(7, 2, "enc@1", loader(v2)).search(q, 5)[0].tolist()
        == index2.search(q, 5)[0].tolist()
    )
    assert loads == [1, 2]
    assert sorted(p.name for p in (tmp_path / "g7").iterdir()) == [
        "v2-enc_1.ids.npy",
        "v2-enc_1.vectors.npy",
    ]
    # damaged files are ignored and rebuilt from the database
    (tmp_path / "g7" / "v2-enc_1.ids.npy").write_bytes(b"garbage")
    third = GalleryIndexes(tmp_path, backend="exact")
    assert len(third.get(7, 2, "enc@1", loader(v2))) == 60 and loads == [1, 2, 2]
    third.forget(7)
    assert not (tmp_path / "g7").exists()


@pytest.mark.skipif(not backend_available("faiss"), reason="faiss is not installed")
def test_large_gallery_answers_exactly_until_its_index_is_built(tmp_path: Path) -> None:
    snap = _snapshot(3, 400)
    indexes = GalleryIndexes(tmp_path, backend="faiss", exact_below=100)
    first = indexes.get(7, 3, "enc@1", lambda: snap)
    assert first.kind == "exact"  # answers at once; the HNSW index is built in the background
    indexes.wait_for_builds(timeout=60)
    assert indexes.get(7, 3, "enc@1", lambda: snap).kind == "faiss"
    assert (tmp_path / "g7" / "v3-enc_1.faiss").is_file()
    assert not (tmp_path / "g7" / "v3-enc_1.faiss.building").exists()
    # another process loads the built index instead of building it
    other = GalleryIndexes(tmp_path, backend="faiss", exact_below=100, background=False)
    loaded = other.get(7, 3, "enc@1", lambda: pytest.fail("read the database"))
    assert loaded.kind == "faiss"
    q = snap.vectors[:5]
    assert np.array_equal(loaded.search(q, 3)[0][:, 0], snap.ids[:5])
    # wait=True (the CLI) builds on the spot
    fresh = GalleryIndexes(tmp_path / "other", backend="faiss", exact_below=100, background=False)
    assert fresh.get(7, 3, "enc@1", lambda: snap, wait=True).kind == "faiss"


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown index backend"):
        GalleryIndexes(tmp_path, backend="annoy")
