"""URL converters: ``<int:...>`` path segments within the database's integer range.

Werkzeug's ``int`` converter accepts any number of digits; a 20-digit id then reaches the
database, where SQLite raises OverflowError (a 500). Replacing the converter app-wide turns
every out-of-range id into the 404 it is, for every blueprint, present and future.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

#: primary keys are 32-bit signed integers on PostgreSQL (SQLite allows more, but never uses it)
MAX_DATABASE_ID = 2**31 - 1


class DatabaseIdConverter(IntegerConverter):
    """``int`` converter whose default range is 0..MAX_DATABASE_ID (outside it: no match, 404)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 (werkzeug's name)
        kwargs.setdefault("max", MAX_DATABASE_ID)
        super().__init__(map, *args, **kwargs)


def install(url_map: Map) -> None:
    """Make ``<int:...>`` bounded on ``url_map``; call before any blueprint is registered."""
    url_map.converters["int"] = DatabaseIdConverter
