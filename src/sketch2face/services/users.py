"""User-account look-ups for the sign-in pages, the admin pages and the CLI. No HTTP here:
plain queries on a SQLAlchemy session; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.models import ROLE_ADMIN, User


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
