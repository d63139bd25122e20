"""Typed SQLAlchemy 2 models: users, generations, API tokens and the audit log.

The schema is owned by the Alembic migrations in ``web/migrations``; a test checks that the
migrated schema and these models agree.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLE_ADMIN = "admin"
ROLE_INVESTIGATOR = "investigator"
ROLES = (ROLE_ADMIN, ROLE_INVESTIGATOR)


def utcnow() -> datetime:
    """Timezone-aware 'now' in UTC (stored naive-UTC by SQLite, timestamptz by PostgreSQL)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored time as aware UTC: SQLite hands back naive UTC, PostgreSQL the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so Alembic constraint names are stable."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: sa.DateTime(timezone=True), dict[str, Any]: sa.JSON}


class User(Base):
    """An account; usernames are stored lower-case and unique."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), default=ROLE_INVESTIGATOR)
    is_active: Mapped[bool] = mapped_column(default=True)
    #: rotated on password change so that other sessions of this user are signed out
    session_nonce: Mapped[str] = mapped_column(sa.String(32), default=lambda: secrets.token_hex(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)

    generations: Mapped[list[Generation]] = relationship(back_populates="user")

    @property
    def is_admin(self) -> bool:
        """Whether the user has the admin role."""
        return self.role == ROLE_ADMIN

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        """Always True for a loaded user (flask-login)."""
        return True

    @property
    def is_anonymous(self) -> bool:
        """Always False for a loaded user (flask-login)."""
        return False

    def get_id(self) -> str:
        """Session id ``<id>.<nonce>``: a password change invalidates older sessions."""
        return f"{self.id}.{self.session_nonce}"


class Generation(Base):
    """One sketch -> face generation; the images live in the object store under ``*_key``."""

    __tablename__ = "generations"

    #: random public id (not guessable, not enumerable)
    id: Mapped[str] = mapped_column(
        sa.String(32), primary_key=True, default=lambda: uuid.uuid4().hex
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    case_number: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    notes: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.String(16), default="upload")  # upload | canvas | api
    refine_requested: Mapped[bool] = mapped_column(default=False)
    sketch_key: Mapped[str] = mapped_column(sa.String(255))
    face_key: Mapped[str] = mapped_column(sa.String(255))
    refined_key: Mapped[str | None] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(128))
    #: {"prepare": ms, "generate": ms, "refine": ms, "total": ms}
    timings_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: {"notices": [...]} from the pipeline, e.g. refinement skipped
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    user: Mapped[User] = relationship(back_populates="generations")

    @property
    def image_keys(self) -> dict[str, str]:
        """kind -> object key for the images this generation has."""
        keys = {"sketch": self.sketch_key, "face": self.face_key}
        if self.refined_key:
            keys["refined"] = self.refined_key
        return keys

    @property
    def notices(self) -> list[str]:
        """Pipeline notices recorded with the generation."""
        return list(self.details.get("notices", []))


class ApiToken(Base):
    """A per-user API token; only its SHA-256 is stored (the token itself is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: first characters of the token, to recognise it in the list
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship()


class AuditEvent(Base):
    """Append-only audit log entry (sign-in, generate, view, download, delete, admin actions).

    ``generation_id`` is a plain column, not a foreign key, so the trail survives deletion.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    #: the username at the time (kept when the user row goes away)
    username: Mapped[str | None] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(32), index=True)
    generation_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SignInThrottle(Base):
    """Failed sign-ins counted per account at an address, and per address (``web/throttle.py``).

    ``key`` is a SHA-256 of the scope, username and address, so what people typed into the
    username field is not stored a second time (the audit log has it).
    """

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: no sign-in for this key before then (None: not held back)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)


# Gallery search tables (issue 13) live in sketch2face.gallery.models on this same Base; importing
# them here keeps Base.metadata complete for Alembic and the schema test wherever models is used.
from sketch2face.gallery import models as _gallery_models  # noqa: E402,F401
