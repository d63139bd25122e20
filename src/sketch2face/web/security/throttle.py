"""Sign-in throttling with exponential backoff, per account at an address and per address.

Only failed sign-ins count. After ``login_account_failures`` failures for one account from one
address, that account can be tried from that address again only after a wait that doubles with
each further failure (30 s, 1 min, 2 min, ... at most 15 min); a correct password there clears the
count. After ``login_address_failures`` failures from one address, whatever the accounts (password
spraying), the whole address waits in the same way. Nothing is ever held back for other
addresses: an attacker cannot lock the account holder out, and one person behind an office NAT
cannot lock out the colleagues who share the address. While held back, the password is not
checked at all, so guessing on gains nothing.

The counters live in the database, so every worker process shares them (SQLite and PostgreSQL
alike); a counter is forgotten an hour after its last failure.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.models import SignInThrottle, as_utc, utcnow

BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)
ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class Held:
    """A sign-in that must wait: ``scope`` is ACCOUNT (this account from this address) or ADDRESS."""

    scope: str
    retry_after_s: int

    @property
    def message(self) -> str:
        """What the sign-in page says."""
        wait = (
            f"{self.retry_after_s} seconds"
            if self.retry_after_s < 120
            else f"{math.ceil(self.retry_after_s / 60)} minutes"
        )
        what = (
            "for this account from your address" if self.scope == ACCOUNT else "from your address"
        )
        return (
            f"Too many failed sign-ins {what}. Wait {wait} and try again; each further failure "
            "doubles the wait. Other addresses are not affected."
        )


def _keys(username: str, address: str) -> dict[str, str]:
    def digest(*parts: str) -> str:
        return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()

    return {ACCOUNT: digest(ACCOUNT, username, address), ADDRESS: digest(ADDRESS, address)}


def delay_after(failures: int, threshold: int) -> timedelta | None:
    """The wait after the ``failures``-th failure: none before ``threshold`` failures, then
    BASE_DELAY, doubling with each further failure up to MAX_DELAY."""
    if failures < threshold:
        return None
    doublings = min(failures - threshold, 16)  # 30 s * 2**16 is far beyond the cap already
    return min(BASE_DELAY * 2**doublings, MAX_DELAY)


def check(session: Session, username: str, address: str) -> Held | None:
    """Whether a sign-in as ``username`` from ``address`` must wait now (the longest wait wins)."""
    keys = _keys(username, address)
    now = utcnow()
    rows = session.scalars(sa.select(SignInThrottle).where(SignInThrottle.key.in_(keys.values())))
    held: Held | None = None
    for row in rows:
        if row.blocked_until is None or as_utc(row.blocked_until) <= now:
            continue
        wait = math.ceil((as_utc(row.blocked_until) - now).total_seconds())
        if held is None or wait > held.retry_after_s:
            scope = ACCOUNT if row.key == keys[ACCOUNT] else ADDRESS
            held = Held(scope=scope, retry_after_s=wait)
    return held


def record_failure(
    session: Session, username: str, address: str, *, account_failures: int, address_failures: int
) -> None:
    """Count one failed sign-in in both scopes and start a wait where a threshold is reached.

    The caller commits. Old counters are deleted on the way, so the table stays small.
    """
    now = utcnow()
    session.execute(
        sa.delete(SignInThrottle).where(SignInThrottle.last_failure_at < now - FORGET_AFTER)
    )
    keys = _keys(username, address)
    for scope, threshold in ((ACCOUNT, account_failures), (ADDRESS, address_failures)):
        failures = _count_failure(session, keys[scope], now)
        delay = delay_after(failures, threshold)
        if delay is not None:
            session.execute(
                sa.update(SignInThrottle)
                .where(SignInThrottle.key == keys[scope])
                .values(blocked_until=now + delay)
            )


def record_success(session: Session, username: str, address: str) -> None:
    """A correct password clears the account's count at this address (not the address's)."""
    session.execute(
        sa.delete(SignInThrottle).where(SignInThrottle.key == _keys(username, address)[ACCOUNT])
    )


def _count_failure(session: Session, key: str, now: datetime) -> int:
    """Add one failure to ``key`` atomically (a count older than FORGET_AFTER starts again at 1)."""
    table = SignInThrottle.__table__
    forgotten = table.c.last_failure_at < now - FORGET_AFTER
    values = {"key": key, "failures": 1, "last_failure_at": now, "blocked_until": None}
    changes = {
        "failures": sa.case((forgotten, 1), else_=table.c.failures + 1),
        "last_failure_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c.key], set_=changes)
        return int(session.execute(stmt.returning(table.c.failures)).scalar_one())
    # other databases: read-modify-write (a concurrent failure may be counted once, not twice)
    row = session.get(SignInThrottle, key)
    if row is None:
        session.add(SignInThrottle(**values))
        session.flush()
        return 1
    expired = as_utc(row.last_failure_at) < now - FORGET_AFTER
    row.failures = 1 if expired else row.failures + 1
    row.last_failure_at = now
    session.flush()
    return row.failures
