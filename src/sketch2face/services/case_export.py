"""``Export case``: one ZIP with everything a case holds, for the file or for court.

Layout of ``case-<number>.zip``::

    README.txt                         what this is; the likeness notice
    case.json                          the case, its members, every generation's and candidate's
                                       metadata (seed, attributes, model, who, when), the likeness
    audit.json                         the case's audit trail, oldest first (this export included)
    likeness.png                       the chosen likeness, when there is one
    generations/<id>/sketch.png|face.png|refined.png|studio.png (on the studio backdrop)
    rounds/<n>/input.png               the prepared sketch the model saw in round n
    rounds/<n>/candidate-01.png ...    the candidates of round n (their faces: refined where
                                       they were, on the studio backdrop when asked)
    rounds/<n>/candidate-01-stage1.png stage one's face of a refined (or studio) candidate
    rounds/<n>/grid.png                the candidates of round n as one numbered sheet

Images whose files are missing from storage are listed with ``"missing": true`` instead of failing
the export. Faces (generated, refined, candidates, the likeness) carry this instance's signed
provenance (``sketch2face verify``); sketches are stored as they came. The ZIP is built in a spooled temporary file (in memory up to 32 MiB, then on disk).
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy.orm import Session

from sketch2face import __version__
from sketch2face.db.models import Case, User, as_utc
from sketch2face.services import audit
from sketch2face.services.candidate_rounds import round_grid_png
from sketch2face.services.cases import (
    case_events,
    case_generations,
    case_summary,
    event_json,
    likeness_image_key,
    members_of,
)
from sketch2face.services.generation import LIKENESS_NOTICE, backdrop_of, generation_record
from sketch2face.services.runtime import get_store
from sketch2face.services.signing import sign_candidate_png, sign_generation_png
from sketch2face.storage import ObjectNotFoundError

SPOOL_BYTES = 32 * 1024 * 1024


def export_file_name(case: Case) -> str:
    """``case-<number>.zip`` with the number made safe for file names."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case.number).strip("._") or str(case.id)
    return f"case-{safe[:64]}.zip"


def build_case_zip(
    session: Session, case: Case, user: User, *, via: str | None = None
) -> IO[bytes]:
    """Record the export in the audit trail (committed) and return the ZIP, positioned at 0."""
    audit.record(session, audit.CASE_EXPORT, user, case_id=case.id, via=via)
    session.commit()
    store = get_store()
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add_object(
            key: str | None, path: str, sign: Callable[[bytes], bytes] | None = None
        ) -> dict[str, Any]:
            if not key:
                return {"file": None}
            try:
                data = store.get(key)
            except ObjectNotFoundError:
                return {"file": path, "missing": True}
            if sign is not None:
                data = sign(data)
            archive.writestr(zipfile.ZipInfo(path, _zip_time()), data, zipfile.ZIP_STORED)
            return {"file": path}

        generations = []
        for generation in case_generations(session, case):
            images = {
                kind: add_object(
                    key,
                    f"generations/{generation.id}/{kind}.png",
                    None if kind == "sketch" else _signer_for_generation(generation, kind),
                )
                for kind, key in generation.image_keys.items()
            }
            generations.append(
                {
                    **generation_record(generation),
                    "face_found": generation.details.get("face_found"),
                    "notices": generation.notices,
                    "images": images,
                }
            )
        rounds = []
        for round_ in case.rounds:
            base = f"rounds/{round_.number}"
            candidates = []
            for candidate in round_.candidates:
                candidates.append(
                    {
                        "id": candidate.id,
                        "number": candidate.number,
                        "seed": candidate.seed,
                        "attributes": candidate.attributes,
                        "parent_ids": candidate.parent_ids,
                        "closest": candidate.closest,
                        "likeness": case.likeness_candidate_id == candidate.id,
                        "refined": candidate.refined_key is not None,
                        "backdrop": backdrop_of(round_.details),
                        **add_object(
                            candidate.shown_key,
                            f"{base}/candidate-{candidate.number:02d}.png",
                            _signer_for_round(case.number, round_),
                        ),
                    }
                )
                if candidate.shown_key != candidate.image_key:  # stage one's, for provenance
                    candidates[-1]["stage1"] = add_object(
                        candidate.image_key,
                        f"{base}/candidate-{candidate.number:02d}-stage1.png",
                        _signer_for_round(case.number, round_, "face"),
                    )
            archive.writestr(
                zipfile.ZipInfo(f"{base}/grid.png", _zip_time()), round_grid_png(round_)
            )
            rounds.append(
                {
                    "id": round_.id,
                    "number": round_.number,
                    "generation_id": round_.generation_id,
                    "parent_round": round_.parent.number if round_.parent else None,
                    "chosen_candidate_ids": round_.chosen_candidate_ids,
                    "fixed_attributes": round_.fixed_attributes,
                    "model_version": round_.model_version,
                    "attributes_applied": round_.details.get("attributes_applied"),
                    "notices": round_.details.get("notices", []),
                    "created_at": as_utc(round_.created_at).isoformat(),
                    "created_by": round_.created_by.username if round_.created_by else None,
                    "input": add_object(round_.input_key, f"{base}/input.png"),
                    "grid": f"{base}/grid.png",
                    "candidates": candidates,
                }
            )
        likeness = add_object(likeness_image_key(case), "likeness.png", likeness_signer(case))
        document = {
            "notice": LIKENESS_NOTICE,
            "exported_at": datetime.now(UTC).isoformat(),
            "exported_by": user.username,
            "software": f"sketch2face {__version__}",
            "case": {**case_summary(case, members_of(session, case)), "likeness_image": likeness},
            "generations": generations,
            "rounds": rounds,
        }
        archive.writestr("case.json", json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        events = [event_json(e) for e in case_events(session, case)]
        archive.writestr("audit.json", json.dumps(events, indent=2, ensure_ascii=False) + "\n")
        archive.writestr("README.txt", _readme(case, user))
    out.seek(0)
    return out


def _signer_for_generation(generation: Any, image: str) -> Callable[[bytes], bytes]:
    return lambda data: sign_generation_png(generation, data, image=image)


def _signer_for_round(
    case_number: str, round_: Any, image: str = "shown"
) -> Callable[[bytes], bytes]:
    return lambda data: sign_candidate_png(case_number, round_, data, image=image)


def likeness_signer(case: Case) -> Callable[[bytes], bytes] | None:
    """How to sign the case's likeness image (None when there is no likeness)."""
    if case.likeness_candidate is not None:
        return _signer_for_round(case.number, case.likeness_candidate.round)
    if case.likeness_generation is not None:
        return _signer_for_generation(case.likeness_generation)
    return None


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = datetime.now(UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


def _readme(case: Case, user: User) -> str:
    return (
        f"sketch2face case export: case {case.number}"
        f"{' - ' + case.title if case.title else ''}\n"
        f"Exported {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by {user.username}.\n\n"
        f"{LIKENESS_NOTICE}\n"
        "Every face in this archive was generated by a model from a sketch. None of them is a\n"
        "photograph of a real person.\n\n"
        "case.json   the case, its generations (sketches) and candidate rounds, with how each\n"
        "            face was made (model, seed, witness attributes)\n"
        "audit.json  who did what in this case, oldest first\n"
    )
