"""The access checks (flaskr's ``get_post(id, check_author=True)``): generations and cases, as
404 responses (the membership queries themselves are ``services.cases``').

Everything answers 404 rather than 403 to someone who may not see it: it does not confirm the
id exists. Who sees what:

- a generation: its owner, administrators, and the members of the case it belongs to;
- a case and everything in it (sketches, candidate rounds, candidates, images, export, audit
  trail): its members and administrators.

Changing a generation (deleting it) stays with its owner and administrators.
"""

from __future__ import annotations

from flask import abort

from sketch2face.db.models import Candidate, CandidateRound, Case, Generation, User
from sketch2face.services.cases import MAX_DB_INT, find_case, is_case_member
from sketch2face.web.database import get_session

NO_SUCH_CASE = "No such case, or you are not one of its members."


def get_owned_generation(generation_id: str, user: User) -> Generation:
    """Return the generation if ``user`` owns it or is an admin; else 404 (for changes)."""
    generation = get_session().get(Generation, generation_id) if len(generation_id) <= 32 else None
    if generation is None or not (generation.user_id == user.id or user.is_admin):
        abort(404, description="No such generation, or it is not yours.")
    return generation


def get_visible_generation(generation_id: str, user: User) -> Generation:
    """Return the generation if ``user`` may see it (owner, admin, member of its case); else 404."""
    generation = get_session().get(Generation, generation_id) if len(generation_id) <= 32 else None
    if generation is None or not (
        generation.user_id == user.id
        or user.is_admin
        or (generation.case_id is not None and is_case_member(generation.case_id, user))
    ):
        abort(404, description="No such generation, or it is not yours.")
    return generation


def get_case_for(ref: int | str, user: User) -> Case:
    """The case by id (int) or case number (str) if ``user`` is a member or an admin; else 404.

    Every page and API route of a case, and of its generations, rounds, candidates and images,
    goes through this one check.
    """
    case = find_case(ref)
    if case is None or not (user.is_admin or is_case_member(case.id, user)):
        abort(404, description=NO_SUCH_CASE)
    return case


# Things inside a case: looked up within a case the caller got from get_case_for, so an id from
# another case is a 404 like an id that does not exist.
def get_case_generation(case: Case, generation_id: str) -> Generation:
    """One of the case's generations (its sketches); else 404."""
    generation = get_session().get(Generation, generation_id) if len(generation_id) <= 32 else None
    if generation is None or generation.case_id != case.id:
        abort(404, description="No such sketch in this case.")
    return generation


def get_case_round(case: Case, round_id: int) -> CandidateRound:
    """One of the case's candidate rounds; else 404."""
    row = get_session().get(CandidateRound, round_id) if 0 < round_id <= MAX_DB_INT else None
    if row is None or row.case_id != case.id:
        abort(404, description="No such candidate round in this case.")
    return row


def get_case_candidate(case: Case, candidate_id: int) -> Candidate:
    """One candidate of one of the case's rounds; else 404."""
    row = get_session().get(Candidate, candidate_id) if 0 < candidate_id <= MAX_DB_INT else None
    if row is None or row.round.case_id != case.id:
        abort(404, description="No such candidate in this case.")
    return row
