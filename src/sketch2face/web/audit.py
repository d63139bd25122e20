"""Append audit events in the caller's transaction."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from sqlalchemy.orm import Session

from sketch2face.web.models import AuditEvent, User

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
        ip=request.remote_addr if has_request_context() else None,
        detail={k: v for k, v in detail.items() if v is not None},
    )
    session.add(event)
    return event
