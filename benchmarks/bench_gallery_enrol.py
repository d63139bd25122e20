"""Gallery enrolment throughput (photos/s) on real photos, whole path and per stage.

Usage:
    python benchmarks/bench_gallery_enrol.py [--photos /work/shared/data/celeba/images]
                                             [--limit 300] [--json out.json]

Enrols ``--limit`` photos through ``gallery.enrol.enrol_files`` (decode, detect, align, embed,
thumbnail, original + thumbnail into a local object store, rows into SQLite, committed every 32
photos) and reports photos/s; then times each stage alone on the same photos: decode, dlib HOG
detection + landmarks, the ResNet embedding (batched as enrolment batches it), thumbnail + JPEG.
One thread (torch and BLAS), as on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=Path("/work/shared/data/celeba/images"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from sqlalchemy.orm import Session

    torch.set_num_threads(1)
    from sketch2face.db.engine import make_engine, upgrade_database
    from sketch2face.gallery.enrol import EnrolOptions, enrol_files, jpeg_bytes, working_copy
    from sketch2face.gallery.faces import DlibFaceEncoder
    from sketch2face.gallery.store import create_gallery
    from sketch2face.gallery.zipsafe import folder_entries
    from sketch2face.imaging import decode_image_bytes
    from sketch2face.storage.local import LocalStore

    files = folder_entries(args.photos)[: args.limit]
    if not files:
        raise SystemExit(f"no photos in {args.photos}")
    encoder = DlibFaceEncoder()
    encoder.embed([], [])  # loads nothing; the first real call loads the ResNet (timed apart)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade_database(engine)
        store = LocalStore(Path(tmp) / "objects")
        with Session(engine) as session:
            warm = create_gallery(session, "warm-up")
            session.commit()
            enrol_files(session, store, warm, files[:2], encoder)  # model load, caches
            gallery = create_gallery(session, "bench")
            session.commit()
            t, c = time.perf_counter(), time.process_time()
            report = enrol_files(session, store, gallery, files, encoder, options=EnrolOptions())
            whole_s, whole_cpu_s = time.perf_counter() - t, time.process_time() - c
        engine.dispose()

    # stages alone, in CPU seconds of this (single-threaded) process: on a shared machine the
    # wall clock also counts the time other processes had the core
    datas = [f.read() for f in files]
    clock = time.process_time
    t = clock()
    images = [working_copy(decode_image_bytes(d, name="x"))[0] for d in datas]
    decode_s = clock() - t
    t = clock()
    faces = [encoder.detect(im) for im in images]
    detect_s = clock() - t
    pairs = [(im, f[0]) for im, f in zip(images, faces) if f]
    t = clock()
    for start in range(0, len(pairs), 32):
        chunk = pairs[start : start + 32]
        encoder.embed([p[0] for p in chunk], [p[1] for p in chunk])
    embed_s = clock() - t
    t = clock()
    for im, face in pairs:
        jpeg_bytes(encoder.thumbnail(im, face))
    thumb_s = clock() - t

    n = len(files)
    rows = {
        "photos": n,
        "enrolled": report.enrolled,
        "skipped": report.counts,
        "whole_photos_per_s": round(n / whole_s, 2),
        "whole_photos_per_cpu_s": round(n / whole_cpu_s, 2),
        "cpu_ms_per_photo": {
            "whole": round(whole_cpu_s / n * 1e3, 1),
            "decode": round(decode_s / n * 1e3, 1),
            "detect+landmarks": round(detect_s / n * 1e3, 1),
            "embed": round(embed_s / max(len(pairs), 1) * 1e3, 1),
            "thumbnail": round(thumb_s / max(len(pairs), 1) * 1e3, 1),
        },
        "load_avg": os.getloadavg(),
    }
    print(f"{n} photos ({files[0].name} ...): {report.summary()}")
    print(
        f"enrolment: {rows['whole_photos_per_s']} photos/s wall clock, "
        f"{rows['whole_photos_per_cpu_s']} photos per CPU second (1 thread)"
    )
    for stage, ms in rows["cpu_ms_per_photo"].items():
        print(f"  {stage:>17}: {ms} CPU ms/photo")
    print(f"load average {rows['load_avg']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
