"""Gallery search from a case (issue 23 item 6): a member with the search permission searches
with the case's likeness or a candidate, server-side (no re-upload), from a picker of thumbnails;
members without the permission get 403 and see no button, non-members 404; every search audited
on the case's trail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sketch2face.db.models import AuditEvent, Candidate, User
from sketch2face.gallery import CAVEAT
from sketch2face.web.database import new_session

from .test_cases import create_case
from .web_support import PASSWORD, WebClient, generation_id_from


@pytest.fixture
def celeba(shared_dir: Path) -> list[Path]:
    """10000_* (5 photos of one person) and 10001_* (another)."""
    return sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))


def _signed_in(app: Any, name: str) -> WebClient:
    c = WebClient(app)
    assert c.login(name).status_code == 302
    return c


def _enrol(app: Any, paths: list[Path]) -> None:
    from sketch2face.gallery.enrol import enrol_files
    from sketch2face.gallery.store import create_gallery
    from sketch2face.gallery.zipsafe import SourceFile
    from sketch2face.web.extensions import get_store
    from sketch2face.web.gallery_search import gallery_web

    with app.app_context(), new_session(app) as s:
        gallery = create_gallery(s, "fixtures")
        s.commit()
        files = [SourceFile(p.name, p.stat().st_size, p.read_bytes) for p in paths]
        report = enrol_files(s, get_store(app), gallery, files, gallery_web(app).searcher.encoder)
        assert report.enrolled == len(paths), report.summary()


def _user_id(app: Any, name: str) -> int:
    with new_session(app) as s:
        return int(s.scalar(sa.select(User.id).where(User.username == name)))


def _grant(root: WebClient, app: Any, name: str) -> None:
    response = root.post(f"/admin/gallery-permissions/{_user_id(app, name)}", {"grant": "1"})
    assert response.status_code == 302


def _searches(app: Any) -> list[AuditEvent]:
    with new_session(app) as s:
        return list(
            s.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.action == "gallery_search")
                .order_by(AuditEvent.id)
            )
        )


def test_members_with_the_permission_search_from_the_likeness_and_candidates(
    app: Any, alice: WebClient, bob: WebClient, root: WebClient, celeba: list[Path]
) -> None:
    from sketch2face.web.pages.auth import create_user

    with new_session(app) as s:
        create_user(s, "carol", PASSWORD)
        s.commit()
    carol = _signed_in(app, "carol")
    _enrol(app, celeba[:4] + celeba[5:])  # 4 photos of 10000, one of 10001
    number = "2026-0600"
    case_id = create_case(alice, number)
    gid = generation_id_from(alice.generate(case_number=number))
    assert (
        alice.post(f"/cases/{case_id}/candidates", {"generation_id": gid, "n": "2"}).status_code
        == 302
    )
    with new_session(app) as s:
        first, second = s.scalars(sa.select(Candidate).order_by(Candidate.id)).all()
        # the face a search starts from: the refined one (both stages run by default)
        first_id, second_id, first_key = first.id, second.id, first.shown_key
    # the likeness is candidate 1, whose stored face is (here) a photo of 10001
    from sketch2face.web.extensions import get_store

    get_store(app).put(first_key, celeba[5].read_bytes(), content_type="image/jpeg")
    assert (
        alice.post(f"/cases/{case_id}/likeness", {"candidate_id": str(first_id)}).status_code == 302
    )
    assert alice.post(f"/cases/{case_id}/members", {"username": "carol"}).status_code == 302

    # without the permission: no button, and 403 on the search page and its POST
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Search the gallery" not in page
    assert alice.get(f"/cases/{case_id}/gallery-search?image=likeness").status_code == 403
    form = {"gallery": "fixtures", "top_k": "5", "image": "likeness"}
    assert alice.post(f"/cases/{case_id}/gallery-search", form).status_code == 403
    assert _searches(app) == []

    _grant(root, app, "alice")
    _grant(root, app, "bob")  # allowed to search, but not a member of the case
    page = alice.get(f"/cases/{case_id}").get_data(as_text=True)
    assert page.count("Search the gallery") >= 4  # likeness, the sketch's face, 2 candidates
    assert f"/cases/{case_id}/gallery-search?image=likeness" in page
    assert f"/cases/{case_id}/gallery-search?image=candidate-{second_id}" in page
    # the picker: thumbnails of the case's faces, the chosen one ticked; no ids or hashes shown
    picker = alice.get(f"/cases/{case_id}/gallery-search?image=candidate-{second_id}")
    text = picker.get_data(as_text=True)
    assert picker.status_code == 200 and CAVEAT in text
    assert f'src="/cases/{case_id}/likeness.png"' in text
    assert f'src="/cases/{case_id}/candidates/{second_id}.png"' in text
    assert f'src="/generations/{gid}/face.png"' in text
    assert re.search(rf'value="candidate-{second_id}" checked', text)
    assert gid[:8] not in re.sub(r'(src|value|id)="[^"]*"', "", text)
    assert alice.get(f"/cases/{case_id}/gallery-search?image=candidate-999999").status_code == 404

    # search with the likeness: the enrolled photo of the same face comes first
    response = alice.post(f"/cases/{case_id}/gallery-search", form)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    result = alice.get(response.headers["Location"])
    text = result.get_data(as_text=True)
    assert result.status_code == 200 and CAVEAT in text and "rank 1 · distance" in text
    [event] = _searches(app)
    assert event.username == "alice" and event.case_id == case_id and event.generation_id == gid
    assert (
        event.detail["query"].items()
        >= {
            "kind": "case",
            "case_number": number,
            "image": "likeness",
            "candidate_id": first_id,
        }.items()
    )
    results = event.detail["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert results[0]["file_name"] == celeba[5].name
    assert text.index(celeba[5].name) < text.index(results[1]["file_name"])
    assert f'case <a href="/cases/{case_id}">{number}</a>: its likeness' in text

    # search with another candidate (the tiny model's face is still ranked)
    form_candidate = {**form, "image": f"candidate-{second_id}"}
    response = alice.post(f"/cases/{case_id}/gallery-search", form_candidate)
    assert response.status_code == 302
    assert alice.get(response.headers["Location"]).status_code == 200
    event = _searches(app)[-1]
    assert event.detail["query"]["image"] == "candidate"
    assert event.detail["query"]["candidate_id"] == second_id and len(event.detail["results"]) == 5
    # both searches are on the case's audit trail
    trail = alice.get(f"/cases/{case_id}").get_data(as_text=True).split('id="audit-trail"')[1]
    assert trail.count("<code>gallery_search</code>") == 2

    # a member without the permission: 403, audited as denied; a non-member (with it): 404
    assert "Search the gallery" not in carol.get(f"/cases/{case_id}").get_data(as_text=True)
    assert carol.get(f"/cases/{case_id}/gallery-search").status_code == 403
    assert carol.post(f"/cases/{case_id}/gallery-search", form).status_code == 403
    assert bob.get(f"/cases/{case_id}/gallery-search?image=likeness").status_code == 404
    assert bob.post(f"/cases/{case_id}/gallery-search", form).status_code == 404
    # an image of another case, or none, is 404 too
    assert alice.post(f"/cases/{case_id}/gallery-search", {**form, "image": "x"}).status_code == 404
    assert len(_searches(app)) == 2
    with new_session(app) as s:
        denied = s.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "gallery_search_denied")
        ).all()
        assert [(e.username, e.case_id) for e in denied][-1] == ("carol", case_id)
