"""Append audit events in the caller's transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.models import AuditEvent, User
from sketch2face.services.listing import Listing
from sketch2face.services.runtime import client_address

# actions
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
GENERATE = "generate"
VIEW = "view"
DOWNLOAD = "download"
DELETE = "delete"
PASSWORD_CHANGE = "password_change"
PASSWORD_RESET = "password_reset"  # an administrator's reset of another account
USER_CREATE = "user_create"
USER_UPDATE = "user_update"
TOKEN_CREATE = "token_create"
TOKEN_REVOKE = "token_revoke"
# cases and candidates (issue 12); events about a case carry its id in ``case_id``
CASE_CREATE = "case_create"
CASE_UPDATE = "case_update"
CASE_VIEW = "case_view"
CASE_EXPORT = "case_export"
CASE_MEMBER_ADD = "case_member_add"
CASE_MEMBER_REMOVE = "case_member_remove"
CASE_LIKENESS = "case_likeness"
CANDIDATES_GENERATE = "candidates_generate"
CANDIDATES_CHOOSE = "candidates_choose"
APPEAL_SHEET = "appeal_sheet"
# gallery search (issue 13)
GALLERY_SEARCH = "gallery_search"
GALLERY_SEARCH_DENIED = "gallery_search_denied"
GALLERY_ENROL = "gallery_enrol"
GALLERY_CREATE = "gallery_create"
GALLERY_REMOVE = "gallery_remove"
GALLERY_PHOTO_REMOVE = "gallery_photo_remove"
GALLERY_PHOTO_VIEW = "gallery_photo_view"
GALLERY_GRANT = "gallery_grant"
GALLERY_REVOKE = "gallery_revoke"


def record(
    session: Session,
    action: str,
    user: User | None,
    *,
    generation_id: str | None = None,
    username: str | None = None,
    case_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to ``session`` (committed with the caller's change); ``case_id`` puts
    it on that case's audit trail."""
    event = AuditEvent(
        user_id=user.id if user is not None else None,
        username=user.username if user is not None else username,
        action=action,
        generation_id=generation_id,
        case_id=case_id,
        ip=client_address(),
        detail={k: v for k, v in detail.items() if v is not None},
    )
    session.add(event)
    return event


def event_listing(action: str = "", username: str = "") -> Listing[AuditEvent]:
    """Audit events newest first; a non-empty ``action`` or ``username`` keeps only the events
    with exactly that action or username."""
    stmt = sa.select(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if username:
        stmt = stmt.where(AuditEvent.username == username)
    return Listing(stmt, (AuditEvent.at.desc(), AuditEvent.id.desc()))


def recorded_actions(session: Session) -> list[str]:
    """Every action name the log holds at least once, sorted."""
    return list(
        session.scalars(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    )
