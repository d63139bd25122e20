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
USER_CREATE = "user_create"
USER_UPDATE = "user_update"
TOKEN_CREATE = "token_create"
TOKEN_REVOKE = "token_revoke"


def record(
    session: Session,
    action: str,
    user: User | None,
    *,
    generation_id: str | None = None,
    username: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to ``session`` (committed with the caller's change)."""
    event = AuditEvent(
        user_id=user.id if user is not None else None,
        username=user.username if user is not None else username,
        action=action,
        generation_id=generation_id,
        ip=request.remote_addr if has_request_context() else None,
        detail={k: v for k, v in detail.items() if v is not None},
    )
    session.add(event)
    return event
