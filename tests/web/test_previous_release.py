"""No change across the layering of issue 24 (tables, migrations and API modules moved):

- the OpenAPI document is byte for byte the previous release's (tests/fixtures/previous_release,
  made by that release's code: see make_fixtures.py there);
- an instance made by the previous release (its SQLite file; on PostgreSQL, its head revision
  filled with the same rows) upgrades with this code and reads back the same records, with a
  schema that matches the tables.
"""

from __future__ import annotations

import json
import secrets
import shutil
import textwrap
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .web_support import CREATED_APPS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "previous_release"
#: the Alembic head of the release before the move (revision ids never change)
PREVIOUS_HEAD = "i12_cases_candidates"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: the tables in an order their foreign keys allow (cases <-> candidates refer to each other, but
#: the fixture's case has no likeness yet)
TABLE_ORDER = (
    "users",
    "api_tokens",
    "sign_in_throttles",
    "cases",
    "case_members",
    "generations",
    "candidate_rounds",
    "candidates",
    "audit_events",
    "galleries",
    "gallery_photos",
    "gallery_embeddings",
    "gallery_search_grants",
)


#: changes made on purpose since that release: (old text, new text) in the JSON document
INTENDED_CHANGES = (
    # issue 25: case numbers refuse DEL, C1, format characters and separators too
    (
        json.dumps("^(?:[^\\x00-\\x1f]*[A-Za-z0-9][^\\x00-\\x1f]*|[^\\x00-\\x1f\\S]*)$"),
        "CASE_NUMBER",
    ),
    (json.dumps("^[^\\x00-\\x1f]*[A-Za-z0-9][^\\x00-\\x1f]*$"), "CASE_NUMBER_REQUIRED"),
    (
        '"Unique case number: no control characters, at least one letter or digit"',
        "case number description",
    ),
    # issue 22: both stages run by default, so POST /generate's refine field defaults to true
    # (an explicit false gives stage one's face alone) and its description says what it does
    (
        '"default": false,\n' + " " * 20 + '"description": "true or false (1 or 0 work too)."',
        "refine default",
    ),
    # issue 22 item 3: POST /generate takes a backdrop ("photo", the default, or "studio"); a
    # studio generation has a fourth image, "studio" (its links and the image kinds list it)
    (" " * 18 + '"case_number": {\n', "backdrop field"),
    ('"format": "uri"\n' + " " * 14 + "}\n" + " " * 12 + "},", "studio link"),
    ('"refined"\n' + " " * 14 + "]", "studio kind"),
    # ... and a first round of candidates takes one too (default: the generation's)
    (
        '"description": "gender held fixed; empty: let the model choose"\n' + " " * 18 + "}\n",
        "candidates backdrop",
    ),
    # ... and the JSON of a generation and of a candidate round says which backdrop its faces
    # are on (always there, so required)
    ('"notice",\n' + " " * 10 + '"attributes"\n' + " " * 8 + "],", "generation backdrop required"),
    (
        '"additionalProperties": false\n' + " " * 10 + "},\n" + " " * 10 + '"notice": {',
        "generation backdrop",
    ),
    ('"fixed_attributes",\n' + " " * 10 + '"grid"\n' + " " * 8 + "],", "round backdrop required"),
    (
        '"attributes_applied": {\n' + " " * 12 + '"type": "boolean"\n' + " " * 10 + "},\n",
        "round backdrop",
    ),
)


def _intended(text: str) -> str:
    """The previous release's document with INTENDED_CHANGES made."""
    from sketch2face.web.api import fields
    from sketch2face.web.api.cases import (
        CANDIDATES_BACKDROP_FIELD,
        CASE_NUMBER_DESCRIPTION,
        ROUND_BACKDROP_FIELD,
    )
    from sketch2face.web.api.generations import (
        BACKDROP_FIELD,
        GENERATION_BACKDROP_FIELD,
        REFINE_DESCRIPTION,
    )

    def field(name: str, schema: dict[str, Any], indent: int) -> str:
        """``"name": {schema}`` as the document writes it at ``indent`` spaces."""
        return textwrap.indent(f'"{name}": ' + json.dumps(schema, indent=2), " " * indent).lstrip()

    new = {
        "refine default": '"default": true,\n'
        + " " * 20
        + f'"description": {json.dumps(REFINE_DESCRIPTION)}',
        "CASE_NUMBER": json.dumps(fields.CASE_NUMBER),
        "CASE_NUMBER_REQUIRED": json.dumps(fields.CASE_NUMBER_REQUIRED),
        "case number description": json.dumps(CASE_NUMBER_DESCRIPTION),
        "backdrop field": " " * 18
        + textwrap.indent('"backdrop": ' + json.dumps(BACKDROP_FIELD, indent=2), " " * 18).lstrip()
        + ",\n"
        + " " * 18
        + '"case_number": {\n',
        "studio link": '"format": "uri"\n'
        + " " * 14
        + "},\n"
        + " " * 14
        + '"studio": {\n'
        + " " * 16
        + '"type": "string",\n'
        + " " * 16
        + '"format": "uri"\n'
        + " " * 14
        + "}\n"
        + " " * 12
        + "},",
        "candidates backdrop": '"description": "gender held fixed; empty: let the model '
        'choose"\n'
        + " " * 18
        + "},\n"
        + " " * 18
        + textwrap.indent(
            '"backdrop": ' + json.dumps(CANDIDATES_BACKDROP_FIELD, indent=2), " " * 18
        ).lstrip()
        + "\n",
        "studio kind": '"refined",\n' + " " * 16 + '"studio"\n' + " " * 14 + "]",
        "generation backdrop required": '"notice",\n'
        + " " * 10
        + '"attributes",\n'
        + " " * 10
        + '"backdrop"\n'
        + " " * 8
        + "],",
        "generation backdrop": '"additionalProperties": false\n'
        + " " * 10
        + "},\n"
        + " " * 10
        + field("backdrop", GENERATION_BACKDROP_FIELD, 10)
        + ",\n"
        + " " * 10
        + '"notice": {',
        "round backdrop required": '"fixed_attributes",\n'
        + " " * 10
        + '"grid",\n'
        + " " * 10
        + '"backdrop"\n'
        + " " * 8
        + "],",
        "round backdrop": '"attributes_applied": {\n'
        + " " * 12
        + '"type": "boolean"\n'
        + " " * 10
        + "},\n"
        + " " * 10
        + field("backdrop", ROUND_BACKDROP_FIELD, 10)
        + ",\n",
    }
    for old, name in INTENDED_CHANGES:
        assert old in text, old
        text = text.replace(old, new[name])
    return text


def test_openapi_document_is_the_previous_releases_byte_for_byte() -> None:
    """Byte for byte, apart from the changes listed in INTENDED_CHANGES."""
    from sketch2face.web.api.openapi import openapi_document

    text = json.dumps(openapi_document(MAX_UPLOAD_BYTES), indent=2) + "\n"
    assert text == _intended((FIXTURES / "openapi.json").read_text())


def test_served_openapi_document_is_the_assembled_one(app: Any) -> None:
    from sketch2face.web.api.openapi import openapi_document
    from sketch2face.web.extensions import get_settings

    served = app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == openapi_document(get_settings(app).max_upload_bytes)


def _old_instance(url: str, tmp_path: Path) -> str:
    """The previous release's instance at ``url`` (SQLite: a copy of its file)."""
    if url.startswith("sqlite"):
        target = tmp_path / "previous.db"
        shutil.copyfile(FIXTURES / "instance.sqlite", target)
        return f"sqlite:///{target}"
    from alembic import command

    from sketch2face.db.engine import alembic_config, make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, PREVIOUS_HEAD)
    old = sa.create_engine(f"sqlite:///{FIXTURES / 'instance.sqlite'}", poolclass=sa.NullPool)
    source = sa.MetaData()
    source.reflect(old)
    target = sa.MetaData()
    target.reflect(engine)
    with old.connect() as src, engine.begin() as dst:
        assert set(source.tables) == {*TABLE_ORDER, "alembic_version"}
        for table in (source.tables[name] for name in TABLE_ORDER):
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if rows:
                dst.execute(sa.insert(target.tables[table.name]), rows)
                if "id" in table.c and isinstance(table.c.id.type, sa.Integer):
                    dst.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM {table.name}))"
                        )
                    )
    old.dispose()
    engine.dispose()
    return url


def test_previous_release_instance_upgrades_and_reads(
    fresh_database_url: str, tmp_path: Path, web_model_client: Any
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from sketch2face.db.engine import alembic_config, make_engine
    from sketch2face.db.gallery import Gallery, GallerySearchGrant
    from sketch2face.db.models import AuditEvent, Base, Candidate, Generation, User
    from sketch2face.services.cases import find_case, is_case_member, visible_cases
    from sketch2face.web import create_app
    from sketch2face.web.database import get_session
    from sketch2face.web.settings import WebSettings

    url = _old_instance(fresh_database_url, tmp_path)
    settings = WebSettings(
        data_dir=tmp_path / "instance",
        secret_key="test-" + secrets.token_hex(16),
        database_url=url,
        testing=True,
    )
    app = create_app(settings, model_client=web_model_client)  # upgrades on start
    CREATED_APPS.append(app)

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = make_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head
        assert compare_metadata(context, Base.metadata) == []  # schema == tables
    engine.dispose()

    with app.test_request_context():
        session = get_session()
        alice = session.scalar(sa.select(User).where(User.username == "alice"))
        assert alice is not None and not alice.is_admin
        case = find_case("2026-0001")
        assert case is not None and case.title == "Old case"
        assert is_case_member(case.id, alice)
        assert session.scalars(visible_cases(alice)).all() == [case]
        generation = session.get(Generation, "a" * 32)
        assert generation is not None and generation.case_id == case.id
        assert generation.details["attributes"] == {"skin": "dark"}
        assert session.scalar(sa.select(Candidate.seed)) == 7
        actions = session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions == ["case_create", "generate"]
        assert session.scalar(sa.select(Gallery.name)) == "custody"
        assert session.get(GallerySearchGrant, alice.id) is not None
