"""User-account look-ups for the sign-in pages, the admin pages and the CLI. No HTTP here:
plain queries on a SQLAlchemy session; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.models import ROLE_ADMIN, ApiToken, User


def username_taken(session: Session, username: str) -> bool:
    """Whether an account named ``username`` (already normalised) exists."""
    return session.scalar(sa.select(User.id).where(User.username == username)) is not None


def user_by_username(session: Session, username: str) -> User | None:
    """The account named ``username`` (already normalised), or None."""
    return session.scalar(sa.select(User).where(User.username == username))


def all_users(session: Session) -> Sequence[User]:
    """Every account, ordered by username."""
    return session.scalars(sa.select(User).order_by(User.username)).all()


def count_other_active_admins(session: Session, user: User) -> int:
    """Active administrators besides ``user``; their rows stay locked until the commit
    (PostgreSQL, ``FOR UPDATE``), so two administrators demoting each other at once cannot
    both succeed."""
    rows = session.scalars(
        sa.select(User.id)
        .where(User.role == ROLE_ADMIN, User.is_active.is_(True), User.id != user.id)
        .with_for_update()
    ).all()
    return len(rows)


def api_tokens_of(session: Session, user_id: int) -> Sequence[ApiToken]:
    """User ``user_id``'s API tokens (revoked ones too), newest first."""
    return session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
    ).all()


def api_token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    """The API token row stored under ``token_hash`` (revoked or not), or None."""
    return session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == token_hash))
