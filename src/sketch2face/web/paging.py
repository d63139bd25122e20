"""Page numbers from the query string, clamped to the pages that exist (history, audit log).

Clamping keeps huge ``?page=`` values away from the database: an OFFSET beyond 64-bit integers
is an error on both SQLite and PostgreSQL, and past the last page there is nothing to show anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One page of a listing: ``number`` is 1-based and always within ``1..pages``."""

    number: int
    pages: int
    size: int

    @property
    def offset(self) -> int:
        """Rows to skip before this page."""
        return (self.number - 1) * self.size


def requested_page(args: Mapping[str, str]) -> int:
    """The ``page`` query parameter; anything that is not a whole number means page 1."""
    try:
        return int(args.get("page", "1"))
    except ValueError:  # also digit strings longer than int() accepts
        return 1


def page_of(requested: int, total: int, size: int) -> Page:
    """The page to show for ``requested``: below 1 is the first page, beyond the end the last."""
    pages = max((total + size - 1) // size, 1)
    return Page(number=min(max(requested, 1), pages), pages=pages, size=size)
