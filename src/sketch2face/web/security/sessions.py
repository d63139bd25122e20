"""Signed-in browser sessions: start one, recognise it on each request, end them server-side.

The (signed) session cookie holds ``<user id>.<session nonce>`` and the time of sign-in. It opens
pages only while the account is active, the nonce still matches the user row, and for at most
:data:`SESSION_LIFETIME` after sign-in. Sign-out, a password change or reset and disabling the
account rotate the nonce, which ends every copy of the account's cookies on the server: a copy
taken before sign-out is worthless. Flask re-signs the cookie whenever the session changes, so
the cookie's own timestamp would let an active (or stolen) session live on; the sign-in time does not.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import session as cookie_session
from flask_login import login_user, logout_user

from sketch2face.db.models import User, utcnow
from sketch2face.web.database import get_session

#: absolute lifetime of a browser session, counted from sign-in
SESSION_LIFETIME = timedelta(hours=12)
_SIGNED_IN_AT = "signed_in_at"


def new_session_nonce() -> str:
    """A fresh nonce for ``User.session_nonce`` (rotating it ends the account's sessions)."""
    return secrets.token_hex(8)


def start_session(user: User) -> None:
    """Sign ``user`` in on this browser, stamping the time the lifetime counts from."""
    login_user(user)
    cookie_session[_SIGNED_IN_AT] = utcnow().timestamp()


def end_all_sessions(user: User) -> None:
    """Invalidate every session of ``user`` (the caller commits); this browser's included."""
    user.session_nonce = new_session_nonce()


def end_session() -> None:
    """Forget the signed-in user in this browser's cookie."""
    logout_user()
    cookie_session.pop(_SIGNED_IN_AT, None)


def load_session_user(session_id: str) -> User | None:
    """flask-login's user loader: the user of a still-valid session id, else None (signed out)."""
    user_id, _, nonce = session_id.partition(".")
    if not user_id.isdigit() or len(user_id) > 10:
        return None
    signed_in_at = cookie_session.get(_SIGNED_IN_AT)
    if not isinstance(signed_in_at, (int, float)):
        return None  # a cookie from before sign-in times were kept: sign in again
    if utcnow().timestamp() - signed_in_at > SESSION_LIFETIME.total_seconds():
        return None
    user = get_session().get(User, int(user_id))
    if user is None or not user.is_active or user.session_nonce != nonce:
        return None  # disabled, signed out, or the password changed since this session began
    return user
