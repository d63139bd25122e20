"""Sign in/out, CSRF, password change, accounts, roles, rate limits."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from sketch2face.web.db import new_session
from sketch2face.web.models import AuditEvent, User

from .web_support import PASSWORD, WebClient, make_app


def _events(app: Any, action: str) -> list[AuditEvent]:
    with new_session(app) as s:
        return list(s.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def test_pages_require_sign_in(client: WebClient) -> None:
    for path in ("/new", "/history", "/tokens", "/password", "/admin/users", "/admin/audit"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_sign_in_is_case_insensitive_and_audited(app: Any, client: WebClient) -> None:
    response = client.login("ALICE")
    assert response.status_code == 302 and response.headers["Location"] == "/new"
    assert client.get("/new").status_code == 200
    assert [e.username for e in _events(app, "sign_in")] == ["alice"]


def test_wrong_password_is_generic_and_audited(app: Any, client: WebClient) -> None:
    response = client.login("alice", "wrong password!!")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    unknown = client.login("nobody", "wrong password!!")
    assert unknown.status_code == 401
    assert sorted(e.username for e in _events(app, "sign_in_failed")) == ["alice", "nobody"]


def test_post_without_csrf_token_is_refused(app: Any) -> None:
    http = app.test_client()
    response = http.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_logout_is_post_only(alice: WebClient) -> None:
    assert alice.get("/logout").status_code == 405
    assert alice.post("/logout").status_code == 302
    assert alice.get("/new").status_code == 302


def test_next_redirect_stays_on_site(client: WebClient) -> None:
    response = client.post(
        "/login?next=https://evil.example/x", {"username": "alice", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/new"
    client2 = WebClient(client.app)
    response = client2.post("/login?next=/history", {"username": "alice", "password": PASSWORD})
    assert response.headers["Location"] == "/history"


def test_password_change_signs_out_other_sessions(app: Any, alice: WebClient) -> None:
    other = WebClient(app)
    other.login("alice")
    assert other.get("/new").status_code == 200
    bad = alice.post(
        "/password",
        {"current_password": "nope nope nope", "new_password": "x" * 12, "confirm": "x" * 12},
    )
    assert bad.status_code == 400 and "current password is wrong" in bad.get_data(as_text=True)
    short = alice.post(
        "/password", {"current_password": PASSWORD, "new_password": "short", "confirm": "short"}
    )
    assert short.status_code == 400 and "at least 10" in short.get_data(as_text=True)
    ok = alice.post(
        "/password",
        {
            "current_password": PASSWORD,
            "new_password": "a new long password",
            "confirm": "a new long password",
        },
    )
    assert ok.status_code == 302
    assert alice.get("/new").status_code == 200  # this session continues
    assert other.get("/new").status_code == 302  # the other one is signed out
    assert WebClient(app).login("alice").status_code == 401
    assert WebClient(app).login("alice", "a new long password").status_code == 302


def test_admin_creates_users_and_duplicates_are_clear(app: Any, root: WebClient) -> None:
    response = root.post(
        "/admin/users", {"username": "Carol", "password": "carols password", "role": "investigator"}
    )
    assert response.status_code == 302
    dup = root.post(
        "/admin/users", {"username": "carol", "password": "another password", "role": "admin"}
    )
    assert dup.status_code == 409
    assert "already taken" in dup.get_data(as_text=True)
    with new_session(app) as s:
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(User).where(User.username == "carol"))
            == 1
        )
    assert WebClient(app).login("carol", "carols password").status_code == 302


def test_admin_can_disable_an_account(app: Any, root: WebClient) -> None:
    bob = WebClient(app)
    bob.login("bob")
    with new_session(app) as s:
        bob_id = s.scalar(sa.select(User.id).where(User.username == "bob"))
    assert root.post(f"/admin/users/{bob_id}/active", {"active": "0"}).status_code == 302
    assert bob.get("/new").status_code == 302
    assert WebClient(app).login("bob").status_code == 401


def test_investigators_cannot_use_admin_pages(alice: WebClient) -> None:
    assert alice.get("/admin/users").status_code == 403
    assert alice.get("/admin/audit").status_code == 403
    assert (
        alice.post(
            "/admin/users", {"username": "mallory", "password": "x" * 12, "role": "admin"}
        ).status_code
        == 403
    )


def test_open_signup_off_by_default(client: WebClient) -> None:
    assert client.get("/register").status_code == 404


def test_open_signup_when_enabled(settings: Any, web_model_client: Any) -> None:
    app = make_app(settings.replace(open_signup=True), web_model_client)
    c = WebClient(app)
    response = c.post(
        "/register", {"username": "dave", "password": "daves password", "confirm": "daves password"}
    )
    assert response.status_code == 302
    assert c.get("/new").status_code == 200
    c2 = WebClient(app)
    dup = c2.post(
        "/register", {"username": "dave", "password": "daves password", "confirm": "daves password"}
    )
    assert dup.status_code == 409 and "already taken" in dup.get_data(as_text=True)


def test_sign_in_is_rate_limited(settings: Any, web_model_client: Any) -> None:
    app = make_app(settings.replace(login_rate_limit="3 per minute"), web_model_client)
    c = WebClient(app)
    codes = [c.login("alice", "wrong password!!").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert "Too many" in c.login("alice").get_data(as_text=True)
