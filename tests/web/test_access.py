"""A user can never read, download or delete another user's generations: always 404."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from sketch2face.db.models import Generation
from sketch2face.web.database import new_session

from .web_support import WebClient, generation_id_from


def test_other_users_get_404_everywhere(app: Any, alice: WebClient, bob: WebClient) -> None:
    gid = generation_id_from(alice.generate(case_number="secret-case"))
    for path in (
        f"/generations/{gid}",
        f"/generations/{gid}/sketch.png",
        f"/generations/{gid}/face.png",
        f"/generations/{gid}/face.png?download=1",
    ):
        assert bob.get(path).status_code == 404, path
    assert bob.post(f"/generations/{gid}/delete").status_code == 404
    assert "secret-case" not in bob.get("/history?q=secret").get_data(as_text=True)
    with new_session(app) as s:
        assert s.get(Generation, gid) is not None  # still there
    assert alice.get(f"/generations/{gid}/face.png").status_code == 200


def test_unknown_ids_and_kinds_are_404(alice: WebClient) -> None:
    gid = generation_id_from(alice.generate())
    assert alice.get("/generations/" + "0" * 32).status_code == 404
    assert alice.get("/generations/" + "x" * 500).status_code == 404
    assert alice.get(f"/generations/{gid}/passwd.png").status_code == 404


def test_admin_can_open_and_delete_any(app: Any, alice: WebClient, root: WebClient) -> None:
    gid = generation_id_from(alice.generate())
    assert "by alice" in root.get(f"/generations/{gid}").get_data(as_text=True)
    assert root.get(f"/generations/{gid}/face.png?download=1").status_code == 200
    assert root.post(f"/generations/{gid}/delete").status_code == 302
    with new_session(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0


def test_tokens_of_others_cannot_be_revoked(app: Any, alice: WebClient, bob: WebClient) -> None:
    alice.post("/tokens", {"name": "laptop"})
    from sketch2face.db.models import ApiToken

    with new_session(app) as s:
        token_id = s.scalar(sa.select(ApiToken.id))
    assert bob.post(f"/tokens/{token_id}/revoke").status_code == 404
