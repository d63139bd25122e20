"""Case numbers compare as look-alikes (issue 25): cases.number_key, the number in NFKC,
case-folded, with a unique index, so ``DUP-0413``, ``dup-0413`` and the same with a full-width
digit are one case.

Data: every case gets its key. Cases whose numbers already look alike (they were made before
this check) are reported in the log, as the command ``sketch2face doctor`` also lists them; the
oldest of each group keeps the key, the others keep working under their exact number (key NULL)
until someone merges or renames them. Downgrade drops the column.

Revision ID: i25_case_number_keys
Revises: i12_cases_candidates
Create Date: 2026-12-09
"""

from __future__ import annotations

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "i25_case_number_keys"
down_revision = "i12_cases_candidates"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def lookalike_key(number: str) -> str:
    """The key, ignoring format and control characters that older releases let through (as of
    this revision; the service's own key may change later, this one never does)."""
    visible = "".join(c for c in number if unicodedata.category(c)[0] != "C")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", visible).casefold())
    return folded.strip()


def upgrade() -> None:
    op.add_column("cases", sa.Column("number_key", sa.String(length=256), nullable=True))
    conn = op.get_bind()
    groups: dict[str, list[tuple[int, str]]] = {}
    for case_id, number in conn.execute(sa.text("SELECT id, number FROM cases ORDER BY id")):
        groups.setdefault(lookalike_key(number), []).append((case_id, number))
    update = sa.text("UPDATE cases SET number_key = :key WHERE id = :id")
    for key, cases in groups.items():
        conn.execute(update, {"key": key, "id": cases[0][0]})
        if len(cases) > 1:
            log.warning(
                "case numbers that look alike, kept as separate cases (merge or rename them): %s",
                ", ".join(f"{number!a} (case {case_id})" for case_id, number in cases),
            )
    op.create_index(op.f("ix_cases_number_key"), "cases", ["number_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_cases_number_key"), table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("number_key")
