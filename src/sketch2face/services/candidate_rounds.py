"""Candidate rounds of a case: generate, choose, breed ("more like these"), stored with the case.

Shared by the candidate pages (``web/pages/candidates.py``) and the API (``web/api/cases.py``). The
faces come from the app's model client (``ModelClient.candidates``: in-process or the remote
model server), planned and bred by the library (:mod:`sketch2face.candidates`).

Candidates are refined like single faces (the second stage, when the model has one): the refined
face is the candidate's face (``Candidate.shown_key``: what the witness chooses from, the likeness
and the grid), stage one's stays stored beside it for provenance. A round on the studio backdrop
(``backdrop="studio"``, made by the model tier like both stages) stores each candidate's face on
it too, and that one is then the candidate's face.

Consistency, as in ``generation.py``: the images are written first (the prepared model input and
one PNG per candidate, and one per refined candidate, under ``cases/<case id>/rounds/<random>/``),
then the round, its candidates
and the audit event are committed in one transaction; on any failure the transaction is rolled
back and the written images are deleted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from sketch2face.candidates import (
    DEFAULT_CANDIDATES,
    MAX_CANDIDATES,
    CandidateError,
    CandidateSpec,
    candidate_grid,
    check_count,
    clean_attributes,
    next_round,
    plan_candidates,
    shared_attributes,
)
from sketch2face.db.models import Candidate, CandidateRound, Case, Generation, User, utcnow
from sketch2face.imaging import decode_image_bytes, encode_png
from sketch2face.refine.backdrop import BACKDROPS, check_backdrop
from sketch2face.services import audit
from sketch2face.services.attribute_check import check_faces
from sketch2face.services.cases import CaseError, ensure_open
from sketch2face.services.generation import (
    LIKENESS_NOTICE,
    _png,
    attribute_labels,
    backdrop_of,
    requested_attributes,
)
from sketch2face.services.runtime import get_model_client, get_session, get_store
from sketch2face.services.signing import loaded_refiner_sha256, loaded_weights_sha256
from sketch2face.serving.client import CandidatesOutput
from sketch2face.storage import ObjectNotFoundError, StorageError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CANDIDATES",
    "breed_round",
    "default_fixed_attributes",
    "mark_closest",
    "parse_count",
    "round_grid_png",
    "start_round",
]


class UnknownCandidateError(CandidateError):
    """A chosen candidate id is not in the round (409: the request does not fit the round)."""

    status = 409


def parse_count(value: str | int | None, default: int = DEFAULT_CANDIDATES) -> int:
    """The number of candidates from a form or query value (empty: ``default``); CandidateError
    (a ValueError) saying the allowed range otherwise."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or len(text) > 3:
            raise CandidateError(
                f"The number of candidates must be a whole number from 1 to {MAX_CANDIDATES}."
            )
        value = int(text)
    return check_count(value)


def candidate_labels(candidate: Candidate) -> list[str]:
    """A candidate's caption lines: each held-fixed attribute "shown" or "asked for, not shown"
    on its face, each varied one as the model's choice (rounds made before the check: "not
    checked")."""
    checks = (candidate.round.details or {}).get("attribute_checks") or []
    check = checks[candidate.index] if candidate.index < len(checks) else None
    return attribute_labels(
        candidate.attributes or {}, check, (candidate.round.fixed_attributes or {}).keys()
    )


def default_fixed_attributes(generation: Generation) -> dict[str, str]:
    """What a first round holds fixed unless told otherwise: the witness description the sketch
    was generated with."""
    return requested_attributes(generation)


def _load_image(key: str, what: str) -> np.ndarray:
    try:
        data = get_store().get(key)
    except ObjectNotFoundError:
        raise CaseError(f"The {what} is missing from storage; it cannot be used.") from None
    return decode_image_bytes(data, name=what)


def start_round(
    user: User,
    case: Case,
    generation: Generation,
    *,
    n: int = DEFAULT_CANDIDATES,
    fixed_attributes: Mapping[str, Any] | None = None,
    rng_seed: int | None = None,
    via: str | None = None,
    backdrop: str | None = None,
) -> CandidateRound:
    """A first round for one of the case's sketches: ``n`` candidates that vary every attribute
    not in ``fixed_attributes`` and the seed. The caller checked that ``generation`` is in
    ``case``. ``backdrop`` ("photo" or "studio"; None: the generation's): the candidates' faces
    are put on it (later rounds bred from this one keep it)."""
    ensure_open(case)
    check_count(n)
    chosen_backdrop = backdrop or backdrop_of(generation.details)
    try:
        check_backdrop(chosen_backdrop)
    except ValueError:
        raise CandidateError(
            f"The backdrop must be one of {', '.join(BACKDROPS)}, not {backdrop!r}."
        ) from None
    fixed = clean_attributes(fixed_attributes)
    sketch_u8 = _load_image(generation.sketch_key, "sketch of this generation")
    specs = plan_candidates(n, fixed, rng_seed)
    output = get_model_client().candidates(
        sketch_u8, specs, prepared=False, backdrop=chosen_backdrop
    )
    return _store_round(
        user,
        case,
        specs,
        output,
        generation_id=generation.id,
        sketch_key=generation.sketch_key,
        fixed=fixed,
        parent=None,
        chosen=[],
        via=via,
    )


def _chosen_in(round_: CandidateRound, candidate_ids: Sequence[int]) -> list[Candidate]:
    wanted = list(dict.fromkeys(candidate_ids))
    by_id = {c.id: c for c in round_.candidates}
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise UnknownCandidateError(
            f"Candidate(s) {', '.join(map(str, unknown[:5]))} are not in round {round_.number}."
        )
    return [by_id[i] for i in wanted]


def mark_closest(
    user: User,
    case: Case,
    round_: CandidateRound,
    candidate_ids: Sequence[int],
    *,
    via: str | None = None,
) -> list[Candidate]:
    """Record which candidates of a round the witness found closest (exactly these; audited)."""
    chosen = _chosen_in(round_, candidate_ids)
    ids = {c.id for c in chosen}
    for candidate in round_.candidates:
        candidate.closest = candidate.id in ids
    session = get_session()
    audit.record(
        session,
        audit.CANDIDATES_CHOOSE,
        user,
        case_id=case.id,
        generation_id=round_.generation_id,
        round=round_.number,
        chosen=[c.number for c in chosen],
        via=via,
    )
    session.commit()
    return chosen


def breed_round(
    user: User,
    case: Case,
    parent: CandidateRound,
    candidate_ids: Sequence[int],
    *,
    n: int = DEFAULT_CANDIDATES,
    rng_seed: int | None = None,
    via: str | None = None,
) -> CandidateRound:
    """ "More like these": mark the chosen candidates of ``parent`` as closest and breed a new
    round from them (same sketch input, same fixed attributes)."""
    ensure_open(case)
    check_count(n)
    chosen = _chosen_in(parent, candidate_ids)
    if not chosen:
        raise CandidateError("Choose at least one candidate (tick the closest faces) first.")
    picks = [CandidateSpec(c.seed, dict(c.attributes)) for c in chosen]
    # two or more picks: what they all share is held fixed in the children (shown on the page)
    held = {
        k: v
        for k, v in (shared_attributes(picks) if len(picks) > 1 else {}).items()
        if k not in parent.fixed_attributes
    }
    specs = next_round(
        picks,
        n,
        parent.fixed_attributes,
        rng_seed,
        # a model that ignores the description would repeat the picks' faces for their seeds
        vary_attributes=bool(parent.details.get("attributes_applied", True)),
    )
    backdrop = backdrop_of(parent.details)
    model_input = _load_image(parent.input_key, "model input of the previous round")
    output = get_model_client().candidates(model_input, specs, prepared=True, backdrop=backdrop)
    ids = {c.id for c in chosen}
    for candidate in parent.candidates:
        candidate.closest = candidate.id in ids
    return _store_round(
        user,
        case,
        specs,
        output,
        generation_id=parent.generation_id,
        sketch_key=parent.sketch_key,
        fixed=dict(parent.fixed_attributes),
        parent=parent,
        chosen=chosen,
        via=via,
        held=held,
    )


def _store_round(
    user: User,
    case: Case,
    specs: Sequence[CandidateSpec],
    output: CandidatesOutput,
    *,
    generation_id: str | None,
    sketch_key: str,
    fixed: dict[str, str],
    parent: CandidateRound | None,
    chosen: Sequence[Candidate],
    via: str | None,
    held: dict[str, str] | None = None,
) -> CandidateRound:
    if len(output.faces_u8) != len(specs):
        raise CaseError("The model returned a different number of candidates than requested.")
    store = get_store()
    session = get_session()
    prefix = f"cases/{case.id}/rounds/{uuid.uuid4().hex}"
    comment = f"sketch2face: {LIKENESS_NOTICE} Model {output.model_version}."
    written: list[str] = []
    try:
        input_key = f"{prefix}/input.png"
        written.append(input_key)
        store.put(input_key, encode_png(output.input_u8), content_type="image/png")
        keys: list[tuple[str, str | None]] = []  # (stage one's face, the refined face)
        shown: list[np.ndarray] = []  # THE face of each candidate
        studio_keys: list[str] = []  # on the studio backdrop: THE faces, by index
        for i, face in enumerate(output.faces_u8, start=1):
            key = f"{prefix}/candidate-{i:02d}.png"
            written.append(key)
            store.put(key, _png(face, comment=comment), content_type="image/png")
            refined_u8 = output.refined(i - 1)
            refined_key = None
            if refined_u8 is not None:
                refined_key = f"{prefix}/candidate-{i:02d}-refined.png"
                written.append(refined_key)
                store.put(refined_key, _png(refined_u8, comment=comment), content_type="image/png")
            keys.append((key, refined_key))
            # "studio": THE face on the studio backdrop, as the model tier made it
            studio_u8 = output.studio(i - 1)
            if studio_u8 is not None:
                studio_key = f"{prefix}/candidate-{i:02d}-studio.png"
                written.append(studio_key)
                store.put(studio_key, _png(studio_u8, comment=comment), content_type="image/png")
                studio_keys.append(studio_key)
            shown.append(output.shown(i - 1))
        number = (
            session.scalar(
                sa.select(sa.func.max(CandidateRound.number)).where(
                    CandidateRound.case_id == case.id
                )
            )
            or 0
        ) + 1
        chosen_ids = [c.id for c in chosen]
        round_ = CandidateRound(
            case_id=case.id,
            generation_id=generation_id,
            sketch_key=sketch_key,
            input_key=input_key,
            number=number,
            parent_id=parent.id if parent is not None else None,
            chosen_candidate_ids=chosen_ids,
            fixed_attributes=fixed,
            model_version=output.model_version,
            details={
                "notices": output.notices,
                "face_found": output.face_found,
                "attributes_applied": output.attributes_applied,
                "held_from_picks": held or {},
                "model_sha256": loaded_weights_sha256(output.model_version),
                "refiner": output.refiner_version or None,
                "refiner_sha256": loaded_refiner_sha256(output.refiner_version),
                # the candidates' background, as the model tier made them; "studio": THE faces
                # are studio_keys (by index, Candidate.shown_key; no column)
                "backdrop": output.backdrop,
                **({"studio_keys": studio_keys} if studio_keys else {}),
                # does each face (the one shown) show what it was asked for? (the captions say so)
                "attribute_checks": check_faces(shown, [dict(spec.attributes) for spec in specs]),
                "timings_ms": {k: round(v, 1) for k, v in output.timings_ms.items()},
            },
            created_by_id=user.id,
            created_at=utcnow(),
        )
        for i, (spec, (key, refined_key)) in enumerate(zip(specs, keys)):
            round_.candidates.append(
                Candidate(
                    index=i,
                    seed=spec.seed,
                    attributes=dict(spec.attributes),
                    parent_ids=[chosen_ids[p] for p in spec.parents if p < len(chosen_ids)],
                    image_key=key,
                    refined_key=refined_key,
                    closest=False,
                )
            )
        session.add(round_)
        session.flush()
        audit.record(
            session,
            audit.CANDIDATES_GENERATE,
            user,
            case_id=case.id,
            generation_id=generation_id,
            round=number,
            candidates=len(specs),
            fixed=fixed or None,
            parent_round=parent.number if parent is not None else None,
            chosen=[c.number for c in chosen] or None,
            via=via,
        )
        session.commit()
    except BaseException:
        session.rollback()
        for key in written:
            try:
                store.delete(key)
            except StorageError:
                log.exception("could not delete object %s; remove it by hand", key)
        raise
    log.info("case %s: round %s with %d candidates", case.id, round_.number, len(specs))
    return round_


def round_grid_png(round_: CandidateRound) -> bytes:
    """The round's candidates (their faces: refined where they were) as one numbered grid PNG
    (missing images: grey cells)."""
    store = get_store()
    faces = []
    for candidate in round_.candidates:
        try:
            faces.append(decode_image_bytes(store.get(candidate.shown_key), name="candidate"))
        except (ObjectNotFoundError, ValueError):
            faces.append(np.full((256, 256, 3), 200, np.uint8))
    return _png(candidate_grid(faces), comment=f"sketch2face: {LIKENESS_NOTICE}")
