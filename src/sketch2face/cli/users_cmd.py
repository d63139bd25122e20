"""``sketch2face users``: create the first admin (and other accounts), reset passwords, list."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sketch2face.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``users`` sub-command with ``create``, ``set-password`` and ``list``."""
    parser = subparsers.add_parser(
        "users", help="manage web accounts (first admin, password reset, listing)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data folder of `sketch2face serve` (default ./instance or SKETCH2FACE_DATA_DIR)",
    )
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION")
    create = actions.add_parser("create", help="create an account")
    create.add_argument("--username", required=True)
    create.add_argument("--admin", action="store_true", help="give the account the admin role")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (for scripts); else prompt twice",
    )
    create.set_defaults(func=run_create)
    _data_dir_option(create)
    reset = actions.add_parser(
        "set-password",
        help="set a new password (an administrator's reset): signs the account out everywhere "
        "and revokes its API tokens",
    )
    reset.add_argument("--username", required=True)
    reset.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (for scripts); else prompt twice",
    )
    reset.set_defaults(func=run_set_password)
    _data_dir_option(reset)
    listing = actions.add_parser("list", help="list accounts")
    listing.set_defaults(func=run_list)
    _data_dir_option(listing)
    parser.set_defaults(func=lambda _a: parser.print_help() or 2)


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    """Also accept --data-dir after the action (``users create --data-dir X``)."""
    parser.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


@contextmanager
def _db_session(args: argparse.Namespace) -> Iterator[Any]:
    """A session on the app's (migrated) database; connections are closed afterwards."""
    from sketch2face.web import create_app
    from sketch2face.web.database import get_engine, new_session
    from sketch2face.web.settings import WebSettings

    if not getattr(args, "verbose", False):
        # the schema check and migrations are no business of a user listing: their progress
        # lines stay out of the terminal (warnings still show; -v shows everything)
        for name in ("alembic", "sketch2face.db", "sketch2face.web"):
            logging.getLogger(name).setLevel(logging.WARNING)
    settings = WebSettings.from_env()
    if args.data_dir is not None:
        settings = settings.replace(data_dir=args.data_dir)
    # the CLI signs nobody in, so a throwaway key is fine when none is configured
    app = create_app(settings.replace(secret_key=settings.secret_key or "cli-" + "0" * 32))
    try:
        with app.app_context(), new_session(app) as session:
            yield session
    finally:
        get_engine(app).dispose()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise ConfigError("the passwords differ; run the command again.")
    return password


def run_create(args: argparse.Namespace) -> int:
    """Create one account (admin with --admin)."""
    from sketch2face.db.models import ROLE_ADMIN, ROLE_INVESTIGATOR
    from sketch2face.services import audit
    from sketch2face.services.accounts import normalise_username, password_problem, username_problem
    from sketch2face.web.pages.auth import DuplicateUsernameError, create_user

    username = normalise_username(args.username)
    if problem := username_problem(username):
        raise ConfigError(problem)
    password = _read_password(args)
    if problem := password_problem(password):
        raise ConfigError(problem)
    with _db_session(args) as session:
        try:
            user = create_user(
                session, username, password, ROLE_ADMIN if args.admin else ROLE_INVESTIGATOR
            )
        except DuplicateUsernameError as exc:
            raise ConfigError(str(exc)) from exc
        audit.record(
            session, audit.USER_CREATE, None, username=user.username, via="cli", role=user.role
        )
        session.commit()
        print(f"created {user.role} account '{user.username}'")
    return 0


def run_set_password(args: argparse.Namespace) -> int:
    """An administrator's password reset: new password, sessions ended, API tokens revoked."""
    import sqlalchemy as sa

    from sketch2face.db.models import User
    from sketch2face.services import audit
    from sketch2face.services.accounts import normalise_username, password_problem
    from sketch2face.web.pages.auth import set_password

    username = normalise_username(args.username)
    password = _read_password(args)
    if problem := password_problem(password):
        raise ConfigError(problem)
    with _db_session(args) as session:
        user = session.scalar(sa.select(User).where(User.username == username))
        if user is None:
            raise ConfigError(
                f"there is no account '{username}'; `sketch2face users list` shows the accounts."
            )
        revoked = set_password(session, user, password)
        audit.record(
            session,
            audit.PASSWORD_CHANGE,
            None,
            username=user.username,
            via="cli",
            tokens_revoked=revoked,
        )
        session.commit()
        tokens = "API token" if revoked == 1 else "API tokens"
        print(
            f"password of '{user.username}' set; its sessions were signed out and "
            f"{revoked} {tokens} revoked"
        )
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print accounts."""
    import sqlalchemy as sa

    from sketch2face.db.models import User

    with _db_session(args) as session:
        for user in session.scalars(sa.select(User).order_by(User.username)):
            state = "active" if user.is_active else "disabled"
            print(f"{user.username}\t{user.role}\t{state}\t{user.created_at:%Y-%m-%d}")
    return 0
