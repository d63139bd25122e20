"""API tokens: create (a capped number of live tokens per user) and revoke.

Only a SHA-256 of each token is stored (``security.hash_api_token``); the token itself is shown once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sketch2face.db.models import ApiToken, User, utcnow
from sketch2face.services.accounts import hash_api_token, new_api_token


class TokenLimitError(ValueError):
    """The user already holds the most live tokens allowed."""


def create_token(session: Session, user: User, name: str, *, max_live: int) -> tuple[ApiToken, str]:
    """Add a token for ``user`` and return the row and the token (the caller commits).

    Raises TokenLimitError when ``user`` already has ``max_live`` unrevoked tokens: a rate limit
    per token would otherwise be worth as many allowances as tokens one cares to create.
    """
    # lock the user's row (PostgreSQL) so that two concurrent creations cannot both pass the count
    session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
    live = session.scalar(
        sa.select(sa.func.count())
        .select_from(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    )
    if (live or 0) >= max_live:
        raise TokenLimitError(
            f"You can hold at most {max_live} live API tokens and have {live}. Revoke one you no "
            "longer use, then create the new one."
        )
    secret = new_api_token()
    token = ApiToken(
        user_id=user.id, name=name, token_hash=hash_api_token(secret), prefix=secret[:10]
    )
    session.add(token)
    session.flush()
    return token, secret


def revoke_all_tokens(session: Session, user: User) -> int:
    """Revoke every live token of ``user`` (password change or reset); returns how many."""
    result = session.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)
