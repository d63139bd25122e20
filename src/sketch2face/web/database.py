"""The app's database: an engine and session factory per app, a session per request (flaskr's
``get_db`` pattern). The engine itself and the migrations are ``sketch2face.db``'s."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from sketch2face.db.engine import make_engine

_EXT = "sketch2face.db"


def init_app(app: Flask, url: str) -> None:
    """Bind an engine + session factory to ``app`` and close the request session on teardown."""
    engine = make_engine(url)
    app.extensions[_EXT] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine(app: Flask | None = None) -> sa.Engine:
    """The app's engine."""
    factory: sessionmaker[Session] = (app or current_app).extensions[_EXT]
    bind = factory.kw["bind"]
    assert isinstance(bind, sa.Engine)
    return bind


def get_session() -> Session:
    """The request's session (created on first use, closed at teardown)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions[_EXT]()
    session: Session = g.db_session
    return session


def new_session(app: Flask) -> Session:
    """A standalone session (CLI, background work); the caller closes it."""
    session: Session = app.extensions[_EXT]()
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
