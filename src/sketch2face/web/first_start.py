"""First start: while the database has no account, say how to create the first administrator.

``sketch2face serve`` prints the command; the sign-in page shows it only to someone browsing
from the server's own machine (a loopback address, no sign of a proxy in between), never to
remote visitors.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import sys
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, Request
from sqlalchemy.orm import Session

from sketch2face.db.models import User
from sketch2face.web.database import new_session
from sketch2face.web.extensions import get_settings
from sketch2face.web.security.headers import _PROXY_HEADERS
from sketch2face.web.settings import WebSettings

#: the data folder ``sketch2face users`` uses when given no ``--data-dir`` (nor SKETCH2FACE_DATA_DIR)
DEFAULT_DATA_DIR = WebSettings().data_dir


def has_users(session: Session) -> bool:
    """Whether any account exists."""
    return session.scalar(sa.select(User.id).limit(1)) is not None


def cli_program() -> str:
    """How to call the ``sketch2face`` command from here: the script beside this interpreter (a
    virtual environment's ``bin``), relative to the current folder when it lies inside it, else
    the one on PATH, else the bare name."""
    name = "sketch2face.exe" if os.name == "nt" else "sketch2face"
    script = Path(sys.executable).parent / name
    if not script.is_file():
        found = shutil.which("sketch2face")
        return shlex.quote(found) if found else "sketch2face"
    try:
        relative = script.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(script))
    text = str(relative)
    return shlex.quote(text if os.sep in text else f".{os.sep}{text}")


def create_admin_command(data_dir: Path | None = None) -> str:
    """The exact command that creates the first administrator (it prompts for the password).

    ``--data-dir`` is added when the data folder is not the default ``./instance``.
    """
    command = f"{cli_program()} users create --admin --username NAME"
    if data_dir is not None and Path(data_dir).resolve() != DEFAULT_DATA_DIR.resolve():
        command += f" --data-dir {shlex.quote(str(Path(data_dir).resolve()))}"
    return command


def first_start_message(app: Flask) -> str | None:
    """What ``sketch2face serve`` prints while the database has no account, else None."""
    with new_session(app) as session:
        if has_users(session):
            return None
    settings = get_settings(app)
    lines = [
        "No accounts yet. Create the first administrator (it asks for the password twice):",
        f"    {create_admin_command(settings.data_dir)}",
    ]
    if settings.database_url:
        lines.append("Run it with the same SKETCH2FACE_DATABASE_URL as this server.")
    lines.append("Then sign in at the address above.")
    return "\n".join(lines)


def is_local_request(request: Request, settings: WebSettings) -> bool:
    """Whether the request comes from the server's own machine: a loopback client address and,
    unless the app trusts a proxy (which then already put the client's address in place), no
    forwarding headers (a proxy on this machine forwards remote visitors from 127.0.0.1)."""
    if not settings.behind_proxy and any(name in request.headers for name in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def sign_in_hint(session: Session, request: Request) -> str | None:
    """The command to create the first administrator, for the sign-in page: only while there is
    no account and only to a visitor on the server's own machine."""
    settings = get_settings()
    if not is_local_request(request, settings) or has_users(session):
        return None
    return create_admin_command(settings.data_dir)
