"""Cases (issue 12): create, duplicate numbers, membership (404 for non-members on pages and API),
members, generations linked to cases, edit, export ZIP, audit trail."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from sketch2face.db.models import (
    AuditEvent,
    Base,
    Candidate,
    CandidateRound,
    Case,
    CaseMember,
    Generation,
)
from sketch2face.web.database import new_session

from .conftest import TABLES
from .test_api import auth, make_token, post_generate
from .web_support import WebClient, generation_id_from, sketch_png


def create_case(c: WebClient, number: str = "2026-0413", **fields: str) -> int:
    """Create a case through the page; returns its id."""
    response = c.post("/cases", {"number": number, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    match = re.search(r"/cases/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def case_row(app: Any, case_id: int) -> Case:
    with new_session(app) as s:
        case = s.get(Case, case_id)
        assert case is not None
        s.expunge(case)
        return case


def events(app: Any, case_id: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    with new_session(app) as s:
        rows = s.scalars(
            sa.select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)
        )
        return [(e.action, e.username, e.detail) for e in rows]


def test_create_case_and_list(app: Any, alice: WebClient, bob: WebClient) -> None:
    case_id = create_case(alice, "R-2026-77", title="Station robbery", notes="two witnesses")
    with new_session(app) as s:
        case = s.get(Case, case_id)
        assert case.number == "R-2026-77" and case.title == "Station robbery"
        assert case.status == "open" and case.notes == "two witnesses"
        assert [m.user.username for m in case.members] == ["alice"]
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Station robbery" in page and "two witnesses" in page and "Export case" in page
    listing = alice.get("/cases").get_data(as_text=True)
    assert "R-2026-77" in listing
    assert "R-2026-77" not in bob.get("/cases").get_data(as_text=True)  # not bob's
    assert [a for a, _, _ in events(app, case_id)] == ["case_create", "case_view"]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("x" * 65, "at most 64"),
        ("a\nb", "line breaks"),
        ("--/--", "letter or digit"),
    ],
)
def test_bad_case_numbers_are_clear_errors(alice: WebClient, number: str, message: str) -> None:
    response = alice.post("/cases", {"number": number})
    assert response.status_code == 400 and message in response.get_data(as_text=True)


def test_duplicate_number_is_a_clear_409(app: Any, alice: WebClient, bob: WebClient) -> None:
    create_case(alice, "K-1")
    again = bob.post("/cases", {"number": " K-1 ", "title": "mine"})
    assert again.status_code == 409
    text = again.get_data(as_text=True)
    assert "Case number K-1 is already taken" in text
    assert 'value="mine"' in text  # the form keeps what was typed
    with new_session(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Case)) == 1
    api = app.test_client().post(
        "/api/v1/cases", data={"number": "K-1"}, headers=auth(make_token(bob))
    )
    assert api.status_code == 409 and "already taken" in api.get_json()["error"]


def test_non_members_get_404_on_every_page_and_api_route(
    app: Any, alice: WebClient, bob: WebClient, root: WebClient
) -> None:
    case_id = create_case(alice, "SECRET-1")
    gid = generation_id_from(alice.generate(case_number="SECRET-1"))
    round_response = alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "2"})
    assert round_response.status_code == 302, round_response.get_data(as_text=True)[:400]
    with new_session(app) as s:
        round_id = s.scalar(sa.select(CandidateRound.id))
        candidate_id = s.scalar(sa.select(Candidate.id))
    alice.post(f"/cases/{case_id}/likeness", {"candidate_id": str(candidate_id)})
    pages = [
        f"/cases/{case_id}",
        f"/cases/{case_id}/export.zip",
        f"/cases/{case_id}/likeness.png",
        f"/cases/{case_id}/candidates/{candidate_id}.png",
        f"/cases/{case_id}/rounds/{round_id}/grid.png",
        f"/generations/{gid}",
        f"/generations/{gid}/face.png",
    ]
    posts = [
        (f"/cases/{case_id}/edit", {"status": "closed"}),
        (f"/cases/{case_id}/members", {"username": "bob"}),
        (f"/cases/{case_id}/members/1/remove", {}),
        (f"/cases/{case_id}/likeness", {"generation_id": gid}),
        (f"/cases/{case_id}/candidates", {"generation_id": gid}),
        (f"/cases/{case_id}/rounds/{round_id}", {"chosen": str(candidate_id)}),
        (f"/cases/{case_id}/candidates/{candidate_id}/likeness", {}),
    ]
    for path in pages:
        assert bob.get(path).status_code == 404, path
        assert root.get(path).status_code == 200, path  # administrators see every case
        assert alice.get(path).status_code == 200, path
    for path, data in posts:
        assert bob.post(path, data).status_code == 404, path
    bob_token = make_token(bob)
    http = app.test_client()
    api = [
        ("get", f"/api/v1/cases/{case_id}", None),
        ("get", f"/api/v1/cases/{case_id}/rounds/{round_id}", None),
        ("get", f"/api/v1/cases/{case_id}/rounds/{round_id}/grid", None),
        ("get", f"/api/v1/cases/{case_id}/candidates/{candidate_id}/image", None),
        ("get", f"/api/v1/generations/{gid}", None),
        ("post", f"/api/v1/cases/{case_id}/candidates", {"generation_id": gid}),
        ("post", f"/api/v1/cases/{case_id}/rounds/{round_id}/next", {"chosen": str(candidate_id)}),
        ("post", f"/api/v1/cases/{case_id}/likeness", {"generation_id": gid}),
    ]
    for method, path, data in api:
        response = getattr(http, method)(path, data=data, headers=auth(bob_token))
        assert response.status_code == 404 and response.is_json, (path, response.status_code)
    listing = http.get("/api/v1/cases", headers=auth(bob_token)).get_json()
    assert listing["cases"] == [] and listing["total"] == 0
    # an unknown case is the same 404 as someone else's
    assert bob.get("/cases/999999").status_code == 404
    assert alice.get("/cases/99999999999").status_code == 404  # beyond the database's integers
    # nothing changed for alice's case
    case = case_row(app, case_id)
    assert case.status == "open" and case.likeness_candidate_id == candidate_id


def test_added_member_sees_the_case_and_its_generations(
    app: Any, alice: WebClient, bob: WebClient
) -> None:
    case_id = create_case(alice, "M-1")
    gid = generation_id_from(alice.generate(case_number="M-1"))
    assert bob.get(f"/cases/{case_id}").status_code == 404
    added = alice.post(f"/cases/{case_id}/members", {"username": " BOB "})
    assert added.status_code == 302
    assert bob.get(f"/cases/{case_id}").status_code == 200
    assert bob.get(f"/generations/{gid}").status_code == 200  # a case member sees its sketches
    # ... without a Delete button he could not use (issue 23 item 8); its owner has one
    delete_form = f'action="/generations/{gid}/delete"'
    assert delete_form not in bob.get(f"/generations/{gid}").get_data(as_text=True)
    assert delete_form in alice.get(f"/generations/{gid}").get_data(as_text=True)
    assert bob.get(f"/generations/{gid}/sketch.png").status_code == 200
    assert "M-1" in bob.get("/cases").get_data(as_text=True)
    # but only the owner (or an admin) may delete it
    assert bob.post(f"/generations/{gid}/delete").status_code == 404
    # bob may now add sketches to the case by its number
    bob_gid = generation_id_from(bob.generate(case_number="M-1"))
    with new_session(app) as s:
        assert s.get(Generation, bob_gid).case_id == case_id
    # errors: unknown account, already a member
    unknown = alice.post(f"/cases/{case_id}/members", {"username": "nobody"})
    assert unknown.status_code == 400 and "no active account named" in unknown.get_data(
        as_text=True
    )
    twice = alice.post(f"/cases/{case_id}/members", {"username": "bob"})
    assert twice.status_code == 400 and "already a member" in twice.get_data(as_text=True)
    # remove bob again: 404 for him once more
    with new_session(app) as s:
        bob_id = s.scalar(sa.text("SELECT id FROM users WHERE username = 'bob'"))
        alice_id = s.scalar(sa.text("SELECT id FROM users WHERE username = 'alice'"))
    assert alice.post(f"/cases/{case_id}/members/{bob_id}/remove").status_code == 302
    assert bob.get(f"/cases/{case_id}").status_code == 404
    assert bob.get(f"/generations/{gid}").status_code == 404
    # the last member cannot be removed
    last = alice.post(f"/cases/{case_id}/members/{alice_id}/remove")
    assert last.status_code == 400 and "at least one member" in last.get_data(as_text=True)
    trail = events(app, case_id)
    adds = [(a, u, d) for a, u, d in trail if a in ("case_member_add", "case_member_remove")]
    assert adds == [
        ("case_member_add", "alice", {"member": "bob"}),
        ("case_member_remove", "alice", {"member": "bob"}),
    ]
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "case_member_add" in page and "case_member_remove" in page  # the trail on the page


def test_a_kept_sketch_is_sent_again_without_choosing_it(app: Any, bob: WebClient) -> None:
    """Issue 23 item 9: after a refused submit the form sends the kept sketch again."""
    refused = bob.generate(b"not an image at all")  # nothing worth keeping
    assert refused.status_code == 400 and "kept_sketch" not in refused.get_data(as_text=True)
    sketch = sketch_png()
    kept = "data:image/png;base64," + base64.b64encode(sketch).decode()
    again = bob.post("/new", {"kept_sketch": kept}, content_type="multipart/form-data")
    gid = generation_id_from(again)
    stored = bob.get(f"/generations/{gid}/sketch.png").data
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(stored)).convert("RGB")),
        np.asarray(Image.open(io.BytesIO(sketch)).convert("RGB")),
    )
    bad = bob.post("/new", {"kept_sketch": "data:text/html;base64,PGI+"})
    assert bad.status_code == 400


def test_generations_join_cases_by_number(app: Any, alice: WebClient, bob: WebClient) -> None:
    gid = generation_id_from(alice.generate(case_number="NEW-9"))  # a new number opens a case
    with new_session(app) as s:
        case = s.scalar(sa.select(Case).where(Case.number == "NEW-9"))
        assert case is not None and [m.user.username for m in case.members] == ["alice"]
        assert s.get(Generation, gid).case_id == case.id
        actions = s.scalars(sa.select(AuditEvent.action).where(AuditEvent.case_id == case.id)).all()
        assert actions == ["case_create", "generate"]
        case_id = case.id
    page = alice.get(f"/generations/{gid}").get_data(as_text=True)
    assert f'href="/cases/{case_id}"' in page
    alice.post(f"/cases/{case_id}/edit", {"title": "Secret title", "status": "open"})
    # someone else's case: refused, nothing stored; bob learns only that the number is taken
    # (no title, no members) and how to get access; his sketch and fields are kept (item 9)
    sketch = sketch_png()
    refused = bob.generate(sketch, case_number="NEW-9", notes="Bob's notes", skin="dark")
    assert refused.status_code == 400
    body = refused.get_data(as_text=True)
    assert "Case number NEW-9 is taken" in body and "Ask its owner for access" in body
    assert "Secret title" not in body and "alice" not in body
    assert "Bob&#39;s notes" in body and '<option value="dark" selected' in body
    kept = re.search(r'name="kept_sketch" value="([^"]+)"', body)
    assert kept and base64.b64decode(kept.group(1).split(",", 1)[1]) == sketch
    with new_session(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Generation)) == 1
    assert generation_id_from(alice.generate())  # no case number: no case
    with new_session(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Case)) == 1
    # the new page offers one's open cases
    assert '<option value="NEW-9">' in alice.get("/new").get_data(as_text=True)
    assert 'value="NEW-9"' in alice.get("/new?case=NEW-9").get_data(as_text=True)


def test_edit_status_and_notes_closed_case_takes_nothing_new(app: Any, alice: WebClient) -> None:
    case_id = create_case(alice, "C-3")
    gid = generation_id_from(alice.generate(case_number="C-3"))
    edited = alice.post(
        f"/cases/{case_id}/edit", {"title": "Closed now", "status": "closed", "notes": "solved"}
    )
    assert edited.status_code == 302
    case = case_row(app, case_id)
    assert (case.title, case.status, case.notes) == ("Closed now", "closed", "solved")
    assert alice.post(f"/cases/{case_id}/edit", {"status": "archived"}).status_code == 400
    blocked = alice.generate(case_number="C-3")
    assert blocked.status_code == 400 and "is closed" in blocked.get_data(as_text=True)
    no_round = alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid})
    assert no_round.status_code == 409 and "closed" in no_round.get_data(as_text=True)
    (update,) = [d for a, _, d in events(app, case_id) if a == "case_update"]
    assert update["changes"]["status"] == ["open", "closed"]


def test_export_zip_has_images_metadata_and_audit(app: Any, alice: WebClient) -> None:
    case_id = create_case(alice, "EX/7", title="Export me")
    gid = generation_id_from(
        alice.generate(case_number="EX/7", notes="witness A", skin="dark", seed="5")
    )
    assert (
        alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "3"}).status_code
        == 302
    )
    with new_session(app) as s:
        candidate_ids = s.scalars(sa.select(Candidate.id).order_by(Candidate.id)).all()
    alice.post(f"/cases/{case_id}/likeness", {"candidate_id": str(candidate_ids[1])})
    response = alice.get(f"/cases/{case_id}/export.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "filename=case-EX_7.zip" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = set(archive.namelist())
    assert {
        "README.txt",
        "case.json",
        "audit.json",
        "likeness.png",
        f"generations/{gid}/sketch.png",
        f"generations/{gid}/face.png",
        "rounds/1/input.png",
        "rounds/1/grid.png",
        "rounds/1/candidate-01.png",
        "rounds/1/candidate-02.png",
        "rounds/1/candidate-03.png",
    } <= names
    doc = json.loads(archive.read("case.json"))
    assert doc["case"]["number"] == "EX/7" and doc["case"]["members"] == ["alice"]
    assert doc["case"]["likeness"] == {"candidate_id": candidate_ids[1]}
    (generation,) = doc["generations"]
    assert generation["id"] == gid and generation["notes"] == "witness A"
    assert generation["seed"] == 5 and generation["attributes"] == {"skin": "dark"}
    assert generation["model_version"] and generation["owner"] == "alice"
    (round_,) = doc["rounds"]
    assert round_["fixed_attributes"] == {} and len(round_["candidates"]) == 3
    assert [c["likeness"] for c in round_["candidates"]] == [False, True, False]
    assert all(isinstance(c["seed"], int) for c in round_["candidates"])

    # the exported faces are the stored pictures, re-encoded with signed provenance
    def pixels(png: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    face = alice.get(f"/generations/{gid}/face.png").data
    exported = archive.read(f"generations/{gid}/face.png")
    assert np.array_equal(pixels(exported), pixels(face)) and exported != face
    likeness = alice.get(f"/cases/{case_id}/candidates/{candidate_ids[1]}.png").data
    assert np.array_equal(pixels(archive.read("likeness.png")), pixels(likeness))
    audit = json.loads(archive.read("audit.json"))
    actions = [e["action"] for e in audit]
    assert actions[0] == "case_create" and "generate" in actions
    assert {"candidates_generate", "case_likeness", "case_export"} <= set(actions)
    assert all(e["case_id"] == case_id or e["generation_id"] == gid for e in audit)
    assert "not a photograph" in archive.read("README.txt").decode()


def test_api_create_list_and_get_cases(app: Any, alice: WebClient, bob: WebClient) -> None:
    token = make_token(alice)
    http = app.test_client()
    created = http.post(
        "/api/v1/cases", data={"number": "API-1", "title": "From a script"}, headers=auth(token)
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["number"] == "API-1" and body["members"] == ["alice"] and body["status"] == "open"
    assert created.headers["Location"].endswith(f"/api/v1/cases/{body['id']}")
    gen = post_generate(app, token, case_number="API-1").get_json()
    fetched = http.get(f"/api/v1/cases/{body['id']}", headers=auth(token)).get_json()
    assert [g["id"] for g in fetched["generations"]] == [gen["id"]]
    assert fetched["rounds"] == [] and fetched["likeness"] is None
    listing = http.get("/api/v1/cases", headers=auth(token)).get_json()
    assert [c["number"] for c in listing["cases"]] == ["API-1"] and listing["total"] == 1
    for data, word in (
        ({}, "case number"),
        ({"number": "x" * 65}, "number"),
        ({"number": "a\x00"}, "number"),
    ):
        bad = http.post("/api/v1/cases", data=data, headers=auth(token))
        assert bad.status_code == 400 and word in bad.get_json()["error"].lower(), data
    liked = http.post(
        f"/api/v1/cases/{body['id']}/likeness",
        data={"generation_id": gen["id"]},
        headers=auth(token),
    )
    assert liked.status_code == 200 and liked.get_json()["likeness"] == {"generation_id": gen["id"]}
    assert liked.get_json()["likeness_image"].endswith(f"/generations/{gen['id']}/images/face")
    both = http.post(f"/api/v1/cases/{body['id']}/likeness", data={}, headers=auth(token))
    assert both.status_code == 400


def test_schema_tables_are_all_emptied_between_postgres_tests() -> None:
    assert set(TABLES) == set(Base.metadata.tables)


def test_every_api_route_is_in_the_openapi_document(app: Any) -> None:
    """Drift check: each /api/v1 route and method is documented (and nothing else is)."""
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {
        (path, method.upper()) for path, operations in doc["paths"].items() for method in operations
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        path = path.replace("{generation_id}", "{id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routed.add((path, method))
    case_routes = {r for r in routed if r[0].startswith("/cases")}
    assert case_routes and case_routes <= documented, case_routes - documented
    assert {r for r in documented if r[0].startswith("/cases")} == case_routes
    schemas = doc["components"]["schemas"]
    assert {"Case", "CandidateRound", "Candidate"} <= set(schemas)


def test_case_member_rows_are_unique(app: Any, alice: WebClient) -> None:
    case_id = create_case(alice, "U-1")
    with new_session(app) as s:
        alice_id = s.scalar(sa.text("SELECT id FROM users WHERE username = 'alice'"))
        s.add(CaseMember(case_id=case_id, user_id=alice_id))
        with pytest.raises(sa.exc.IntegrityError):
            s.commit()
