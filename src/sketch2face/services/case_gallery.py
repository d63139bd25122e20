"""The images of a case that a gallery search can start from (issue 23 item 6): its likeness, the
face of each of its sketches and every candidate of its rounds, each named by a short reference
(``likeness``, ``face-<generation id>``, ``candidate-<candidate id>``) that the case page links
to and the search form posts back. The search itself runs on the stored image (no download and
re-upload); ``web/gallery_search.py: run_search`` audits it with what :class:`CaseImage` says."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from sketch2face.db.models import Candidate, Case, Generation
from sketch2face.services.cases import case_generations

LIKENESS = "likeness"
FACE = "face"
CANDIDATE = "candidate"


@dataclass(frozen=True)
class CaseImage:
    """One image of a case to search a gallery with."""

    #: ``likeness``, ``face-<generation id>`` or ``candidate-<candidate id>``
    ref: str
    #: LIKENESS, FACE or CANDIDATE (the page picks the image's URL by it)
    kind: str
    label: str
    #: object key of the image in the store
    key: str
    generation_id: str | None = None
    candidate_id: int | None = None
    #: what the audit event's ``query`` records about it
    detail: dict[str, Any] = field(default_factory=dict)


def _candidate_detail(candidate: Candidate) -> dict[str, Any]:
    return {
        "candidate_id": candidate.id,
        "round": candidate.round.number,
        "number": candidate.number,
    }


def _face_image(generation: Generation) -> tuple[str, str]:
    """(which image, key): the refined face if there is one, else the face."""
    return generation.shown_kind, generation.shown_key


def likeness_image(case: Case) -> CaseImage | None:
    """The case's likeness as a search image, or None when none is chosen."""
    candidate = case.likeness_candidate
    if candidate is not None:
        return CaseImage(
            LIKENESS,
            LIKENESS,
            f"The likeness (candidate {candidate.number} of round {candidate.round.number})",
            candidate.shown_key,
            generation_id=candidate.round.generation_id,
            candidate_id=candidate.id,
            detail={"image": LIKENESS, **_candidate_detail(candidate)},
        )
    generation = case.likeness_generation
    if generation is not None:
        which, key = _face_image(generation)
        return CaseImage(
            LIKENESS,
            LIKENESS,
            "The likeness (a sketch's face)",
            key,
            generation_id=generation.id,
            detail={"image": LIKENESS, "face": which},
        )
    return None


def case_images(session: Session, case: Case) -> list[CaseImage]:
    """Every image of the case a search can start from: the likeness, the sketches' faces (oldest
    first), then the candidates of each round (newest round first)."""
    images: list[CaseImage] = []
    likeness = likeness_image(case)
    if likeness is not None:
        images.append(likeness)
    for number, generation in enumerate(case_generations(session, case), 1):
        which, key = _face_image(generation)
        images.append(
            CaseImage(
                f"{FACE}-{generation.id}",
                FACE,
                f"Face of sketch {number}",
                key,
                generation_id=generation.id,
                detail={"image": FACE, "face": which},
            )
        )
    for round_ in reversed(case.rounds):
        for candidate in round_.candidates:
            images.append(
                CaseImage(
                    f"{CANDIDATE}-{candidate.id}",
                    CANDIDATE,
                    f"Candidate {candidate.number} of round {round_.number}",
                    candidate.shown_key,
                    generation_id=round_.generation_id,
                    candidate_id=candidate.id,
                    detail={"image": CANDIDATE, **_candidate_detail(candidate)},
                )
            )
    return images


def find_case_image(session: Session, case: Case, ref: str | None) -> CaseImage | None:
    """The case's image named ``ref``, or None (not one of this case's)."""
    ref = (ref or "").strip()[:64]
    if not ref:
        return None
    return next((image for image in case_images(session, case) if image.ref == ref), None)
