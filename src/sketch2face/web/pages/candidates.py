"""Candidate pages of a case: generate a round for one of its sketches, tick the closest faces,
"More like these" (the next round), candidate images and round grids, "Mark as likeness".

The rounds are made and stored by ``services/candidate_rounds.py``; everything is reached through
the case (``get_case_for``), so a non-member gets 404 for every route here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from sketch2face.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES
from sketch2face.db.models import User
from sketch2face.services.candidate_rounds import (
    breed_round,
    mark_closest,
    parse_count,
    round_grid_png,
    start_round,
)
from sketch2face.services.cases import CaseError, set_likeness
from sketch2face.services.generation import ATTRIBUTE_FIELDS
from sketch2face.web.database import get_session
from sketch2face.web.pages.cases import render_case
from sketch2face.web.responses import stored_image
from sketch2face.web.security.access import (
    get_case_candidate,
    get_case_for,
    get_case_generation,
    get_case_round,
)
from sketch2face.web.security.headers import NO_STORE

bp = Blueprint("candidates", __name__)


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def rate_cost() -> int:
    """What a candidate request costs against the per-user generation limit: one per face
    (``n``, default 6); saving a choice without a new round costs 1."""
    if request.form.get("action") == "mark":
        return 1
    value = request.form.get("n", "")
    return (
        int(value) if value.isdigit() and 1 <= int(value) <= MAX_CANDIDATES else DEFAULT_CANDIDATES
    )


@bp.errorhandler(429)
def rate_limited(exc: Exception) -> Any:
    """A limit hit on the case page is no bare error page: the ticks are saved (a choice costs no
    new faces), and the page says when the next round can be made."""
    retry = _retry_text()
    view_args = request.view_args or {}
    case_id = view_args.get("case_id")
    if case_id is None:
        return exc
    user = _user()
    case = get_case_for(case_id, user)
    anchor = "rounds"
    round_id = view_args.get("round_id")
    if round_id is not None:
        round_ = get_case_round(case, round_id)
        anchor = f"round-{round_.number}"
        try:
            ids = [int(v) for v in request.form.getlist("chosen") if v.isdigit()]
            if ids:
                mark_closest(user, case, round_, ids)
                if request.form.get("action") == "mark":
                    flash(f"Marked {len(ids)} candidate(s) of round {round_.number} as closest.")
                    return redirect(url_for("cases.detail", case_id=case.id, _anchor=anchor))
                flash(f"Your ticks in round {round_.number} are saved.", "success")
        except (CaseError, ValueError):
            get_session().rollback()
    flash(
        f"The generation limit of this server ({getattr(exc, 'description', '')}) is reached: "
        f"no new faces were made. Try again {retry}.",
        "error",
    )
    return redirect(url_for("cases.detail", case_id=case.id, _anchor=anchor))


def _retry_text() -> str:
    """'in 42 seconds (at 14:05:10 UTC)' from the limit that was hit."""
    import time
    from datetime import UTC, datetime

    from sketch2face.web.extensions import get_limiter

    limit = get_limiter().current_limit
    if limit is None:
        return "in a minute"
    wait = max(1, int(limit.reset_at - time.time()) + 1)
    at = datetime.fromtimestamp(limit.reset_at + 1, UTC).strftime("%H:%M:%S UTC")
    return f"in {wait} seconds (at {at})"


def chosen_ids(values: list[str]) -> list[int]:
    """Candidate ids from the ticked ``chosen`` boxes; anything else is a 400."""
    ids = []
    for value in values:
        if not value.isdigit() or len(value) > 10:
            abort(400, description="The chosen candidates must be candidate numbers.")
        ids.append(int(value))
    return ids


@bp.post("/cases/<int:case_id>/candidates")
@login_required
def generate(case_id: int) -> Any:
    """A first round for one of the case's sketches: ``generation_id``, ``n`` (1-12, default 6),
    the attributes the witness is sure of (``skin``, ``hair_color``, ``gender``: held fixed;
    empty: varied) and ``backdrop`` (photo or studio; empty: the generation's)."""
    user = _user()
    case = get_case_for(case_id, user)
    generation = get_case_generation(case, request.form.get("generation_id", ""))
    fixed = {k: request.form.get(k, "").strip() for k in ATTRIBUTE_FIELDS}
    try:
        round_ = start_round(
            user,
            case,
            generation,
            n=parse_count(request.form.get("n")),
            fixed_attributes=fixed,
            backdrop=request.form.get("backdrop") or None,
        )
    except (CaseError, ValueError) as exc:  # CandidateError and InvalidImageError are ValueErrors
        get_session().rollback()
        flash(str(exc), "error")
        return render_case(case, getattr(exc, "status", 400))
    flash(f"Round {round_.number}: {len(round_.candidates)} candidates.", "success")
    return redirect(url_for("cases.detail", case_id=case.id, _anchor=f"round-{round_.number}"))


@bp.post("/cases/<int:case_id>/rounds/<int:round_id>")
@login_required
def choose(case_id: int, round_id: int) -> Any:
    """The round's form: ``chosen`` (the ticked candidates) and ``action``: ``more`` ("More like
    these": mark them and breed the next round of ``n``) or ``mark`` (only record the choice)."""
    user = _user()
    case = get_case_for(case_id, user)
    round_ = get_case_round(case, round_id)
    ids = chosen_ids(request.form.getlist("chosen"))
    action = request.form.get("action", "more")
    try:
        if action == "mark":
            chosen = mark_closest(user, case, round_, ids)
            flash(
                f"Marked {len(chosen)} candidate(s) of round {round_.number} as closest.",
                "success",
            )
            anchor = f"round-{round_.number}"
        elif action == "more":
            child = breed_round(user, case, round_, ids, n=parse_count(request.form.get("n")))
            flash(
                f"Round {child.number}: more like candidates "
                f"{', '.join(str(c.number) for c in round_.candidates if c.closest)} of round "
                f"{round_.number}.",
                "success",
            )
            anchor = f"round-{child.number}"
        else:
            abort(400, description="action must be 'more' or 'mark'.")
    except (CaseError, ValueError) as exc:
        get_session().rollback()
        flash(str(exc), "error")
        return render_case(case, getattr(exc, "status", 400))
    return redirect(url_for("cases.detail", case_id=case.id, _anchor=anchor))


@bp.post("/cases/<int:case_id>/candidates/<int:candidate_id>/likeness")
@login_required
def likeness(case_id: int, candidate_id: int) -> Any:
    """Mark one candidate as the case's likeness."""
    user = _user()
    case = get_case_for(case_id, user)
    candidate = get_case_candidate(case, candidate_id)
    set_likeness(get_session(), user, case, candidate=candidate)
    flash(
        f"Candidate {candidate.number} of round {candidate.round.number} is now the case's "
        "likeness.",
        "success",
    )
    return redirect(url_for("cases.detail", case_id=case.id, _anchor="likeness"))


@bp.get("/cases/<int:case_id>/candidates/<int:candidate_id>.png")
@login_required
def image(case_id: int, candidate_id: int) -> Any:
    """One candidate's face (the refined one when it was refined)."""
    case = get_case_for(case_id, _user())
    return stored_image(get_case_candidate(case, candidate_id).shown_key)


@bp.get("/cases/<int:case_id>/rounds/<int:round_id>/grid.png")
@login_required
def grid(case_id: int, round_id: int) -> Any:
    """The round's candidates as one numbered sheet (to print or show the witness)."""
    case = get_case_for(case_id, _user())
    round_ = get_case_round(case, round_id)
    response = Response(round_grid_png(round_), mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response
