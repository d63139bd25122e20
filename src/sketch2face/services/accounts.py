"""Accounts: username and password rules, password hashing (argon2id), API token generation and
hashing. Plain functions shared by the sign-in pages, the API, the case services and the CLI."""

from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: argon2id with the library's RFC 9106 "low memory" defaults; tests swap in a cheaper hasher.
hasher = PasswordHasher()
#: verified against when the username is unknown, so timing does not reveal which names exist
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD_CHARS = 10
TOKEN_PREFIX = "s2f_"


def normalise_username(username: str) -> str:
    """Usernames are case-insensitive: store and compare them lower-case and trimmed."""
    return username.strip().lower()


def username_problem(username: str) -> str | None:
    """Why ``username`` (already normalised) is not acceptable, or None."""
    if not USERNAME_RE.match(username):
        return (
            "Usernames are 3-64 characters: letters, digits, '.', '_' or '-', starting with a "
            "letter or digit."
        )
    return None


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Passwords need at least {MIN_PASSWORD_CHARS} characters."
    if len(password) > 1024:
        return "Passwords can be at most 1024 characters."
    return None


def hash_password(password: str) -> str:
    """argon2id hash of ``password``."""
    return hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-ish time check; an unknown user (``password_hash`` None) still costs one verify."""
    try:
        return hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with older parameters and should be upgraded at sign-in."""
    try:
        return hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def new_api_token() -> str:
    """A fresh random API token (shown to the user once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    """SHA-256 of a token. Tokens carry 256 random bits, so a fast hash is enough (no argon2:
    it would cost ~50 ms on every API call without adding security for random secrets)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
