"""Candidates refined by the second stage (issue 22): candidates.refined_key, the refined face
beside stage one's (image_key); NULL for candidates that were not refined (all older ones).

Revision ID: i22_refined_candidates
Revises: i25_signing_keys
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i22_refined_candidates"
down_revision = "i25_signing_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("candidates", sa.Column("refined_key", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("refined_key")
