"""Migration i12_cases_candidates: existing case numbers become cases (data migration), and
downgrade gives back the previous schema with the generations' case numbers intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

PREVIOUS = "i13_gallery_search"
THIS = "i12_cases_candidates"


def _migrate(url: str, target: str, *, down: bool = False) -> None:
    from alembic import command

    from sketch2face.db.engine import alembic_config, make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)
    engine.dispose()


def test_existing_case_numbers_become_cases(fresh_database_url: str) -> None:
    from sketch2face.db.engine import make_engine

    url = fresh_database_url
    _migrate(url, PREVIOUS)
    engine = make_engine(url)
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        for uid, name in ((1, "alice"), (2, "bob"), (3, "carol")):
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, username, password_hash, role, is_active, "
                    "session_nonce, created_at) VALUES (:id, :name, 'x', 'investigator', true, "
                    "'n', :at)"
                ),
                {"id": uid, "name": name, "at": t0},
            )
        rows = [  # (id, user, minutes after t0, case number)
            ("g1", 2, 5, "2026-0413"),
            ("g2", 1, 1, "2026-0413"),  # alice's is the earliest: she becomes the creator
            ("g3", 2, 9, "2026-0413"),
            ("g4", 2, 2, "B-7"),
            ("g5", 3, 3, None),
            ("g6", 3, 4, ""),
        ]
        for gid, uid, minutes, number in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO generations (id, user_id, created_at, case_number, source, "
                    "refine_requested, sketch_key, face_key, model_version, timings_ms, details) "
                    "VALUES (:id, :uid, :at, :num, 'upload', false, 'k', 'k', 'm', '{}', '{}')"
                ),
                {"id": gid, "uid": uid, "at": t0 + timedelta(minutes=minutes), "num": number},
            )
    engine.dispose()

    _migrate(url, THIS)
    engine = make_engine(url)
    with engine.connect() as conn:
        cases = {
            r.number: r
            for r in conn.execute(
                sa.text("SELECT id, number, status, created_by_id, created_at FROM cases")
            )
        }
        assert set(cases) == {"2026-0413", "B-7"}
        big, small = cases["2026-0413"], cases["B-7"]
        assert big.status == "open" and big.created_by_id == 1 and small.created_by_id == 2
        members = conn.execute(
            sa.text("SELECT case_id, user_id FROM case_members ORDER BY case_id, user_id")
        ).all()
        assert sorted(members) == sorted([(big.id, 1), (big.id, 2), (small.id, 2)])
        linked = dict(conn.execute(sa.text("SELECT id, case_id FROM generations")).all())
        assert linked == {
            "g1": big.id,
            "g2": big.id,
            "g3": big.id,
            "g4": small.id,
            "g5": None,
            "g6": None,
        }
        numbers = dict(conn.execute(sa.text("SELECT id, case_number FROM generations")).all())
        assert numbers["g1"] == "2026-0413"  # the typed text is kept
        events = conn.execute(
            sa.text("SELECT case_id, username, action FROM audit_events ORDER BY case_id")
        ).all()
        assert sorted(events) == sorted(
            [(big.id, "migration", "case_create"), (small.id, "migration", "case_create")]
        )
    engine.dispose()

    _migrate(url, PREVIOUS, down=True)
    engine = make_engine(url)
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names())
    assert not tables & {"cases", "case_members", "candidate_rounds", "candidates"}
    assert "case_id" not in {c["name"] for c in inspector.get_columns("generations")}
    assert "case_id" not in {c["name"] for c in inspector.get_columns("audit_events")}
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM generations")) == 6
        assert conn.scalar(sa.text("SELECT case_number FROM generations WHERE id = 'g4'")) == "B-7"
    engine.dispose()
    _migrate(url, THIS)  # and up again: the same cases are made once more
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM cases")) == 2
    engine.dispose()
