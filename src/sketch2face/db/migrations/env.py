"""Alembic environment for the sketch2face web schema.

Run through :func:`sketch2face.db.engine.upgrade_database` (app start, ``sketch2face serve``) or, for
authoring a new revision, from the repository root::

    alembic -c src/sketch2face/db/migrations/alembic.ini revision --autogenerate -m "..."
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from sketch2face.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE needs batch mode
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the connection handed in by the app, or a fresh one from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
