"""The declarative ``Base`` every table shares (one metadata, one Alembic history) and the UTC
time helpers the tables and their callers use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


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
