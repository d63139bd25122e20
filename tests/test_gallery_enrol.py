"""Enrolment (real dlib encoder, real photos) and search ranking on a small fixture gallery."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from sketch2face.db.gallery import FaceEmbedding, Gallery, GalleryPhoto
from sketch2face.gallery.enrol import (
    DUPLICATE,
    NO_FACE,
    NOT_IMAGE,
    SEVERAL_FACES,
    TOO_LARGE,
    TOO_SMALL,
    EnrolOptions,
    enrol_files,
)
from sketch2face.gallery.errors import EmptyGalleryError, NoFaceError, UnknownGalleryError
from sketch2face.gallery.faces import DlibFaceEncoder
from sketch2face.gallery.index import GalleryIndexes
from sketch2face.gallery.search import GallerySearcher
from sketch2face.gallery.store import (
    create_gallery,
    get_gallery,
    list_galleries,
    remove_gallery,
    remove_photo,
)
from sketch2face.gallery.zipsafe import SourceFile, folder_entries
from sketch2face.storage.local import LocalStore

CELEBA = "data/celeba/images"


@pytest.fixture(scope="module")
def encoder() -> DlibFaceEncoder:
    import torch

    torch.set_num_threads(1)
    return DlibFaceEncoder()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    from sketch2face.db.engine import make_engine, upgrade_database

    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    upgrade_database(engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "objects")


def file_of(path: Path, name: str | None = None) -> SourceFile:
    return SourceFile(name or path.name, path.stat().st_size, path.read_bytes)


def bytes_file(name: str, data: bytes) -> SourceFile:
    return SourceFile(name, len(data), lambda: data)


def png(image: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def stored_keys(store: LocalStore) -> set[str]:
    return (
        {p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()}
        if store.root.exists()
        else set()
    )


def test_enrolment_counts_every_outcome(
    db: Session, store: LocalStore, encoder: DlibFaceEncoder, shared_dir: Path
) -> None:
    photos = sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))
    face = Image.open(photos[0]).convert("RGB")
    pair = Image.new("RGB", (face.width * 2, face.height))  # the same face twice: two faces
    pair.paste(face, (0, 0))
    pair.paste(face.resize((face.width - 20, face.height - 24)), (face.width, 12))
    files = [
        *(file_of(p) for p in photos),
        file_of(photos[0], "copy/of-first.jpg"),  # same bytes: duplicate
        bytes_file("notes.txt", b"just text, not an image"),
        bytes_file("blank.png", png(np.full((200, 200, 3), 255, np.uint8))),  # no face
        bytes_file("tiny.png", png(np.zeros((10, 10, 3), np.uint8))),
        bytes_file("junk.png", b"x" * 2000),  # named like an image, is not one
        bytes_file("pair.png", png(pair)),
    ]
    gallery = create_gallery(db, "Fixtures", created_by="tester")
    db.commit()
    seen: list[str] = []
    report = enrol_files(
        db,
        store,
        gallery,
        files,
        encoder,
        options=EnrolOptions(chunk_size=4),
        enrolled_by="tester",
        progress=lambda f, _r: seen.append(f.name),
    )
    assert seen == [f.name for f in files]  # progress after each file
    assert report.files == len(files) == 12
    assert report.enrolled == len(photos) + 1 == 7  # the pair is enrolled with its larger face
    assert report.several_faces_enrolled == 1
    assert report.counts == {
        DUPLICATE: 1,
        NOT_IMAGE: 2,
        TOO_LARGE: 0,
        TOO_SMALL: 1,
        NO_FACE: 1,
        SEVERAL_FACES: 0,
    }
    assert dict(report.skipped)["copy/of-first.jpg"] == DUPLICATE
    rows = db.scalars(sa.select(GalleryPhoto).order_by(GalleryPhoto.id)).all()
    assert [r.file_name for r in rows] == [p.name for p in photos] + ["pair.png"]
    assert rows[-1].faces_detected == 2 and rows[0].faces_detected == 1
    assert rows[0].width == face.width and len(rows[0].face["landmarks"]) == 5
    assert all(r.enrolled_by == "tester" and r.batch_id == report.batch_id for r in rows)
    embeddings = db.scalars(sa.select(FaceEmbedding)).all()
    assert len(embeddings) == 7
    assert {(e.embedder, e.embedder_version, e.dim) for e in embeddings} == {
        (encoder.name, encoder.version, 128)
    }
    assert all(np.isfinite(e.unpack()).all() and e.unpack().shape == (128,) for e in embeddings)
    # original bytes kept as they were; a 160 px JPEG face thumbnail beside each
    assert store.get(rows[0].photo_key) == photos[0].read_bytes()
    thumb = Image.open(io.BytesIO(store.get(rows[0].thumb_key)))
    assert thumb.format == "JPEG" and thumb.size == (160, 160)
    assert len(stored_keys(store)) == 14
    assert get_gallery(db, "FIXTURES").version == 2  # two chunks committed (resumable mode)
    summary = list_galleries(db, encoder.name)
    assert [(s.name, s.photos, s.faces) for s in summary] == [("fixtures", 7, 7)]

    # too large by bytes, and several faces skipped on request
    other = create_gallery(db, "strict")
    db.commit()
    limit = len(png(pair))
    big = png(np.asarray(pair.resize((pair.width * 2, pair.height * 2))))
    strict = enrol_files(
        db,
        store,
        other,
        [bytes_file("big.png", big), bytes_file("pair.png", png(pair))],
        encoder,
        options=EnrolOptions(max_image_bytes=limit, several_faces="skip"),
    )
    assert (
        strict.counts[TOO_LARGE] == 1 and strict.counts[SEVERAL_FACES] == 1 and strict.enrolled == 0
    )
    pixels = enrol_files(
        db,
        store,
        other,
        [bytes_file("big.png", big)],
        encoder,
        options=EnrolOptions(max_image_pixels=pair.width * pair.height),
    )
    assert pixels.counts[TOO_LARGE] == 1  # by its pixel count, from the header
    assert get_gallery(db, "strict").version == 0  # nothing changed: no new index


def test_rerun_resumes_and_atomic_failure_leaves_nothing(
    db: Session, store: LocalStore, encoder: DlibFaceEncoder, shared_dir: Path
) -> None:
    photos = sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))
    gallery = create_gallery(db, "resume")
    db.commit()
    first = enrol_files(db, store, gallery, [file_of(p) for p in photos[:3]], encoder)
    again = enrol_files(db, store, gallery, [file_of(p) for p in photos], encoder)
    assert (first.enrolled, again.enrolled, again.counts[DUPLICATE]) == (3, 3, 3)
    assert db.scalar(sa.select(sa.func.count()).select_from(GalleryPhoto)) == 6

    # an atomic batch that fails half way (the store breaks on the 3rd file) leaves no rows
    # and no files behind
    class Breaking(LocalStore):
        puts = 0

        def put(self, key: str, data: bytes, **kw: Any) -> None:
            Breaking.puts += 1
            if Breaking.puts == 5:
                raise OSError("disk full")
            super().put(key, data, **kw)

    breaking = Breaking(store.root)
    before = stored_keys(store)
    target = create_gallery(db, "atomic")
    db.commit()
    with pytest.raises(OSError, match="disk full"):
        enrol_files(
            db,
            breaking,
            target,
            [file_of(p) for p in photos],
            encoder,
            options=EnrolOptions(atomic=True, chunk_size=2),
        )
    assert (
        db.scalar(
            sa.select(sa.func.count())
            .select_from(GalleryPhoto)
            .where(GalleryPhoto.gallery_id == target.id)
        )
        == 0
    )
    assert stored_keys(store) == before
    assert get_gallery(db, "atomic").version == 0


def test_search_ranks_the_same_person_first(
    db: Session, store: LocalStore, encoder: DlibFaceEncoder, shared_dir: Path, tmp_path: Path
) -> None:
    """Gallery: 4 photos each of 6 CelebA people; queries: each person's 5th photo."""
    images = shared_dir / CELEBA
    people = ["1000", "1001", "1002", "1003", "1004", "1005"]
    gallery_files, queries = [], {}
    for person in people:
        own = sorted(images.glob(f"{person}_*.jpg"))
        gallery_files += [file_of(p) for p in own[:4]]
        queries[person] = own[4]
    gallery = create_gallery(db, "celeba-six")
    db.commit()
    report = enrol_files(db, store, gallery, gallery_files, encoder)
    assert report.enrolled == 24, report.summary()
    searcher = GallerySearcher(GalleryIndexes(tmp_path / "index", backend="exact"), encoder)
    from sketch2face.imaging import load_image

    ranks = {}
    for person, query in queries.items():
        outcome = searcher.search(db, "celeba-six", load_image(query), top_k=24)
        assert outcome.gallery_faces == 24 and outcome.method == "exact" and len(outcome.hits) == 24
        distances = [h.distance for h in outcome.hits]
        assert distances == sorted(distances)
        scores = [h.score for h in outcome.hits]
        assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < scores[0] < 1
        owners = [h.file_name.split("_")[0] for h in outcome.hits]
        ranks[person] = owners.index(person) + 1
        assert owners[:4].count(person) >= 2  # most of the person's photos are near the top
    assert all(r == 1 for r in ranks.values()), ranks
    # exact search over the files gives the same answer as a fresh exact search from SQL
    a = searcher.search(db, "celeba-six", load_image(queries["1003"]), top_k=5)
    b = searcher.search(db, "celeba-six", load_image(queries["1003"]), top_k=5, exact=True)
    assert [h.photo_id for h in a.hits] == [h.photo_id for h in b.hits]

    # removing a photo changes the version, and the next search no longer returns it
    best = a.hits[0]
    photo = db.get(GalleryPhoto, best.photo_id)
    version = get_gallery(db, "celeba-six").version
    remove_photo(db, store, get_gallery(db, "celeba-six"), photo)
    assert get_gallery(db, "celeba-six").version == version + 1
    after = searcher.search(db, "celeba-six", load_image(queries["1003"]), top_k=5)
    assert best.photo_id not in [h.photo_id for h in after.hits]
    assert after.gallery_faces == 23

    # bad queries and galleries
    with pytest.raises(NoFaceError):
        searcher.search(db, "celeba-six", np.full((200, 200, 3), 255, np.uint8))
    blank = searcher.search(
        db, "celeba-six", np.full((200, 200, 3), 128, np.uint8), allow_whole_image=True, top_k=3
    )
    assert blank.query.whole_image and "whole image" in blank.notices[0]
    with pytest.raises(UnknownGalleryError, match="celeba-six"):
        searcher.search(db, "nope", load_image(queries["1000"]))
    create_gallery(db, "empty")
    db.commit()
    with pytest.raises(EmptyGalleryError):
        searcher.search(db, "empty", load_image(queries["1000"]))

    # removing the gallery removes rows and files
    removed = remove_gallery(db, store, get_gallery(db, "celeba-six"))
    assert removed == 23
    assert db.scalar(sa.select(sa.func.count()).select_from(FaceEmbedding)) == 0
    assert db.scalar(sa.select(sa.func.count()).select_from(Gallery)) == 1  # 'empty'
    assert not any(k.startswith(f"gallery/g{gallery.id}/") for k in stored_keys(store))
    # ids are never reused (index files and audited results refer to them)
    again = create_gallery(db, "celeba-six")
    db.commit()
    assert again.id > gallery.id


def test_folder_enrolment_names_are_relative(
    db: Session, store: LocalStore, encoder: DlibFaceEncoder, shared_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mugshots"
    (folder / "2026" / "march").mkdir(parents=True)
    src = sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))[0]
    (folder / "2026" / "march" / "A 1.jpg").write_bytes(src.read_bytes())
    gallery = create_gallery(db, "folder")
    db.commit()
    report = enrol_files(db, store, gallery, folder_entries(folder), encoder)
    assert report.enrolled == 1
    assert db.scalar(sa.select(GalleryPhoto.file_name)) == "2026/march/A 1.jpg"
