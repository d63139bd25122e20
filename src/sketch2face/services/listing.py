"""Paged listings for the services: a filtered SELECT that counts its rows and fetches one page
in a fixed order. The pages, the API and the CLI pick the page; the SQL stays here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

T = TypeVar("T")


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with ``\\``, ``%`` and ``_`` escaped
    (use with ``escape="\\\\"``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Listing(Generic[T]):
    """``stmt`` (the filtered SELECT) with the order its pages are shown in and any loader
    options applied when fetching a page."""

    stmt: sa.Select[tuple[T]]
    order_by: tuple[Any, ...]
    options: tuple[Any, ...] = ()

    def count(self, session: Session) -> int:
        """How many rows the listing has in all."""
        return session.scalar(sa.select(sa.func.count()).select_from(self.stmt.subquery())) or 0

    def page(self, session: Session, limit: int, offset: int) -> Sequence[T]:
        """Rows ``offset .. offset + limit`` in the listing's order."""
        stmt = self.stmt.options(*self.options) if self.options else self.stmt
        return session.scalars(stmt.order_by(*self.order_by).limit(limit).offset(offset)).all()
