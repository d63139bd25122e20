"""Sign in/out, CSRF, password change, accounts, roles, rate limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sketch2face.db.models import AuditEvent, User, utcnow
from sketch2face.web.database import new_session

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


def test_sign_in_is_throttled(app: Any) -> None:
    c = WebClient(app)
    codes = [c.login("alice", "wrong password!!").status_code for _ in range(6)]
    assert codes == [401, 401, 401, 401, 401, 429]
    assert "Too many" in c.login("alice").get_data(as_text=True)


# ---------------------------------------------------------------- audit findings (issue 14)

HUGE_IDS = ("99999999999999999999", str(2**63), str(2**31))


def test_huge_ids_in_paths_are_404(app: Any, alice: WebClient, root: WebClient) -> None:
    """Finding 1: ids beyond the database's integers are 404, not 500 (OverflowError)."""
    for huge in HUGE_IDS:
        assert alice.post(f"/tokens/{huge}/revoke").status_code == 404, huge
        assert root.post(f"/admin/users/{huge}/active", {"active": "0"}).status_code == 404, huge


def test_sign_out_ends_the_session_on_the_server(app: Any) -> None:
    """Finding 2: a copy of the session cookie taken before sign-out no longer opens pages."""
    alice = WebClient(app)
    assert alice.login("alice").status_code == 302
    copied = alice.http.get_cookie("sketch2face_session")
    assert copied is not None
    assert alice.post("/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie("sketch2face_session", copied.value)
    response = replay.get("/history")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert WebClient(app).login("alice").status_code == 302  # signing in again works


def test_sessions_end_12_hours_after_sign_in(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 2: the lifetime counts from sign-in; activity (a re-signed cookie) does not extend it."""
    from sketch2face.web.security import sessions

    alice = WebClient(app)
    alice.login("alice")
    start = utcnow()
    monkeypatch.setattr(sessions, "utcnow", lambda: start + timedelta(hours=11, minutes=59))
    assert alice.get("/history").status_code == 200
    monkeypatch.setattr(sessions, "utcnow", lambda: start + timedelta(hours=12, minutes=1))
    response = alice.get("/history")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sign_in_backoff_is_per_account_at_an_address(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 5: failures from one address hold back that account there, with a growing wait;
    a colleague behind the same address (before: 10 sign-ins a minute per address, then 429 for
    everyone there) and the account holder elsewhere still get in."""
    from sketch2face.web.security import throttle

    now = [utcnow()]
    monkeypatch.setattr(throttle, "utcnow", lambda: now[0])
    office = WebClient(app, address="198.51.100.7")
    codes = [office.login("alice", "wrong password!!").status_code for _ in range(10)]
    assert codes == [401] * 5 + [429] * 5
    held = office.login("alice")  # the right password waits too: no guessing while held back
    assert held.status_code == 429
    wait = int(held.headers["Retry-After"])
    assert 0 < wait <= 30 and "Wait" in held.get_data(as_text=True)
    assert WebClient(app, address="198.51.100.7").login("bob").status_code == 302
    assert WebClient(app, address="203.0.113.9").login("alice").status_code == 302

    now[0] += timedelta(seconds=wait + 1)
    assert office.login("alice", "wrong password!!").status_code == 401  # one more try ...
    again = office.login("alice")
    assert again.status_code == 429 and int(again.headers["Retry-After"]) > wait  # ... doubles it
    now[0] += timedelta(seconds=int(again.headers["Retry-After"]) + 1)
    assert office.login("alice").status_code == 302
    with new_session(app) as s:
        reasons = [
            e.detail.get("reason")
            for e in s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "sign_in_failed"))
        ]
    assert reasons.count("throttled") == 7


def test_sign_in_backoff_per_address(settings: Any, web_model_client: Any) -> None:
    """Finding 5: one address trying many accounts is held back whatever account it names."""
    app = make_app(settings.replace(login_address_failures=8), web_model_client)
    sprayer = WebClient(app, address="192.0.2.66")
    codes = [sprayer.login(f"user{n}", "wrong password!!").status_code for n in range(9)]
    assert codes == [401] * 8 + [429]
    held = sprayer.login("alice")
    assert held.status_code == 429 and "from your address" in held.get_data(as_text=True)
    assert WebClient(app, address="192.0.2.67").login("alice").status_code == 302


# ---------------------------------------------------------------- issue 12: seen as a new user
def _user_id(app: Any, name: str) -> int:
    with new_session(app) as s:
        return int(s.scalar(sa.select(User.id).where(User.username == name)))


def _user(app: Any, name: str) -> User:
    with new_session(app) as s:
        return s.scalars(sa.select(User).where(User.username == name)).one()


def test_empty_database_sign_in_page_tells_the_local_visitor_only(
    settings: Any, web_model_client: Any
) -> None:
    from sketch2face.web import create_app
    from sketch2face.web.first_start import create_admin_command
    from sketch2face.web.pages.auth import create_user

    from .web_support import CREATED_APPS

    app = create_app(settings, model_client=web_model_client)  # no accounts at all
    CREATED_APPS.append(app)
    command = create_admin_command(settings.data_dir)
    assert " users create --admin --username NAME --data-dir " in command
    for address in ("127.0.0.1", "::1", "127.0.0.2"):
        page = WebClient(app, address=address).get("/login").get_data(as_text=True)
        assert "No accounts yet" in page and command in page, address
    for address in ("10.0.0.8", "192.0.2.1", "2001:db8::1"):
        page = WebClient(app, address=address).get("/login").get_data(as_text=True)
        assert "No accounts yet" not in page and "users create" not in page, address
    # a proxy on the server's machine forwards remote visitors from 127.0.0.1
    forwarded = WebClient(app, address="127.0.0.1").get(
        "/login", headers={"X-Forwarded-For": "203.0.113.5"}
    )
    assert "users create" not in forwarded.get_data(as_text=True)
    with new_session(app) as s:
        create_user(s, "chief", PASSWORD, "admin")
        s.commit()
    page = WebClient(app, address="127.0.0.1").get("/login").get_data(as_text=True)
    assert "No accounts yet" not in page and "users create" not in page


def test_users_page_offers_role_and_password_reset(app: Any, root: WebClient) -> None:
    alice_id = _user_id(app, "alice")
    page = root.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{alice_id}/password"' in page
    assert f'action="/admin/users/{alice_id}/role"' in page and 'name="role"' in page
    root_id = _user_id(app, "root")
    assert f'action="/admin/users/{root_id}/password"' not in page  # own: the Password page


def test_admin_resets_a_password(app: Any, root: WebClient) -> None:
    from sketch2face.db.models import ApiToken

    alice = WebClient(app)
    alice.login("alice")
    other = WebClient(app)
    other.login("alice")
    assert alice.post("/tokens", {"name": "script"}).status_code == 200
    alice_id = _user_id(app, "alice")
    nonce = _user(app, "alice").session_nonce
    url = f"/admin/users/{alice_id}/password"

    short = root.post(url, {"new_password": "short", "confirm": "short"})
    assert short.status_code == 400 and "at least 10" in short.get_data(as_text=True)
    differ = root.post(url, {"new_password": "a new long password", "confirm": "something else"})
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    assert _user(app, "alice").session_nonce == nonce  # nothing changed yet
    no_csrf = root.http.post(url, data={"new_password": "x" * 12, "confirm": "x" * 12})
    assert no_csrf.status_code == 400
    assert alice.post(f"/admin/users/{_user_id(app, 'bob')}/password").status_code == 403
    assert root.post("/admin/users/999999/password", {}).status_code == 404

    ok = root.post(url, {"new_password": "a new long password", "confirm": "a new long password"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/admin/users"
    assert "1 API token was revoked" in root.get("/admin/users").get_data(as_text=True)
    assert _user(app, "alice").session_nonce != nonce
    for session in (alice, other):  # every session of the account ended
        response = session.get("/new")
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    with new_session(app) as s:
        assert all(t.revoked_at is not None for t in s.scalars(sa.select(ApiToken)))
    assert WebClient(app).login("alice").status_code == 401  # the old password fails
    assert WebClient(app).login("alice", "a new long password").status_code == 302
    (event,) = _events(app, "password_reset")
    assert event.username == "root"
    assert event.detail == {"target": "alice", "tokens_revoked": 1}

    own = root.post(
        f"/admin/users/{_user_id(app, 'root')}/password",
        {"new_password": "roots new password", "confirm": "roots new password"},
    )
    assert own.status_code == 302 and own.headers["Location"] == "/password"
    assert WebClient(app).login("root").status_code == 302  # unchanged


def test_admin_changes_roles_but_never_removes_the_last_admin(app: Any, root: WebClient) -> None:
    alice_id, root_id = _user_id(app, "alice"), _user_id(app, "root")
    alice = WebClient(app)
    alice.login("alice")
    assert alice.post(f"/admin/users/{root_id}/role", {"role": "investigator"}).status_code == 403
    assert root.post(f"/admin/users/{alice_id}/role", {"role": "superuser"}).status_code == 400
    assert (
        root.http.post(f"/admin/users/{alice_id}/role", data={"role": "admin"}).status_code == 400
    )

    assert root.post(f"/admin/users/{alice_id}/role", {"role": "admin"}).status_code == 302
    assert _user(app, "alice").role == "admin"
    assert alice.get("/admin/users").status_code == 200  # at once, no new sign-in needed
    (event,) = [e for e in _events(app, "user_update") if "role" in e.detail]
    assert event.username == "root"
    assert event.detail == {"target": "alice", "role": "admin", "previous_role": "investigator"}

    # root steps down itself: another administrator remains
    stepped = root.post(f"/admin/users/{root_id}/role", {"role": "investigator"})
    assert stepped.status_code == 302 and stepped.headers["Location"] == "/new"
    assert root.get("/admin/users").status_code == 403
    # alice is now the last administrator: she cannot demote herself ...
    last = alice.post(f"/admin/users/{alice_id}/role", {"role": "investigator"})
    assert last.status_code == 409 and "last active administrator" in last.get_data(as_text=True)
    assert _user(app, "alice").role == "admin"
    assert len([e for e in _events(app, "user_update") if "role" in e.detail]) == 2
    # ... nor disable herself (nor could anyone else disable her: nobody else is an admin)
    assert alice.post(f"/admin/users/{alice_id}/active", {"active": "0"}).status_code == 302
    assert _user(app, "alice").is_active
