"""Cases and candidate rounds (issue 12): cases, case members, candidate rounds, candidates;
generations.case_id and audit_events.case_id.

Data: every distinct case number already typed on generations becomes a case. Its members are the
users who made generations with that number (so they now see each other's generations of that
case; a case number names one investigation), its creator the user of the earliest one; the
generations are linked to it and a ``case_create`` audit event (username ``migration``) says so.
Downgrade drops the cases; the generations keep their ``case_number`` text throughout.

Revision ID: i12_cases_candidates
Revises: i13_gallery_search
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "i12_cases_candidates"
down_revision = "i13_gallery_search"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
LIKENESS_FK = "fk_cases_likeness_candidate_id_candidates"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite accepts a foreign key to a table made later (and cannot add one afterwards without
    # copying the table); PostgreSQL gets it with ALTER TABLE once `candidates` exists.
    forward = (
        [
            sa.ForeignKeyConstraint(
                ["likeness_candidate_id"], ["candidates.id"], name=LIKENESS_FK, ondelete="SET NULL"
            )
        ]
        if sqlite
        else []
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("likeness_candidate_id", sa.Integer(), nullable=True),
        sa.Column("likeness_generation_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_cases_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["likeness_generation_id"],
            ["generations.id"],
            name=op.f("fk_cases_likeness_generation_id_generations"),
            ondelete="SET NULL",
        ),
        *forward,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("number", name=op.f("uq_cases_number")),
        sqlite_autoincrement=True,  # ids never reused: audit events name cases by id
    )
    op.create_table(
        "case_members",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=True),
        sa.Column("added_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_members_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_case_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "user_id", name=op.f("pk_case_members")),
    )
    op.create_index(op.f("ix_case_members_user_id"), "case_members", ["user_id"])
    op.create_table(
        "candidate_rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=32), nullable=True),
        sa.Column("sketch_key", sa.String(length=255), nullable=False),
        sa.Column("input_key", sa.String(length=255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("chosen_candidate_ids", sa.JSON(), nullable=False),
        sa.Column("fixed_attributes", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_candidate_rounds_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_candidate_rounds_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_candidate_rounds_generation_id_generations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["candidate_rounds.id"],
            name=op.f("fk_candidate_rounds_parent_id_candidate_rounds"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidate_rounds")),
        sa.UniqueConstraint("case_id", "number", name=op.f("uq_candidate_rounds_case_id_number")),
        sqlite_autoincrement=True,  # image keys and audit events name rounds by id
    )
    op.create_index(op.f("ix_candidate_rounds_case_id"), "candidate_rounds", ["case_id"])
    op.create_index(
        op.f("ix_candidate_rounds_generation_id"), "candidate_rounds", ["generation_id"]
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("parent_ids", sa.JSON(), nullable=False),
        sa.Column("image_key", sa.String(length=255), nullable=False),
        sa.Column("closest", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["candidate_rounds.id"],
            name=op.f("fk_candidates_round_id_candidate_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("round_id", "index", name=op.f("uq_candidates_round_id_index")),
        sqlite_autoincrement=True,  # audit events name candidates by id
    )
    op.create_index(op.f("ix_candidates_round_id"), "candidates", ["round_id"])
    if not sqlite:
        op.create_foreign_key(
            LIKENESS_FK,
            "cases",
            "candidates",
            ["likeness_candidate_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # generations.case_id (SQLite: batch mode copies the table, which only has to exist here)
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_generations_case_id"), ["case_id"])
        batch.create_foreign_key(
            batch.f("fk_generations_case_id_cases"),
            "cases",
            ["case_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.add_column("audit_events", sa.Column("case_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_audit_events_case_id"), "audit_events", ["case_id"])
    _cases_from_case_numbers(op.get_bind())


def _cases_from_case_numbers(conn: sa.Connection) -> None:
    """One case per distinct case number on generations (see the module docstring)."""
    generations = sa.table(
        "generations",
        sa.column("id", sa.String),
        sa.column("user_id", sa.Integer),
        sa.column("created_at", TZ),
        sa.column("case_number", sa.String),
        sa.column("case_id", sa.Integer),
    )
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String))
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer),
        sa.column("number", sa.String),
        sa.column("title", sa.String),
        sa.column("status", sa.String),
        sa.column("notes", sa.Text),
        sa.column("created_by_id", sa.Integer),
        sa.column("created_at", TZ),
    )
    members = sa.table(
        "case_members",
        sa.column("case_id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("added_by", sa.String),
        sa.column("added_at", TZ),
    )
    audit = sa.table(
        "audit_events",
        sa.column("at", TZ),
        sa.column("user_id", sa.Integer),
        sa.column("username", sa.String),
        sa.column("action", sa.String),
        sa.column("generation_id", sa.String),
        sa.column("case_id", sa.Integer),
        sa.column("ip", sa.String),
        sa.column("detail", sa.JSON),
    )
    rows = conn.execute(
        sa.select(
            generations.c.case_number,
            generations.c.user_id,
            generations.c.created_at,
            generations.c.id,
        )
        .where(generations.c.case_number.is_not(None), generations.c.case_number != "")
        .order_by(generations.c.case_number, generations.c.created_at, generations.c.id)
    ).all()
    by_number: dict[str, list[sa.Row]] = {}
    for row in rows:
        by_number.setdefault(row.case_number, []).append(row)
    if not by_number:
        return
    names = dict(conn.execute(sa.select(users.c.id, users.c.username)).tuples().all())
    now = datetime.now(UTC)
    for number, group in by_number.items():
        first = group[0]
        case_id = conn.execute(
            sa.insert(cases)
            .values(
                number=number,
                title="",
                status="open",
                notes=None,
                created_by_id=first.user_id,
                created_at=first.created_at,
            )
            .returning(cases.c.id)
        ).scalar_one()
        user_ids = list(dict.fromkeys(r.user_id for r in group))  # first use first
        conn.execute(
            sa.insert(members),
            [
                {"case_id": case_id, "user_id": u, "added_by": None, "added_at": now}
                for u in user_ids
            ],
        )
        conn.execute(
            sa.update(generations)
            .where(generations.c.case_number == number)
            .values(case_id=case_id)
        )
        conn.execute(
            sa.insert(audit).values(
                at=now,
                user_id=None,
                username="migration",
                action="case_create",
                generation_id=None,
                case_id=case_id,
                ip=None,
                detail={
                    "via": "migration i12_cases_candidates",
                    "number": number,
                    "members": [names.get(u, str(u)) for u in user_ids],
                    "generations": len(group),
                },
            )
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index(op.f("ix_audit_events_case_id"), table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("case_id")
    with op.batch_alter_table("generations") as batch:
        batch.drop_constraint(batch.f("fk_generations_case_id_cases"), type_="foreignkey")
        batch.drop_index(batch.f("ix_generations_case_id"))
        batch.drop_column("case_id")
    if not sqlite:
        op.drop_constraint(LIKENESS_FK, "cases", type_="foreignkey")
    op.drop_table("candidates")
    op.drop_table("candidate_rounds")
    op.drop_table("case_members")
    op.drop_table("cases")
