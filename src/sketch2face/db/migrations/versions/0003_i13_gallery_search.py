"""Gallery search (issue 13): galleries, enrolled photos, face embeddings, search grants.

Revision ID: i13_gallery_search
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i13_gallery_search"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "galleries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_galleries")),
        sa.UniqueConstraint("name", name=op.f("uq_galleries_name")),
        sqlite_autoincrement=True,  # ids never reused: index files are keyed by (id, version)
    )
    op.create_table(
        "gallery_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gallery_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("photo_key", sa.String(length=255), nullable=False),
        sa.Column("thumb_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("faces_detected", sa.Integer(), nullable=False),
        sa.Column("face", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("enrolled_at", TZ, nullable=False),
        sa.Column("enrolled_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["gallery_id"],
            ["galleries.id"],
            name=op.f("fk_gallery_photos_gallery_id_galleries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gallery_photos")),
        sa.UniqueConstraint(
            "gallery_id", "sha256", name=op.f("uq_gallery_photos_gallery_id_sha256")
        ),
        sqlite_autoincrement=True,  # ids never reused: audited results name photos by id
    )
    op.create_index(op.f("ix_gallery_photos_gallery_id"), "gallery_photos", ["gallery_id"])
    op.create_index(op.f("ix_gallery_photos_batch_id"), "gallery_photos", ["batch_id"])
    op.create_table(
        "gallery_embeddings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("gallery_id", sa.Integer(), nullable=False),
        sa.Column("embedder", sa.String(length=64), nullable=False),
        sa.Column("embedder_version", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["gallery_id"],
            ["galleries.id"],
            name=op.f("fk_gallery_embeddings_gallery_id_galleries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["gallery_photos.id"],
            name=op.f("fk_gallery_embeddings_photo_id_gallery_photos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gallery_embeddings")),
        sa.UniqueConstraint(
            "photo_id", "embedder", name=op.f("uq_gallery_embeddings_photo_id_embedder")
        ),
    )
    op.create_index(op.f("ix_gallery_embeddings_gallery_id"), "gallery_embeddings", ["gallery_id"])
    op.create_index(op.f("ix_gallery_embeddings_photo_id"), "gallery_embeddings", ["photo_id"])
    op.create_table(
        "gallery_search_grants",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=True),
        sa.Column("granted_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_gallery_search_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_gallery_search_grants")),
    )


def downgrade() -> None:
    op.drop_table("gallery_search_grants")
    op.drop_table("gallery_embeddings")
    op.drop_table("gallery_photos")
    op.drop_table("galleries")
