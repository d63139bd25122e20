"""Identification on CelebA: search a gallery with a photo, its sketch, and the face generated from it.

Usage:
    python benchmarks/bench_gallery_identification.py [--limit 100] [--json out.json]
                                                      [--images /work/shared/data/celeba/images]
                                                      [--no-generate] [--keep DIR]

For each person (``<identity>_<celebaid>.jpg``, 5 photos each; ``--limit`` people, chosen in a
hashed order so a subset spans the training splits) the gallery holds the first 4 photos by
CelebA id, enrolled through the product's own enrolment (``gallery.enrol.enrol_files``: detect,
align, embed, store) into a temporary database. The 5th photo is the query, three ways, each
searched through the product's search (``GallerySearcher.search``, exact, top 10):

  (a) photo      the 5th photo itself: the upper bound;
  (b) sketch     its synthetic sketch (the training recipe: ``prepare_photo`` crop, then
                 ``synthesize_sketch`` in the photo's hashed style), fed straight to the recogniser;
  (c) generated  the face the default model generates from that sketch
                 (``Sketch2Face.from_pretrained()``, one pipeline object, ``prepared=True``: the
                 sketch is already the model's 256 px input).

A query with no detected face is searched with the whole image as the face (what the app does
for generated faces); how many needed it is reported. Rank-k = share of queries whose person is
among the first k candidates. The default model was trained on most of these people (CelebA
split by identity: train / val / test), so results are also given for the held-out people
(val + test), whom the generator never saw in training.

Also fits the similarity score's logistic curve (``gallery/score.py``) on the gallery photos:
all same-person pairs and as many random different-person pairs.
Torch runs on one thread (the machine is shared with training).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CELEBA_NAME = re.compile(r"^(?P<identity>\d+)_(?P<id>\d+)$")
KINDS = ("photo", "sketch", "generated")


def people_of(folder: Path, limit: int | None) -> list[tuple[str, list[Path]]]:
    """(identity, its 5 photos sorted by CelebA id), in hashed order, ``limit`` of them."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in folder.glob("*.jpg"):
        match = CELEBA_NAME.match(path.stem)
        if match:
            groups[match.group("identity")].append(path)
    people = [
        (k, sorted(v, key=lambda p: int(CELEBA_NAME.match(p.stem).group("id"))))
        for k, v in groups.items()
        if len(v) >= 5
    ]  # type: ignore[union-attr]
    people.sort(key=lambda kv: hashlib.sha256(f"gallery-eval:{kv[0]}".encode()).hexdigest())
    return people[:limit] if limit else people


def fit_logistic(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """P(same | d) = 1 / (1 + exp((d - m) / s)) by Newton's method on the log loss; (m, s)."""
    x = np.stack([np.ones_like(distances), distances], axis=1)
    y = same.astype(np.float64)
    w = np.array([5.0, -8.0])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    # w0 + w1 d = -(d - m) / s  ->  s = -1 / w1, m = w0 * s
    scale = -1.0 / w[1]
    return float(w[0] * scale), float(scale)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=Path("/work/shared/data/celeba/images"))
    parser.add_argument("--limit", type=int, default=None, help="people (default: all)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--no-generate", action="store_true", help="skip (c)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the gallery data here")
    args = parser.parse_args()

    import torch
    from sqlalchemy.orm import Session

    torch.set_num_threads(1)
    from sketch2face.data.manifest import split_for
    from sketch2face.data.preprocess import prepare_photo
    from sketch2face.data.sketchify import pick_style, synthesize_sketch
    from sketch2face.data.sources import DEFAULT_TEST_FRACTION
    from sketch2face.db.engine import make_engine, upgrade_database
    from sketch2face.gallery.enrol import EnrolOptions, enrol_files
    from sketch2face.gallery.faces import DlibFaceEncoder
    from sketch2face.gallery.index import GalleryIndexes
    from sketch2face.gallery.search import GallerySearcher
    from sketch2face.gallery.store import create_gallery, load_snapshot
    from sketch2face.gallery.zipsafe import SourceFile
    from sketch2face.imaging import load_image
    from sketch2face.storage.local import LocalStore

    people = people_of(args.images, args.limit)
    if not people:
        raise SystemExit(f"no CelebA photos (<identity>_<id>.jpg, 5 per person) in {args.images}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="gallery-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{work / 'eval.db'}")
    upgrade_database(engine)
    store = LocalStore(work / "objects")
    encoder = DlibFaceEncoder()
    timings: dict[str, float] = {}

    # ---- enrol the gallery (4 photos per person) through the product's enrolment
    files = [
        SourceFile(p.name, p.stat().st_size, p.read_bytes) for _, own in people for p in own[:4]
    ]
    with Session(engine, expire_on_commit=False) as session:
        gallery = create_gallery(session, "celeba-eval")
        session.commit()
        t = time.perf_counter()
        report = enrol_files(
            session, store, gallery, files, encoder, options=EnrolOptions(chunk_size=64)
        )
        timings["enrol_s"] = time.perf_counter() - t
        print(
            f"enrolled {report.summary()} in {timings['enrol_s']:.0f} s "
            f"({report.files / timings['enrol_s']:.1f} photos/s, 1 thread)",
            flush=True,
        )
        searcher = GallerySearcher(GalleryIndexes(None, backend="exact"), encoder)

        # ---- the score curve, fitted on the gallery's own pairs
        snap = load_snapshot(session, gallery.id, encoder.name, encoder.dim)
        import sqlalchemy as sa

        from sketch2face.db.gallery import GalleryPhoto

        names = dict(session.execute(sa.select(GalleryPhoto.id, GalleryPhoto.file_name)).all())
        owner = np.array([names[int(i)].split("_")[0] for i in snap.ids])
        rng = np.random.default_rng(0)
        same_i, same_j = np.nonzero(np.triu(owner[:, None] == owner[None, :], 1))
        n_pairs = len(same_i)
        a, b = rng.integers(0, len(owner), (2, n_pairs * 2))
        keep = owner[a] != owner[b]
        diff_i, diff_j = a[keep][:n_pairs], b[keep][:n_pairs]
        d_same = np.linalg.norm(snap.vectors[same_i] - snap.vectors[same_j], axis=1)
        d_diff = np.linalg.norm(snap.vectors[diff_i] - snap.vectors[diff_j], axis=1)
        midpoint, scale = fit_logistic(
            np.concatenate([d_same, d_diff]),
            np.concatenate([np.ones(len(d_same)), np.zeros(len(d_diff))]),
        )
        print(
            f"score fit on {len(d_same)} same-person and {len(d_diff)} different-person pairs: "
            f"MIDPOINT = {midpoint:.4f}, SCALE = {scale:.4f}; mean distance same "
            f"{d_same.mean():.3f}, different {d_diff.mean():.3f}",
            flush=True,
        )

        # ---- queries
        queries = []
        for identity, own in people:
            split = split_for(
                f"celeba:{identity}", val_fraction=0.05, test_fraction=DEFAULT_TEST_FRACTION
            )
            queries.append((identity, own[4], split))
        t = time.perf_counter()
        sketches = []
        for _identity, path, _ in queries:
            photo = prepare_photo(load_image(path))
            style = pick_style(f"celeba-{path.stem}", ("pencil", "line"))  # as `prepare` picks it
            sketches.append(synthesize_sketch(photo.image_u8, style))
        timings["sketch_s"] = time.perf_counter() - t
        generated: list[np.ndarray] = []
        if not args.no_generate:
            from sketch2face.pipeline import Sketch2Face

            t = time.perf_counter()
            pipe = Sketch2Face.from_pretrained(backend="torch")  # torch: honours the 1 thread
            result = pipe(sketches, prepared=True, batch_size=8, refine=False)  # stage one
            generated = result.faces
            timings["generate_s"] = time.perf_counter() - t
            print(
                f"generated {len(generated)} faces in {timings['generate_s']:.0f} s "
                f"({pipe.model_version})",
                flush=True,
            )
            if args.keep:
                from PIL import Image

                (work / "examples").mkdir(exist_ok=True)
                for (_identity, path, _), sk, face in list(zip(queries, sketches, generated))[:12]:
                    Image.fromarray(np.concatenate([sk, face], axis=1)).save(
                        work / "examples" / f"{path.stem}.jpg"
                    )

        ranks: dict[str, list[int]] = {k: [] for k in KINDS}
        whole: dict[str, int] = {k: 0 for k in KINDS}
        t = time.perf_counter()
        for q, (identity, path, _) in enumerate(queries):
            inputs = {"photo": load_image(path), "sketch": sketches[q]}
            if generated:
                inputs["generated"] = generated[q]
            for kind, image in inputs.items():
                outcome = searcher.search(
                    session, "celeba-eval", image, top_k=args.top, allow_whole_image=True
                )
                whole[kind] += outcome.query.whole_image
                owners = [h.file_name.split("_")[0] for h in outcome.hits]
                ranks[kind].append(owners.index(identity) + 1 if identity in owners else 0)
        timings["search_s"] = time.perf_counter() - t
    engine.dispose()

    splits = [s for _, _, s in queries]

    def rates(rank_list: list[int], mask: list[bool]) -> dict[str, float | int]:
        chosen = [r for r, m in zip(rank_list, mask) if m]
        n = len(chosen)
        return {
            "n": n,
            "rank1": sum(1 for r in chosen if r == 1) / n if n else float("nan"),
            "rank5": sum(1 for r in chosen if 1 <= r <= 5) / n if n else float("nan"),
            "rank10": sum(1 for r in chosen if 1 <= r <= 10) / n if n else float("nan"),
        }

    groups = {
        "all": [True] * len(splits),
        "held-out (val+test)": [s != "train" for s in splits],
        "train people": [s == "train" for s in splits],
    }
    table = {}
    print(
        f"\ngallery: {report.enrolled} faces of {len(people)} people (4 each); "
        f"chance rank-1 = {1 / len(people):.4f}, rank-10 = {min(1, 10 / len(people)):.4f}"
    )
    print("| query | people | rank-1 | rank-5 | rank-10 | no face detected (whole image used) |")
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        if not ranks[kind]:
            continue
        for group, mask in groups.items():
            r = rates(ranks[kind], mask)
            table[f"{kind}/{group}"] = r
            if r["n"]:
                extra = f"{whole[kind]} of {len(queries)}" if group == "all" else ""
                print(
                    f"| {kind} ({group}) | {r['n']} | {r['rank1']:.3f} | {r['rank5']:.3f} | "
                    f"{r['rank10']:.3f} | {extra} |"
                )
    print("\ntimings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "people": len(people),
                    "gallery_faces": report.enrolled,
                    "enrolment": report.as_json(max_skipped=50),
                    "table": table,
                    "whole_image_queries": whole,
                    "score_fit": {"midpoint": midpoint, "scale": scale, "pairs": int(len(d_same))},
                    "timings_s": timings,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
