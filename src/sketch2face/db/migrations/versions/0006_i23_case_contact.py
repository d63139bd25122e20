"""A case's own contact line for its appeal sheets (issue 23): cases.appeal_contact, filled in on
the case page; NULL uses the instance's setting (``SKETCH2FACE_APPEAL_CONTACT``).

Revision ID: i23_case_contact
Revises: i25_case_number_keys
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i23_case_contact"
down_revision = "i25_case_number_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("appeal_contact", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("appeal_contact")
