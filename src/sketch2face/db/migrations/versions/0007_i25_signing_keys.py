"""The provenance signing keys an instance has used (issue 25): ``signing_keys`` (key id, public
key, created, retired). The app records its key on the next start; a start with another key while
generations exist is refused unless the keys are rotated (docs/operations.md).

Revision ID: i25_signing_keys
Revises: i23_case_contact
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i25_signing_keys"
down_revision = "i23_case_contact"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
