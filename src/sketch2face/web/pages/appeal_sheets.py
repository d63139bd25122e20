"""The appeal sheet of a case's likeness: a printable, signed A4 PDF and its PNG preview.

The face is the case's chosen likeness (a candidate or a generation's face), the description is
only what the investigator or witness specified: the attributes held fixed for the candidates (or
asked for with the generation) and the notes on that sketch, never the traits a candidate drew at
random (:func:`specified_attributes`). The contact
line is the case's own (filled in on the case page), else the instance's (``appeal_contact``). Access is the case's
(:func:`~sketch2face.web.security.access.get_case_for`: 404 for non-members); every sheet is audited.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort
from flask_login import current_user, login_required

from sketch2face.appeal import AppealSheet, AppealSheetFiles
from sketch2face.db.models import CandidateRound, Case, User
from sketch2face.errors import AppealSheetError
from sketch2face.services import audit
from sketch2face.services.case_export import export_file_name
from sketch2face.services.cases import likeness_image_key
from sketch2face.services.generation import requested_attributes
from sketch2face.services.signing import face_provenance, signed_appeal_sheet
from sketch2face.storage import ObjectNotFoundError
from sketch2face.web.database import get_session
from sketch2face.web.extensions import get_settings, get_store
from sketch2face.web.security.access import get_case_for
from sketch2face.web.security.headers import NO_STORE

bp = Blueprint("appeal_sheets", __name__)


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def specified_attributes(round_: CandidateRound) -> dict[str, str]:
    """The attributes the investigator or witness specified for a round's candidates: those its
    first round held fixed (a later round's picks may share more by chance; the candidates' own,
    randomly drawn values are the model's choice, not a description)."""
    while round_.parent is not None:
        round_ = round_.parent
    return {k: str(v) for k, v in (round_.fixed_attributes or {}).items() if v}


def case_contact(case: Case) -> str:
    """The contact line of ``case``'s appeal sheets: its own, else the instance's setting."""
    return (case.appeal_contact or get_settings().appeal_contact or "").strip()


def case_appeal_sheet(case: Case, user: User) -> AppealSheetFiles:
    """Lay out, render and sign the appeal sheet of ``case``'s likeness (aborts with a message
    when there is no likeness, no contact line or the description does not fit)."""
    key = likeness_image_key(case) or abort(
        404,
        description="This case has no likeness yet: mark a candidate or a face as the likeness.",
    )
    contact = case_contact(case)
    if not contact:  # the page offers the field; a direct link gets the same advice
        abort(
            409,
            description="No contact line is set for this case's appeal sheets; fill in "
            "'Contact line for the public' beside the likeness on the case page.",
        )
    try:
        face = get_store().get(key)
    except ObjectNotFoundError:
        abort(404, description="The likeness image is missing from storage.")
    candidate = case.likeness_candidate
    if candidate is not None:
        generation = candidate.round.generation
        attributes = specified_attributes(candidate.round)
        model_id = candidate.round.model_version
    else:
        generation = case.likeness_generation
        attributes = requested_attributes(generation) if generation is not None else {}
        model_id = generation.model_version if generation is not None else None
    provenance = face_provenance(
        model_id=model_id,
        generation_id=generation.id if generation is not None else None,
        case_number=case.number,
        details=(
            candidate.round.details
            if candidate is not None
            else generation.details
            if generation is not None
            else None
        ),
    )
    sheet = AppealSheet(
        case_number=case.number,
        contact=contact,
        description=(generation.notes or "") if generation is not None else "",
        attributes=attributes,
    )
    try:
        return signed_appeal_sheet(face, sheet, provenance)
    except AppealSheetError as exc:
        abort(400, description=str(exc))


def _answer(case: Case, data: bytes, mimetype: str, suffix: str, *, attachment: bool) -> Response:
    user = _user()
    session = get_session()
    audit.record(session, audit.APPEAL_SHEET, user, case_id=case.id, format=suffix)
    session.commit()
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = NO_STORE
    if attachment:
        name = export_file_name(case).removesuffix(".zip")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}-appeal.{suffix}"'
    return response


@bp.get("/cases/<int:case_id>/appeal-sheet.pdf")
@login_required
def pdf(case_id: int) -> Any:
    """The signed, printable A4 appeal sheet (a download)."""
    case = get_case_for(case_id, _user())
    return _answer(
        case, case_appeal_sheet(case, _user()).pdf, "application/pdf", "pdf", attachment=True
    )


@bp.get("/cases/<int:case_id>/appeal-sheet.png")
@login_required
def preview(case_id: int) -> Any:
    """The sheet as a signed PNG preview (to look at before printing)."""
    case = get_case_for(case_id, _user())
    files = case_appeal_sheet(case, _user())
    return _answer(case, files.preview_png, "image/png", "png", attachment=False)
