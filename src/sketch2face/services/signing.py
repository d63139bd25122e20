"""Signed exports: a face's provenance (model, weights, generation, case) signed with the
instance key, for PNG downloads, case exports and appeal sheets (``provenance``, ``appeal``)."""

from __future__ import annotations

from typing import Any

from sketch2face.appeal import AppealSheet, AppealSheetFiles, make_appeal_sheet
from sketch2face.provenance import (
    KIND_FACE,
    NO_REFINER,
    Provenance,
    sign_png,
)
from sketch2face.services.runtime import get_model_client, get_signing_key


def loaded_weights_sha256(model_id: str | None) -> str | None:
    """SHA-256 of the weights of the model this app runs in process, when that model is
    ``model_id`` (the model client's own weights file, not a setting that may name another);
    None for a remote model server (asking it would be an HTTP round trip per face) or another
    model. Generations and rounds record it when made (``details["model_sha256"]``)."""
    if not model_id:
        return None
    info = get_model_client().describe()
    if info.get("model_version") != model_id:
        return None
    return info.get("weights_sha256")


def loaded_refiner_sha256(refiner_version: str | None) -> str | None:
    """SHA-256 of the weights of the refiner this app runs in process, when that refiner is
    ``refiner_version``; None otherwise (no refiner, a remote model server, another refiner).
    Generations and rounds record it when made (``details["refiner_sha256"]``)."""
    if not refiner_version:
        return None
    info = get_model_client().describe()
    if info.get("refiner_version") != refiner_version:
        return None
    return info.get("refiner_sha256")


def stages_of(details: dict[str, Any] | None, image: str = "shown") -> dict[str, str | None]:
    """``refiner_id``, ``refiner_sha256`` and ``backdrop`` for provenance of one stored image of a
    generation or round (``details`` as recorded when it was made).

    ``image``: "face" (stage one's face alone: refiner "none", backdrop "photo"), "refined" (the
    refiner's face, on the networks' background), "studio" (the face shown on the studio
    backdrop) or "shown" (whichever is THE face). The refiner is "not recorded" (None) for records
    made before the refiner was recorded; backdrops did not exist then, so those are "photo".
    """
    details = details or {}
    if image == "face":
        return {"refiner_id": NO_REFINER, "refiner_sha256": None, "backdrop": "photo"}
    refiner = (details.get("refiner") or NO_REFINER) if "refiner" in details else None
    backdrop = "photo" if image == "refined" else str(details.get("backdrop") or "photo")
    return {
        "refiner_id": refiner,
        "refiner_sha256": details.get("refiner_sha256") if refiner != NO_REFINER else None,
        "backdrop": backdrop,
    }


def face_provenance(
    *,
    model_id: str | None,
    generation_id: str | None,
    case_number: str | None,
    details: dict[str, Any] | None = None,
    kind: str = KIND_FACE,
    image: str = "shown",
) -> Provenance:
    """Provenance for an exported face (of a generation or a candidate), stamped now.

    The weights SHA-256 is ``details["model_sha256"]`` when the generation or round recorded it
    (:func:`loaded_weights_sha256` when it was made); else that of the in-process model's
    weights, if that model is loaded and made the face; else not recorded (a remote model
    server, or a model since changed). Both stages and the backdrop come from ``details`` for
    the stored ``image`` (:func:`stages_of`).
    """
    model_sha256 = (details or {}).get("model_sha256") or loaded_weights_sha256(model_id)
    return Provenance.create(
        kind,
        model_id=model_id,
        model_sha256=model_sha256,
        generation_id=generation_id,
        case_number=case_number,
        **stages_of(details, image),
    )


def generation_provenance(
    generation: Any, kind: str = KIND_FACE, image: str = "shown"
) -> Provenance:
    """Provenance for an export of ``generation`` (a ``models.Generation``), stamped now;
    ``image``: which stored image (:func:`stages_of`)."""
    return face_provenance(
        model_id=getattr(generation, "model_version", None),
        generation_id=getattr(generation, "id", None),
        case_number=getattr(generation, "case_number", None),
        details=getattr(generation, "details", None),
        kind=kind,
        image=image,
    )


def sign_generation_png(
    generation: Any, png: bytes, *, kind: str = KIND_FACE, image: str = "shown"
) -> bytes:
    """``png`` (a stored face: ``image`` says which, see :func:`stages_of`) re-encoded with this
    instance's signed provenance."""
    return sign_png(png, generation_provenance(generation, kind, image), get_signing_key())


def sign_candidate_png(case_number: str, round_: Any, png: bytes, *, image: str = "shown") -> bytes:
    """A candidate face (``models.Candidate`` of ``round_``) with signed provenance: the model of
    its round (and its refiner and backdrop, for the stored ``image``: :func:`stages_of`), the
    generation whose sketch it came from, the case number."""
    provenance = face_provenance(
        model_id=round_.model_version,
        generation_id=round_.generation_id,
        case_number=case_number,
        details=round_.details,
        image=image,
    )
    return sign_png(png, provenance, get_signing_key())


def generation_appeal_sheet(
    generation: Any,
    face_png: bytes,
    *,
    contact: str,
    case_number: str | None = None,
    description: str | None = None,
) -> AppealSheetFiles:
    """The signed appeal sheet (PDF + preview PNG) of a generation's chosen face.

    ``case_number`` defaults to the generation's, ``description`` to its notes; the witness
    attributes come from ``generation.details["attributes"]``. Raises AppealSheetError (missing
    contact line, text too long) with a message for the user.
    """
    details = getattr(generation, "details", None) or {}
    sheet = AppealSheet(
        case_number=case_number or getattr(generation, "case_number", None) or "",
        contact=contact,
        description=description if description is not None else (generation.notes or ""),
        attributes=dict(details.get("attributes") or {}),
    )
    return signed_appeal_sheet(face_png, sheet, generation_provenance(generation))


def signed_appeal_sheet(
    face_png: bytes, sheet: AppealSheet, provenance: Provenance
) -> AppealSheetFiles:
    """Lay out ``sheet`` around ``face_png`` and sign it with this instance's key, recording the
    face's model and generation from ``provenance``. Raises AppealSheetError for the user."""
    return make_appeal_sheet(
        face_png,
        sheet,
        get_signing_key(),
        model_id=provenance.model_id,
        model_sha256=provenance.model_sha256,
        generation_id=provenance.generation_id,
        refiner_id=provenance.refiner_id,
        refiner_sha256=provenance.refiner_sha256,
        backdrop=provenance.backdrop,
    )
