"""Case pages: my cases, create a case, the case page (sketches, candidate rounds, likeness, audit
trail), edit status/notes, members, likeness, export.

Every route of a case goes through :func:`sketch2face.web.security.access.get_case_for` (404 for anyone
who is not a member, administrators see all); the records themselves are changed in
``services/cases.py``, the candidate rounds in ``services/candidate_rounds.py`` and
``web/pages/candidates.py``, the ZIP is made by ``services/case_export.py``.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required

from sketch2face.attributes import GENDERS, HAIR_COLOURS, SKIN_TONES
from sketch2face.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES
from sketch2face.db.models import CASE_STATUSES, Case, User
from sketch2face.services import audit
from sketch2face.services import cases as case_services
from sketch2face.services.candidate_rounds import candidate_labels
from sketch2face.services.case_export import build_case_zip, export_file_name
from sketch2face.services.cases import (
    CaseError,
    add_member,
    case_events,
    case_generations,
    create_case,
    likeness_image_key,
    members_of,
    remove_member,
    set_likeness,
    update_case,
)
from sketch2face.services.generation import describe_attributes, requested_attributes
from sketch2face.web.database import get_session
from sketch2face.web.extensions import get_settings
from sketch2face.web.paging import page_of, requested_page
from sketch2face.web.responses import stored_image
from sketch2face.web.security.access import get_case_candidate, get_case_for, get_case_generation
from sketch2face.web.security.headers import NO_STORE

bp = Blueprint("cases", __name__)
CASES_PAGE_SIZE = 20
#: audit events shown on the case page (the export has all of them)
TRAIL_ON_PAGE = 100


def open_case_numbers(limit: int = 100) -> list[str]:
    """Numbers of the signed-in user's open cases, newest first (the new-generation page offers
    them)."""
    if not current_user.is_authenticated:
        return []
    return case_services.open_case_numbers(get_session(), _user(), limit)


@bp.app_context_processor
def _case_helpers() -> dict[str, Any]:
    return {
        "open_case_numbers": open_case_numbers,
        "candidate_counts": list(range(1, MAX_CANDIDATES + 1)),
        "default_candidates": DEFAULT_CANDIDATES,
        "case_statuses": CASE_STATUSES,
        "genders": GENDERS,
        "describe_attributes": describe_attributes,
        "candidate_labels": candidate_labels,
    }


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


@bp.get("/cases")
@login_required
def index() -> Any:
    """The cases I am a member of (administrators: all cases), newest first, with a search."""
    return _render_index()


def _render_index(form: dict[str, str] | None = None, status: int = 200) -> Any:
    session = get_session()
    query = request.args.get("q", "").strip()[:64]
    listing = case_services.case_listing(_user(), query)
    total = listing.count(session)
    page = page_of(requested_page(request.args), total, CASES_PAGE_SIZE)
    rows = listing.page(session, page.size, page.offset)
    ids = [c.id for c in rows]
    sketches = case_services.sketch_counts(session, ids)
    members = case_services.member_counts(session, ids)
    return (
        render_template(
            "cases.html",
            rows=rows,
            sketches=sketches,
            members=members,
            q=query,
            page=page.number,
            pages=page.pages,
            total=total,
            form=form or {"number": "", "title": "", "notes": ""},
        ),
        status,
    )


@bp.post("/cases")
@login_required
def create() -> Any:
    """Create a case (the creator is its first member); a taken number is a 409 with the form."""
    form = {k: request.form.get(k, "") for k in ("number", "title", "notes")}
    try:
        case = create_case(
            get_session(), _user(), form["number"], title=form["title"], notes=form["notes"]
        )
    except CaseError as exc:
        flash(str(exc), "error")
        return _render_index(form, exc.status)
    flash(f"Case {case.number} created.", "success")
    return redirect(url_for("cases.detail", case_id=case.id))


@bp.get("/cases/<int:case_id>")
@login_required
def detail(case_id: int) -> Any:
    """The case page (viewing it is audited)."""
    case = get_case_for(case_id, _user())
    session = get_session()
    audit.record(session, audit.CASE_VIEW, _user(), case_id=case.id)
    session.commit()
    return render_case(case)


def render_case(case: Case, status: int = 200, **extra: Any) -> Any:
    """The case page, also after a form error (``status`` 400/409, the message flashed)."""
    session = get_session()
    generations = case_generations(session, case)
    rounds = list(reversed(case.rounds))  # newest first
    numbers = {c.id: c.number for r in case.rounds for c in r.candidates}
    events = list(reversed(case_events(session, case, limit=TRAIL_ON_PAGE)))
    return (
        render_template(
            "case.html",
            case=case,
            members=members_of(session, case),
            generations=generations,
            generation_attributes={g.id: requested_attributes(g) for g in generations},
            rounds=rounds,
            candidate_numbers=numbers,
            events=events,
            trail_limit=TRAIL_ON_PAGE,
            skin_tones=SKIN_TONES,
            hair_colours=HAIR_COLOURS,
            appeal_sheet_url=(
                url_for("appeal_sheets.pdf", case_id=case.id) if likeness_image_key(case) else None
            ),
            default_contact=(get_settings().appeal_contact or "").strip(),
            **extra,
        ),
        status,
    )


@bp.post("/cases/<int:case_id>/edit")
@login_required
def edit(case_id: int) -> Any:
    """Change the title, status (open/closed) and notes."""
    case = get_case_for(case_id, _user())
    try:
        changes = update_case(
            get_session(),
            _user(),
            case,
            title=request.form.get("title"),
            status=request.form.get("status"),
            notes=request.form.get("notes"),
            appeal_contact=request.form.get("appeal_contact"),
        )
    except CaseError as exc:
        get_session().rollback()
        flash(str(exc), "error")
        return render_case(case, exc.status)
    flash("Case updated." if changes else "Nothing changed.", "success")
    anchor = "likeness" if request.form.get("return_to") == "likeness" else None
    return redirect(url_for("cases.detail", case_id=case.id, _anchor=anchor))


@bp.post("/cases/<int:case_id>/members")
@login_required
def add_member_route(case_id: int) -> Any:
    """Add a member by username (audited)."""
    case = get_case_for(case_id, _user())
    try:
        member = add_member(get_session(), _user(), case, request.form.get("username"))
    except CaseError as exc:
        get_session().rollback()
        flash(str(exc), "error")
        return render_case(case, exc.status)
    flash(f"{member.username} can now see this case.", "success")
    return redirect(url_for("cases.detail", case_id=case.id, _anchor="members"))


@bp.post("/cases/<int:case_id>/members/<int:user_id>/remove")
@login_required
def remove_member_route(case_id: int, user_id: int) -> Any:
    """Remove a member (audited); removing oneself leads back to the case list."""
    user = _user()
    case = get_case_for(case_id, user)
    try:
        removed = remove_member(get_session(), user, case, user_id)
    except CaseError as exc:
        get_session().rollback()
        flash(str(exc), "error")
        return render_case(case, exc.status)
    flash(f"{removed.username} was removed from case {case.number}.", "success")
    if removed.id == user.id and not user.is_admin:
        return redirect(url_for("cases.index"))
    return redirect(url_for("cases.detail", case_id=case.id, _anchor="members"))


@bp.post("/cases/<int:case_id>/likeness")
@login_required
def likeness(case_id: int) -> Any:
    """Mark a generation's face (``generation_id``) or a candidate (``candidate_id``) as the
    case's likeness."""
    case = get_case_for(case_id, _user())
    generation_id = request.form.get("generation_id", "").strip()
    candidate_id = request.form.get("candidate_id", "").strip()
    if generation_id:
        set_likeness(
            get_session(), _user(), case, generation=get_case_generation(case, generation_id)
        )
    elif candidate_id.isdigit() and len(candidate_id) <= 10:
        set_likeness(
            get_session(), _user(), case, candidate=get_case_candidate(case, int(candidate_id))
        )
    else:
        abort(400, description="Choose a generation or a candidate as the likeness.")
    flash("The case's likeness is set.", "success")
    return redirect(url_for("cases.detail", case_id=case.id, _anchor="likeness"))


@bp.get("/cases/<int:case_id>/likeness.png")
@login_required
def likeness_image(case_id: int) -> Any:
    """The case's likeness image."""
    case = get_case_for(case_id, _user())
    key = likeness_image_key(case) or abort(404, description="This case has no likeness yet.")
    return stored_image(key)


@bp.get("/cases/<int:case_id>/export.zip")
@login_required
def export(case_id: int) -> Any:
    """Everything of the case as one ZIP (audited): images, case.json, audit.json."""
    case = get_case_for(case_id, _user())
    archive = build_case_zip(get_session(), case, _user())
    response = send_file(
        archive,
        mimetype="application/zip",
        as_attachment=True,
        download_name=export_file_name(case),
        max_age=0,
    )
    response.headers["Cache-Control"] = NO_STORE
    return response
