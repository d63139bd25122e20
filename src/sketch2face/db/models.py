"""Typed SQLAlchemy 2 models: users, generations, API tokens, the audit log, cases and their
candidate rounds.

The schema is owned by the Alembic migrations in ``db/migrations``; a test checks that the
migrated schema and these models (with the gallery tables of ``db/gallery.py``) agree.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Base and the time helpers are re-exported: callers take them from here with the tables
from sketch2face.db.base import Base as Base
from sketch2face.db.base import as_utc as as_utc
from sketch2face.db.base import utcnow as utcnow

ROLE_ADMIN = "admin"
ROLE_INVESTIGATOR = "investigator"
ROLES = (ROLE_ADMIN, ROLE_INVESTIGATOR)


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

    #: the case this generation belongs to (None: no case); ``case_number`` keeps the text that
    #: was typed, also for rows made before cases existed
    case_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("cases.id", ondelete="SET NULL"), index=True, default=None
    )

    user: Mapped[User] = relationship(back_populates="generations")
    case: Mapped[Case | None] = relationship(foreign_keys=[case_id])

    @property
    def image_keys(self) -> dict[str, str]:
        """kind -> object key for the images this generation has."""
        keys = {"sketch": self.sketch_key, "face": self.face_key}
        if self.refined_key:
            keys["refined"] = self.refined_key
        studio = (self.details or {}).get("studio_key")
        if studio:
            keys["studio"] = str(studio)
        return keys

    @property
    def shown_kind(self) -> str:
        """Which image is THE face of this generation (what pages, appeal sheets and gallery
        searches use): "studio" when it was put on the studio backdrop (``details["studio_key"]``,
        no column: issue 22 item 3), else "refined" when the second stage refined it, else "face"
        (stage one's, which stays stored either way for provenance)."""
        if (self.details or {}).get("studio_key"):
            return "studio"
        return "refined" if self.refined_key else "face"

    @property
    def shown_key(self) -> str:
        """Object key of THE face (:attr:`shown_kind`)."""
        return self.image_keys[self.shown_kind]

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
    #: the case the event concerns (a plain column too: the trail outlives rows)
    case_id: Mapped[int | None] = mapped_column(index=True, default=None)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SignInThrottle(Base):
    """Failed sign-ins counted per account at an address, and per address (``web/security/throttle.py``).

    ``key`` is a SHA-256 of the scope, username and address, so what people typed into the
    username field is not stored a second time (the audit log has it).
    """

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: no sign-in for this key before then (None: not held back)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)


CASE_OPEN = "open"
CASE_CLOSED = "closed"
CASE_STATUSES = (CASE_OPEN, CASE_CLOSED)


class Case(Base):
    """An investigation: a unique case number, its members, sketches (generations), candidate
    rounds and, once chosen, its likeness (a candidate or a generation's face)."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: how numbers compare (services/cases.number_key: NFKC, case-folded): look-alikes are one
    #: case. NULL only on look-alikes that existed before (migration i25_case_number_keys).
    number_key: Mapped[str | None] = mapped_column(
        sa.String(256), unique=True, index=True, default=None
    )
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default=CASE_OPEN)
    notes: Mapped[str | None] = mapped_column(sa.Text, default=None)
    #: who the public calls, printed on the case's appeal sheets; None: the instance's setting
    appeal_contact: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the case's likeness: one candidate, or the face of one of its generations (or neither)
    likeness_candidate_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("candidates.id", ondelete="SET NULL", use_alter=True), default=None
    )
    likeness_generation_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="SET NULL", use_alter=True), default=None
    )

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    members: Mapped[list[CaseMember]] = relationship(
        back_populates="case", cascade="all, delete-orphan", passive_deletes=True
    )
    rounds: Mapped[list[CandidateRound]] = relationship(
        back_populates="case",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CandidateRound.number",
    )
    likeness_candidate: Mapped[Candidate | None] = relationship(
        foreign_keys=[likeness_candidate_id], post_update=True
    )
    likeness_generation: Mapped[Generation | None] = relationship(
        foreign_keys=[likeness_generation_id], post_update=True
    )

    @property
    def is_open(self) -> bool:
        """Whether new sketches and candidate rounds may be added."""
        return self.status == CASE_OPEN


class CaseMember(Base):
    """A user who may see a case (and everything in it); one row per (case, user)."""

    __tablename__ = "case_members"

    case_id: Mapped[int] = mapped_column(
        sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    #: username of whoever added the member (None: the case's creator, or the migration)
    added_by: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class CandidateRound(Base):
    """One array of candidate faces for a sketch of a case.

    Round 1 of a sketch is made from its generation's sketch; later rounds are bred ("more like
    these") from the candidates chosen in their ``parent`` round (``chosen_candidate_ids``).
    ``input_key`` is the prepared 256x256 model input, stored with the round so later rounds
    see exactly the same input even if the generation is deleted.
    """

    __tablename__ = "candidate_rounds"
    __table_args__ = (sa.UniqueConstraint("case_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    #: the generation whose sketch this round is for (None once that generation is deleted)
    generation_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="SET NULL"), index=True, default=None
    )
    sketch_key: Mapped[str] = mapped_column(sa.String(255))
    input_key: Mapped[str] = mapped_column(sa.String(255))
    #: 1, 2, ... within the case
    number: Mapped[int] = mapped_column()
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("candidate_rounds.id", ondelete="SET NULL"), default=None
    )
    #: ids of the parent round's candidates this round was bred from (empty for a first round)
    chosen_candidate_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    #: witness attributes held fixed in every candidate (name -> value)
    fixed_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version: Mapped[str] = mapped_column(sa.String(128), default="")
    #: {"notices": [...], "face_found": bool, "attributes_applied": bool, "timings_ms": {...}}
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="rounds")
    generation: Mapped[Generation | None] = relationship()
    parent: Mapped[CandidateRound | None] = relationship(remote_side=[id])
    created_by: Mapped[User | None] = relationship()
    candidates: Mapped[list[Candidate]] = relationship(
        back_populates="round",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Candidate.index",
    )


class Candidate(Base):
    """One candidate face of a round: how it was made (seed, attributes) and its image."""

    __tablename__ = "candidates"
    __table_args__ = (sa.UniqueConstraint("round_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(
        sa.ForeignKey("candidate_rounds.id", ondelete="CASCADE"), index=True
    )
    #: position in the round's grid, 0-based (shown as 1..N)
    index: Mapped[int] = mapped_column()
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    #: witness attributes the face was generated with (name -> value)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ids of the parent round's candidates this one was bred from
    parent_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    #: stage one's face (kept for provenance)
    image_key: Mapped[str] = mapped_column(sa.String(255))
    #: the refined face (the second stage's), NULL when it was not refined (and before issue 22)
    refined_key: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    #: marked by the witness as one of the closest faces of its round
    closest: Mapped[bool] = mapped_column(default=False)

    round: Mapped[CandidateRound] = relationship(back_populates="candidates")

    @property
    def number(self) -> int:
        """1-based number shown under the face and on the grid."""
        return self.index + 1

    @property
    def studio_key(self) -> str | None:
        """Object key of this candidate's face on the studio backdrop (its round's
        ``details["studio_keys"]``, by index: issue 22 item 3, no column), else None."""
        keys = (self.round.details or {}).get("studio_keys") or []
        return str(keys[self.index]) if self.index < len(keys) else None

    @property
    def shown_key(self) -> str:
        """Object key of THE face of this candidate (what the witness sees, the likeness, appeal
        sheets and gallery searches use): on the studio backdrop when its round asked for it,
        else the refined face when there is one, else stage one's."""
        return self.studio_key or self.refined_key or self.image_key


class SigningKey(Base):
    """A provenance signing key this instance has used (issue 25): its fingerprint and public key.

    The row whose ``retired_at`` is NULL is the key the data folder must hold; ``serve`` refuses to
    start when it holds another (or none) while generations exist. Retired keys stay, so files
    they signed still verify as "signed by an earlier key of this instance".
    """

    __tablename__ = "signing_keys"

    #: SHA-256 of the raw Ed25519 public key, hex (provenance.keys.key_id)
    key_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)
