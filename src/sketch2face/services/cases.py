"""Case records: create, edit, members, likeness, and linking generations to cases.

Shared by the case pages (``web/pages/cases.py``) and the API (``web/api/cases.py``). Every change is
audited in the same transaction (``audit.record(..., case_id=...)``), so the case's audit trail
(:func:`case_events`) shows who did what. Access checks are not made here: callers pass a case
they got from :func:`sketch2face.web.security.access.get_case_for`, which asks
:func:`find_case` and :func:`is_case_member` here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.models import (
    CASE_CLOSED,
    CASE_OPEN,
    CASE_STATUSES,
    AuditEvent,
    Candidate,
    Case,
    CaseMember,
    Generation,
    User,
    as_utc,
)
from sketch2face.services import audit
from sketch2face.services.accounts import normalise_username
from sketch2face.services.listing import Listing, contains_pattern
from sketch2face.services.runtime import get_session

MAX_NUMBER_CHARS = 64
MAX_TITLE_CHARS = 200
MAX_NOTES_CHARS = 4000
#: as many as an appeal sheet prints (appeal.layout.MAX_CONTACT_CHARS)
MAX_CONTACT_CHARS = 200


#: the largest id the database's integer columns hold (PostgreSQL INTEGER)
MAX_DB_INT = 2**31 - 1


def is_case_member(case_id: int, user: User) -> bool:
    """Whether ``user`` is a member of the case (administrators are not members by role)."""
    return get_session().get(CaseMember, (case_id, user.id)) is not None


def find_case(ref: int | str) -> Case | None:
    """The case with id ``ref`` (int) or number ``ref`` (str), without any access check."""
    session = get_session()
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return session.get(Case, ref) if 0 < ref <= MAX_DB_INT else None
    number = unicodedata.normalize("NFKC", ref).strip()
    if not number or len(number) > MAX_NUMBER_CHARS:
        return None
    exact = session.scalar(sa.select(Case).where(Case.number == number))
    if exact is not None:  # also the look-alikes made before keys (number_key NULL)
        return exact
    return session.scalar(sa.select(Case).where(Case.number_key == number_key(number)))


def visible_cases(user: User) -> sa.Select[tuple[Case]]:
    """SELECT of the cases ``user`` may see (administrators: all)."""
    stmt = sa.select(Case)
    if not user.is_admin:
        stmt = stmt.where(
            Case.id.in_(sa.select(CaseMember.case_id).where(CaseMember.user_id == user.id))
        )
    return stmt


def case_listing(user: User, query: str = "") -> Listing[Case]:
    """The cases ``user`` may see (administrators: all), newest first; a non-empty ``query``
    keeps those whose number or title contains it (case-insensitive, LIKE characters literal)."""
    stmt = visible_cases(user)
    if query:
        pattern = contains_pattern(query)
        stmt = stmt.where(
            sa.or_(Case.number.ilike(pattern, escape="\\"), Case.title.ilike(pattern, escape="\\"))
        )
    return Listing(stmt, (Case.created_at.desc(), Case.id.desc()))


def open_case_numbers(session: Session, user: User, limit: int = 100) -> list[str]:
    """Numbers of the open cases ``user`` is a member of, newest first."""
    stmt = sa.select(Case.number).where(
        Case.status == CASE_OPEN,
        Case.id.in_(sa.select(CaseMember.case_id).where(CaseMember.user_id == user.id)),
    )
    return list(session.scalars(stmt.order_by(Case.created_at.desc()).limit(limit)))


def sketch_counts(session: Session, case_ids: Sequence[int]) -> dict[int, int]:
    """Generations per case for ``case_ids`` (cases without any are left out)."""
    return dict(
        session.execute(
            sa.select(Generation.case_id, sa.func.count())
            .where(Generation.case_id.in_(case_ids))
            .group_by(Generation.case_id)
        )
        .tuples()
        .all()
    )


def member_counts(session: Session, case_ids: Sequence[int]) -> dict[int, int]:
    """Members per case for ``case_ids`` (cases without any are left out)."""
    return dict(
        session.execute(
            sa.select(CaseMember.case_id, sa.func.count())
            .where(CaseMember.case_id.in_(case_ids))
            .group_by(CaseMember.case_id)
        )
        .tuples()
        .all()
    )


class CaseError(ValueError):
    """A case change that cannot be made; ``status`` is the HTTP status to answer with."""

    status = 400


class DuplicateCaseError(CaseError):
    """The case number is already taken."""

    status = 409


class CaseClosedError(CaseError):
    """The case is closed: nothing new may be added until it is reopened."""

    status = 409


def _text(label: str, value: str | None, limit: int, *, required: bool = False) -> str:
    text = (value or "").strip()
    if value is not None and len(value) > limit:
        raise CaseError(f"{label} can be at most {limit} characters.")
    if "\x00" in text:
        raise CaseError(f"{label} contains a NUL character (\\x00); remove it.")
    if required and not text:
        raise CaseError(f"{label} is required.")
    return text


INVISIBLE_IN_NUMBER = (
    "The case number cannot contain line breaks, control characters or invisible formatting "
    "characters (zero-width spaces, direction marks); type it again."
)


_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def has_invisible(text: str) -> bool:
    """Whether ``text`` has control (C0, DEL, C1), format (zero-width, bidi, BOM) or
    line/paragraph separator characters (the API's pattern: web/api/fields.CASE_NUMBER)."""
    return any(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text)


def number_key(number: str) -> str:
    """How case numbers compare: NFKC, case-folded, so ``DUP-0413``, ``dup-0413`` and the same
    with a full-width digit are one case (stored as ``cases.number_key``)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", number).casefold()).strip()


def clean_number(number: str | None) -> str:
    """A case number as stored: NFKC, trimmed, 1-64 characters, no control or invisible
    formatting characters, at least one letter or digit (A-Z, a-z, 0-9)."""
    text = _text("The case number", number, MAX_NUMBER_CHARS, required=True)
    if has_invisible(text):
        raise CaseError(INVISIBLE_IN_NUMBER)
    text = unicodedata.normalize("NFKC", text).strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise CaseError(f"The case number can be at most {MAX_NUMBER_CHARS} characters.")
    if has_invisible(text):
        raise CaseError(INVISIBLE_IN_NUMBER)
    if not any(c.isascii() and c.isalnum() for c in text):
        raise CaseError("The case number needs at least one letter or digit.")
    return text


def create_case(
    session: Session,
    user: User,
    number: str | None,
    *,
    title: str | None = "",
    notes: str | None = None,
    commit: bool = True,
    via: str | None = None,
) -> Case:
    """Create a case with ``user`` as its first member (audited).

    DuplicateCaseError (409) when the number is taken. ``commit=False`` leaves the commit to the
    caller (a generation that creates its case commits both together).
    """
    number = clean_number(number)
    title = _text("The title", title, MAX_TITLE_CHARS)
    notes = _text("Notes", notes, MAX_NOTES_CHARS) or None
    key = number_key(number)
    taken = sa.or_(Case.number == number, Case.number_key == key)
    if session.scalar(sa.select(Case.id).where(taken).limit(1)) is not None:
        raise DuplicateCaseError(
            f"Case number {number} is already taken. Open that case (ask one of its members to "
            "add you if you cannot see it), or choose another number."
        )
    case = Case(
        number=number,
        number_key=key,
        title=title,
        notes=notes,
        status=CASE_OPEN,
        created_by_id=user.id,
    )
    case.members.append(CaseMember(user_id=user.id, added_by=user.username))
    session.add(case)
    try:
        session.flush()  # the id, and a concurrent duplicate fails here
    except sa.exc.IntegrityError:
        session.rollback()
        raise DuplicateCaseError(f"Case number {number} is already taken.") from None
    audit.record(
        session, audit.CASE_CREATE, user, case_id=case.id, number=number, title=title, via=via
    )
    if commit:
        session.commit()
    return case


def update_case(
    session: Session,
    user: User,
    case: Case,
    *,
    title: str | None = None,
    status: str | None = None,
    notes: str | None = None,
    appeal_contact: str | None = None,
    via: str | None = None,
) -> dict[str, Any]:
    """Change title, status, notes and/or the appeal sheets' contact line (None: unchanged;
    an empty contact line: the instance's setting); audited with what changed. Returns
    {field: [old, new]} for title, status and contact line, ``{"notes": "changed"}`` for notes."""
    changes: dict[str, Any] = {}
    if title is not None:
        new_title = _text("The title", title, MAX_TITLE_CHARS)
        if new_title != case.title:
            changes["title"] = [case.title, new_title]
            case.title = new_title
    if status is not None:
        if status not in CASE_STATUSES:
            raise CaseError(f"The status must be one of {', '.join(CASE_STATUSES)}.")
        if status != case.status:
            changes["status"] = [case.status, status]
            case.status = status
    if notes is not None:
        new_notes = _text("Notes", notes, MAX_NOTES_CHARS) or None
        if new_notes != case.notes:
            changes["notes"] = "changed"  # the text itself is on the case page, not in the log
            case.notes = new_notes
    if appeal_contact is not None:
        contact = " ".join(_text("The contact line", appeal_contact, MAX_CONTACT_CHARS).split())
        if (contact or None) != case.appeal_contact:
            changes["appeal_contact"] = [case.appeal_contact, contact or None]
            case.appeal_contact = contact or None
    if changes:
        audit.record(session, audit.CASE_UPDATE, user, case_id=case.id, changes=changes, via=via)
        session.commit()
    return changes


def add_member(session: Session, user: User, case: Case, username: str | None) -> User:
    """Make the account ``username`` a member of ``case`` (audited); CaseError when there is no
    such active account or it is a member already."""
    name = normalise_username(username or "")
    if not name:
        raise CaseError("Give the username of the account to add.")
    member = session.scalar(sa.select(User).where(User.username == name))
    if member is None or not member.is_active:
        raise CaseError(f"There is no active account named {name[:64]!r}.")
    if is_case_member(case.id, member):
        raise CaseError(f"{member.username} is already a member of this case.")
    session.add(CaseMember(case_id=case.id, user_id=member.id, added_by=user.username))
    audit.record(session, audit.CASE_MEMBER_ADD, user, case_id=case.id, member=member.username)
    session.commit()
    return member


def remove_member(session: Session, user: User, case: Case, member_id: int) -> User:
    """Remove a member (audited). A case keeps at least one member; CaseError otherwise."""
    row = session.get(CaseMember, (case.id, member_id))
    if row is None:
        raise CaseError("That account is not a member of this case.")
    count = session.scalar(
        sa.select(sa.func.count()).select_from(CaseMember).where(CaseMember.case_id == case.id)
    )
    if (count or 0) <= 1:
        raise CaseError("A case keeps at least one member; add another member first.")
    removed = row.user
    session.delete(row)
    audit.record(session, audit.CASE_MEMBER_REMOVE, user, case_id=case.id, member=removed.username)
    session.commit()
    return removed


def members_of(session: Session, case: Case) -> list[CaseMember]:
    """The case's members, by username."""
    return list(
        session.scalars(
            sa.select(CaseMember)
            .join(User, User.id == CaseMember.user_id)
            .where(CaseMember.case_id == case.id)
            .order_by(User.username)
        )
    )


def set_likeness(
    session: Session,
    user: User,
    case: Case,
    *,
    candidate: Candidate | None = None,
    generation: Generation | None = None,
    via: str | None = None,
) -> None:
    """Make a candidate of the case, or the face of one of its generations, the case's likeness
    (audited). The caller has checked that they belong to ``case``."""
    if (candidate is None) == (generation is None):
        raise CaseError("Mark either a candidate or a generation as the likeness.")
    if candidate is not None:
        if candidate.round.case_id != case.id:
            raise CaseError("That candidate belongs to another case.")
        case.likeness_candidate_id, case.likeness_generation_id = candidate.id, None
        detail = {
            "candidate_id": candidate.id,
            "round": candidate.round.number,
            "number": candidate.number,
            "seed": candidate.seed,
        }
        generation_id = candidate.round.generation_id
    else:
        assert generation is not None
        if generation.case_id != case.id:
            raise CaseError("That generation belongs to another case.")
        case.likeness_candidate_id, case.likeness_generation_id = None, generation.id
        detail = {}
        generation_id = generation.id
    audit.record(
        session,
        audit.CASE_LIKENESS,
        user,
        case_id=case.id,
        generation_id=generation_id,
        via=via,
        **detail,
    )
    session.commit()


def case_for_generation(
    session: Session, user: User, number: str | None, *, create: bool
) -> Case | None:
    """The case a new generation with case number ``number`` belongs to.

    No number: None. An existing case: it, if ``user`` is a member (or an admin) and it is open;
    CaseError otherwise. A new number: with ``create`` a new case with ``user`` as member (not
    committed: the generation commits it), without ``create`` None (a check before the model
    runs).
    """
    if number and has_invisible(number):  # checked before trimming, as the API says
        raise CaseError(INVISIBLE_IN_NUMBER)
    if not (number or "").strip():
        return None
    text = clean_number(number)
    case = find_case(text)
    if case is None:
        if not create:
            return None
        return create_case(session, user, text, commit=False, via="generation")
    if not (user.is_admin or is_case_member(case.id, user)):
        # the number is taken: say only that (no title, no members), and how to get access
        raise CaseError(
            f"Case number {text} is taken by a case you are not a member of. Ask its owner for "
            "access (they can add you on the case's page), or use another case number."
        )
    if case.status == CASE_CLOSED:
        raise CaseClosedError(f"Case {text} is closed; reopen it on its page to add sketches.")
    return case


def ensure_open(case: Case) -> None:
    """CaseClosedError unless the case is open."""
    if case.status != CASE_OPEN:
        raise CaseClosedError(
            f"Case {case.number} is closed; reopen it (status) to add sketches or candidates."
        )


def case_generations(session: Session, case: Case) -> list[Generation]:
    """The case's generations (its sketches), oldest first."""
    return list(
        session.scalars(
            sa.select(Generation)
            .where(Generation.case_id == case.id)
            .options(sa.orm.joinedload(Generation.user))
            .order_by(Generation.created_at, Generation.id)
        )
    )


def case_events_stmt(case: Case) -> sa.Select[tuple[AuditEvent]]:
    """SELECT of the case's audit trail: events about the case, and about its generations."""
    generation_ids = sa.select(Generation.id).where(Generation.case_id == case.id)
    return sa.select(AuditEvent).where(
        sa.or_(AuditEvent.case_id == case.id, AuditEvent.generation_id.in_(generation_ids))
    )


def case_events(session: Session, case: Case, *, limit: int | None = None) -> list[AuditEvent]:
    """The case's audit trail, oldest first (``limit``: only the newest that many)."""
    stmt = case_events_stmt(case)
    if limit is None:
        return list(session.scalars(stmt.order_by(AuditEvent.at, AuditEvent.id)))
    newest = session.scalars(stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))
    return list(reversed(list(newest)))


def event_json(event: AuditEvent) -> dict[str, Any]:
    """One audit event as JSON (export and API)."""
    return {
        "id": event.id,
        "at": as_utc(event.at).isoformat(),
        "user": event.username,
        "action": event.action,
        "generation_id": event.generation_id,
        "case_id": event.case_id,
        "ip": event.ip,
        "detail": event.detail,
    }


def case_summary(case: Case, members: Sequence[CaseMember] | None = None) -> dict[str, Any]:
    """The case's own fields as JSON (no URLs; the API and the export add theirs)."""
    body: dict[str, Any] = {
        "id": case.id,
        "number": case.number,
        "title": case.title,
        "status": case.status,
        "notes": case.notes,
        "created_at": as_utc(case.created_at).isoformat(),
        "created_by": case.created_by.username if case.created_by else None,
        "likeness": likeness_ref(case),
    }
    if members is not None:
        body["members"] = [m.user.username for m in members]
    return body


def likeness_ref(case: Case) -> dict[str, Any] | None:
    """What the case's likeness is: ``{"candidate_id": ...}``, ``{"generation_id": ...}`` or
    None."""
    if case.likeness_candidate_id is not None:
        return {"candidate_id": case.likeness_candidate_id}
    if case.likeness_generation_id is not None:
        return {"generation_id": case.likeness_generation_id}
    return None


def likeness_image_key(case: Case) -> str | None:
    """Object key of the case's likeness image (a candidate's or a generation's face: the refined
    one when there is one, else stage one's), or None when none is chosen."""
    if case.likeness_candidate is not None:
        return case.likeness_candidate.shown_key
    generation = case.likeness_generation
    if generation is not None:
        return generation.shown_key
    return None
