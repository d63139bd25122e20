"""Gallery search in the web app: permission (403/404), audit rows, result pages, API, uploads."""

from __future__ import annotations

import dataclasses
import io
import re
import secrets
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from web.web_support import CREATED_APPS, WebClient, make_app, sketch_png  # tests/web

from sketch2face.gallery import CAVEAT


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True, scope="module")
def _fast_password_hashing() -> Iterator[None]:
    from sketch2face.services import accounts as security

    original = security.hasher
    security.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    security.hasher = original


@pytest.fixture(scope="module")
def model_client(tiny_checkpoint: Path) -> Any:
    from sketch2face.serving.client import InProcessModelClient

    return InProcessModelClient(str(tiny_checkpoint), device="cpu")


REPO_ROOT = Path(__file__).resolve().parents[1]


def _postgres_url() -> str | None:
    """The test PostgreSQL (as tests/web/conftest.py finds it), or None."""
    import os

    url = os.environ.get("SKETCH2FACE_TEST_POSTGRES_URL", "").strip()
    url_file = REPO_ROOT / "test-artifacts" / "ci_services" / "postgres_url"
    if not url and url_file.is_file():
        url = url_file.read_text().strip()
    return url or None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database: a copy of the SQLite template, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), tmp_path / "web.db")
        yield f"sqlite:///{tmp_path / 'web.db'}"
        return
    base = _postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not configured: run scripts/ci_services.sh")
    from sketch2face.db.engine import make_engine, upgrade_database

    schema = f"g_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"cannot reach the test PostgreSQL: {exc}")
    url = (
        sa.make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def app(tmp_path: Path, database_url: str, model_client: Any) -> Iterator[Any]:
    import torch

    from sketch2face.web.database import get_engine
    from sketch2face.web.gallery_search import GALLERY
    from sketch2face.web.settings import WebSettings

    torch.set_num_threads(1)
    settings = WebSettings(
        data_dir=tmp_path / "instance",
        secret_key="test-" + secrets.token_hex(16),
        database_url=database_url,
        testing=True,
        max_upload_bytes=2 * 1024 * 1024,
        max_image_pixels=4_000_000,
        ratelimit_enabled=False,
    )
    flask_app = make_app(settings, model_client)
    service = flask_app.extensions[GALLERY]
    service.config = dataclasses.replace(
        service.config, max_upload_bytes=8 * 1024 * 1024, max_files=50
    )
    yield flask_app
    while CREATED_APPS:
        get_engine(CREATED_APPS.pop()).dispose()


def signed_in(app: Any, name: str) -> WebClient:
    client = WebClient(app)
    assert client.login(name).status_code == 302
    return client


@pytest.fixture
def alice(app: Any) -> WebClient:
    return signed_in(app, "alice")


@pytest.fixture
def bob(app: Any) -> WebClient:
    return signed_in(app, "bob")


@pytest.fixture
def root(app: Any) -> WebClient:
    return signed_in(app, "root")


@pytest.fixture
def celeba(shared_dir: Path) -> list[Path]:
    """10000_* (5 photos of one person) and 10001_* (another)."""
    return sorted((shared_dir / "data/fixtures/celeba").glob("*.jpg"))


def user_id(app: Any, name: str) -> int:
    from sketch2face.db.models import User
    from sketch2face.web.database import new_session

    with new_session(app) as s:
        return int(s.scalar(sa.select(User.id).where(User.username == name)))


def events(app: Any, action: str) -> list[Any]:
    from sketch2face.db.models import AuditEvent
    from sketch2face.web.database import new_session

    with new_session(app) as s:
        return list(
            s.scalars(
                sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def enrol(app: Any, name: str, paths: list[Path]) -> None:
    """Enrol photos directly (the upload path has its own tests)."""
    from sketch2face.gallery.enrol import enrol_files
    from sketch2face.gallery.store import create_gallery
    from sketch2face.gallery.zipsafe import SourceFile
    from sketch2face.web.database import new_session
    from sketch2face.web.extensions import get_store
    from sketch2face.web.gallery_search import gallery_web

    with app.app_context(), new_session(app) as s:
        gallery = create_gallery(s, name)
        s.commit()
        files = [SourceFile(p.name, p.stat().st_size, p.read_bytes) for p in paths]
        report = enrol_files(s, get_store(app), gallery, files, gallery_web(app).searcher.encoder)
        assert report.enrolled == len(paths), report.summary()


def grant(root: WebClient, app: Any, name: str, on: bool = True) -> None:
    response = root.post(
        f"/admin/gallery-permissions/{user_id(app, name)}", {"grant": "1" if on else "0"}
    )
    assert response.status_code == 302


def search(client: WebClient, photo: bytes | None = None, **fields: Any) -> Any:
    data: dict[str, Any] = {"gallery": "fixtures", "top_k": "5", "source": "upload", **fields}
    if photo is not None:
        data["photo"] = (io.BytesIO(photo), "query.jpg")
    return client.post("/gallery/search", data, content_type="multipart/form-data")


def api_token(client: WebClient) -> str:
    page = client.post("/tokens", {"name": "script"}).get_data(as_text=True)
    match = re.search(r'id="new-token">(s2f_[^<]+)<', page)
    assert match
    return match.group(1)


# ---------------------------------------------------------------------------- permission
def test_search_needs_a_granted_permission(
    app: Any, alice: WebClient, root: WebClient, celeba: list[Path]
) -> None:
    enrol(app, "fixtures", celeba[:4])
    assert alice.get("/gallery").status_code == 403
    assert "Gallery search" not in alice.get("/new").get_data(as_text=True)  # no nav link
    denied = search(alice, celeba[4].read_bytes())
    assert denied.status_code == 403 and "administrator grants" in denied.get_data(as_text=True)
    assert [e.username for e in events(app, "gallery_search_denied")] == ["alice"]
    assert events(app, "gallery_search") == []
    # only administrators manage galleries and permissions
    assert alice.get("/admin/galleries").status_code == 403
    assert (
        alice.post(
            f"/admin/gallery-permissions/{user_id(app, 'alice')}", {"grant": "1"}
        ).status_code
        == 403
    )
    assert alice.post("/admin/galleries", {"name": "mine"}).status_code == 403

    grant(root, app, "alice")
    assert [(e.username, e.detail["target"]) for e in events(app, "gallery_grant")] == [
        ("root", "alice")
    ]
    assert "Gallery search" in alice.get("/new").get_data(as_text=True)
    assert alice.get("/gallery").status_code == 200
    assert search(alice, celeba[4].read_bytes()).status_code == 302

    grant(root, app, "alice", on=False)
    assert alice.get("/gallery").status_code == 403
    assert [e.detail["target"] for e in events(app, "gallery_revoke")] == ["alice"]


# ---------------------------------------------------------------------------- search + audit
def test_upload_search_result_page_audit_and_photo_links(
    app: Any, alice: WebClient, bob: WebClient, root: WebClient, celeba: list[Path]
) -> None:
    enrol(app, "fixtures", celeba[:4] + celeba[5:])  # 4 photos of 10000, one of 10001
    grant(root, app, "alice")
    grant(root, app, "bob")
    query = celeba[4].read_bytes()  # the 5th photo of 10000
    response = search(alice, query)
    assert response.status_code == 302
    location = response.headers["Location"]
    search_id = int(location.rstrip("/").split("/")[-1])

    [event] = events(app, "gallery_search")
    assert event.id == search_id and event.username == "alice"
    detail = event.detail
    assert detail["gallery"] == "fixtures" and detail["top_k"] == 5 and detail["method"] == "exact"
    assert detail["query"]["kind"] == "upload" and detail["query"]["file_name"] == "query.jpg"
    import hashlib

    assert detail["query"]["sha256"] == hashlib.sha256(query).hexdigest()
    results = detail["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert results[0]["file_name"].startswith("10000_")  # the same person first
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)

    page = alice.get(location)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and CAVEAT in text
    assert results[0]["file_name"] in text and "distance" in text
    # scores read as rank and distance against the recogniser's same-person threshold (0.6);
    # no 0-1 "score" that makes a stranger look like a strong match (issue 23 item 7)
    assert " score " not in text and "score 0." not in text
    assert "same-person threshold (0.6)" in text and "rank 1 · distance" in text
    for r in results:
        row = text.split(f"{r['file_name']}</a>", 1)[1].split("</li>", 1)[0]
        verdict = (
            "closer than the same-person" if r["distance"] < 0.6 else "likely a different person"
        )
        assert verdict in row, (r, row)
    assert "closer than the same-person" in text and "likely a different person" in text
    assert alice.get(f"{location}/query.jpg").headers["Content-Type"] == "image/jpeg"

    # candidates link to their photos with a token bound to the searcher
    links = re.findall(r'href="(/gallery/photos/(\d+)\?t=[^"]+)"', text)
    assert links
    link, photo_id = links[0]
    link = link.replace("&amp;", "&")
    original = alice.get(link)
    assert original.status_code == 200 and original.headers["Content-Type"] == "image/jpeg"
    assert original.data in {p.read_bytes() for p in celeba}
    assert [e.detail["photo_id"] for e in events(app, "gallery_photo_view")] == [int(photo_id)]
    thumb = link.replace(f"/photos/{photo_id}?", f"/photos/{photo_id}/face.jpg?")
    assert alice.get(thumb).status_code == 200
    # without the token, or with someone else's, the photo cannot be fetched (no browsing by id)
    assert alice.get(f"/gallery/photos/{photo_id}").status_code == 404
    assert bob.get(link).status_code == 404
    assert alice.get(f"/gallery/photos/{photo_id}?t=forged").status_code == 404
    # someone else's result page is 404; administrators see every result and photo
    assert bob.get(location).status_code == 404
    assert root.get(location).status_code == 200
    assert root.get(f"/gallery/photos/{photo_id}").status_code == 200
    assert alice.get("/gallery/searches/999999").status_code == 404


def test_search_with_own_generation_only(
    app: Any, alice: WebClient, bob: WebClient, root: WebClient, celeba: list[Path]
) -> None:
    enrol(app, "fixtures", celeba)
    grant(root, app, "alice")
    grant(root, app, "bob")
    generated = alice.generate(sketch_png(96), case_number="C-13")
    generation_id = generated.headers["Location"].rstrip("/").split("/")[-1]
    # the result page of a generation offers the search
    assert f"/gallery?generation={generation_id}" in alice.get(
        f"/generations/{generation_id}"
    ).get_data(as_text=True)
    picker = alice.get(f"/gallery?generation={generation_id}").get_data(as_text=True)
    assert f'value="{generation_id}" checked' in picker
    # the picker shows thumbnails, not hashes (issue 23 item 6)
    assert f'src="/generations/{generation_id}/face.png"' in picker
    assert f"· {generation_id[:8]}" not in picker
    response = search(alice, source="generation", generation_id=generation_id, image="face")
    assert response.status_code == 302
    event = events(app, "gallery_search")[-1]
    assert event.generation_id == generation_id
    assert (
        event.detail["query"].items()
        >= {"kind": "generation", "image": "face", "case_number": "C-13"}.items()
    )
    assert len(event.detail["results"]) == 5  # a random tiny model's face still gets ranked
    page = alice.get(response.headers["Location"]).get_data(as_text=True)
    assert CAVEAT in page and generation_id[:8] in page
    # bob cannot search with alice's generation: 404, and the attempt is audited
    assert search(bob, source="generation", generation_id=generation_id).status_code == 404
    failed = events(app, "gallery_search")[-1]
    assert failed.username == "bob" and "error" in failed.detail
    assert bob.get(f"/gallery?generation={generation_id}").status_code == 404


def test_bad_searches_are_clear_4xx_and_audited(
    app: Any, alice: WebClient, root: WebClient, celeba: list[Path]
) -> None:
    from web.web_support import blank_png

    enrol(app, "fixtures", celeba[:3])
    grant(root, app, "alice")
    photo = celeba[4].read_bytes()
    cases = [
        (search(alice, photo, gallery="nobody"), 404, "no gallery called"),
        (search(alice, blank_png(200, 200)), 422, "no face was found"),
        (search(alice, b"not an image at all"), 400, "image"),
        (search(alice, photo, top_k="0"), 400, "top_k must be"),
        (search(alice, photo, top_k="many"), 400, "top_k must be"),
        (search(alice), 400, "either a photo upload or a generation"),
        (search(alice, photo, gallery=""), 400, "Choose a gallery"),
    ]
    root.post("/admin/galleries", {"name": "empty"})
    cases.append((search(alice, photo, gallery="empty"), 409, "no enrolled faces"))
    for response, status, message in cases:
        assert response.status_code == status, (status, response.get_data(as_text=True)[:300])
        assert message.lower() in response.get_data(as_text=True).lower()
    failures = [e for e in events(app, "gallery_search") if "error" in e.detail]
    assert len(failures) == len(cases)
    assert all(e.username == "alice" for e in failures)


# ---------------------------------------------------------------------------- API
def test_api_search_json_with_caveat_and_openapi(
    app: Any, alice: WebClient, bob: WebClient, root: WebClient, celeba: list[Path]
) -> None:
    enrol(app, "fixtures", celeba[:4] + celeba[5:])
    http = app.test_client()
    token = api_token(alice)
    headers = {"Authorization": f"Bearer {token}"}
    form = {"gallery": "fixtures", "top_k": "3"}

    def post(**extra: Any) -> Any:
        data = {**form, **extra}
        return http.post(
            "/api/v1/gallery/search", data=data, headers=headers, content_type="multipart/form-data"
        )

    denied = post(photo=(io.BytesIO(celeba[4].read_bytes()), "q.jpg"))
    assert denied.status_code == 403 and "administrator" in denied.get_json()["error"]
    assert http.post("/api/v1/gallery/search", data=form).status_code == 401
    grant(root, app, "alice")
    listed = http.get("/api/v1/galleries", headers=headers).get_json()
    assert listed["galleries"][0].items() >= {"name": "fixtures", "photos": 5, "faces": 5}.items()
    assert listed["caveat"] == CAVEAT

    response = post(photo=(io.BytesIO(celeba[4].read_bytes()), "q.jpg"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["caveat"] == CAVEAT and body["gallery"] == "fixtures" and body["top_k"] == 3
    assert "timings_ms" not in body  # internal timings: administrators only (issue 12)
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    assert body["results"][0]["file_name"].startswith("10000_")
    assert all(0 <= r["score"] <= 1 and r["distance"] >= 0 for r in body["results"])
    assert body["query"]["kind"] == "upload" and body["query"]["faces_detected"] == 1
    assert events(app, "gallery_search")[-1].id == body["search_id"]
    photo = http.get(body["results"][0]["photo_url"], headers=headers)
    assert photo.status_code == 200 and photo.data in {p.read_bytes() for p in celeba}
    assert http.get(body["results"][0]["thumbnail_url"], headers=headers).status_code == 200
    assert http.get(body["results"][0]["photo_url"]).status_code == 401
    bob_headers = {"Authorization": f"Bearer {api_token(bob)}"}
    grant(root, app, "bob")
    assert http.get(body["results"][0]["photo_url"], headers=bob_headers).status_code == 404

    errors = {
        "unknown": post(gallery="nope", photo=(io.BytesIO(celeba[4].read_bytes()), "q.jpg")),
        "no_face": post(photo=(io.BytesIO(sketch_png(64)), "q.png")),
        "bad_k": post(top_k="500", photo=(io.BytesIO(celeba[4].read_bytes()), "q.jpg")),
        "neither": post(),
    }
    assert {k: v.status_code for k, v in errors.items()} == {
        "unknown": 404,
        "no_face": 422,
        "bad_k": 400,
        "neither": 400,
    }
    assert all("error" in v.get_json() for v in errors.values())

    doc = http.get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/gallery/search"]["post"]
    assert {"200", "400", "401", "403", "404", "409", "422"} <= set(op["responses"])
    assert doc["components"]["schemas"]["GallerySearch"]["properties"]["caveat"]["const"] == CAVEAT
    assert "/generate" in doc["paths"]  # the existing API is still described


# ---------------------------------------------------------------------------- admin upload
def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def upload(client: WebClient, name: str, *files: tuple[bytes, str], **fields: Any) -> Any:
    data: dict[str, Any] = {"photos": [(io.BytesIO(d), n) for d, n in files], **fields}
    return client.post(f"/admin/galleries/{name}/enrol", data, content_type="multipart/form-data")


def photo_count(app: Any) -> int:
    from sketch2face.db.gallery import GalleryPhoto
    from sketch2face.web.database import new_session

    with new_session(app) as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(GalleryPhoto)) or 0)


def test_admin_zip_upload_enrols_atomically_and_refuses_bad_archives(
    app: Any, root: WebClient, alice: WebClient, celeba: list[Path]
) -> None:
    assert (
        root.post("/admin/galleries", {"name": "Custody-2026", "description": "test"}).status_code
        == 302
    )
    assert root.post("/admin/galleries", {"name": "custody-2026"}).status_code == 409
    assert root.post("/admin/galleries", {"name": "../x"}).status_code == 400
    good = zip_bytes(
        {f"set/{p.name}": p.read_bytes() for p in celeba[:3]} | {"set/readme.txt": b"hi"}
    )
    response = upload(
        root, "custody-2026", (good, "set.zip"), (celeba[3].read_bytes(), "loose.jpg")
    )
    assert response.status_code == 302
    page = root.get(response.headers["Location"]).get_data(as_text=True)
    assert "5 files: 4 enrolled, 1 not an image" in page and "readme.txt" in page
    assert photo_count(app) == 4
    [enrolment] = events(app, "gallery_enrol")
    assert enrolment.username == "root" and enrolment.detail["enrolled"] == 4
    assert enrolment.detail["skipped"]["not an image"] == 1
    # the same ZIP again: every photo is a duplicate
    upload(root, "custody-2026", (good, "set.zip"))
    assert photo_count(app) == 4

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.jpg", celeba[4].read_bytes())
        zf.writestr("big.bmp", b"\0" * (30 * 1024 * 1024))  # 30 MiB of zeros: ~1000:1
    bad = {
        "traversal": zip_bytes(
            {"ok.jpg": celeba[4].read_bytes(), "../../etc/cron.jpg": celeba[5].read_bytes()}
        ),
        "bomb": bomb.getvalue(),
    }
    for kind, data in bad.items():
        refused = upload(root, "custody-2026", (data, f"{kind}.zip"))
        assert refused.status_code == 400, kind
        assert ("outside the archive" if kind == "traversal" else "ZIP bomb") in refused.get_data(
            as_text=True
        )
    assert photo_count(app) == 4  # nothing of the refused archives was enrolled

    # no CSRF token: refused; unknown gallery: 404; investigators: 403; nothing chosen: 400
    no_csrf = root.http.post(
        "/admin/galleries/custody-2026/enrol",
        data={"photos": (io.BytesIO(good), "set.zip")},
        content_type="multipart/form-data",
    )
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.get_data(as_text=True)
    assert upload(root, "nobody", (good, "set.zip")).status_code == 404
    assert upload(alice, "custody-2026", (good, "set.zip")).status_code == 403
    assert upload(root, "custody-2026").status_code == 400
    # larger than the gallery upload limit (the app-wide limit is lower still): 413
    from sketch2face.web.gallery_search import GALLERY

    service = app.extensions[GALLERY]
    service.config = dataclasses.replace(service.config, max_upload_bytes=100_000)
    too_big = upload(root, "custody-2026", (b"\0" * 200_000, "big.zip"))
    assert too_big.status_code == 413 and "sketch2face gallery add" in too_big.get_data(
        as_text=True
    )

    # the gallery page lists the photos; removing one, then the gallery
    detail = root.get("/admin/galleries/custody-2026").get_data(as_text=True)
    ids = re.findall(r"/admin/galleries/custody-2026/photos/(\d+)/delete", detail)
    assert len(ids) == 4
    assert root.post(f"/admin/galleries/custody-2026/photos/{ids[0]}/delete").status_code == 302
    assert photo_count(app) == 3
    assert root.post("/admin/galleries/custody-2026/delete").status_code == 302
    assert photo_count(app) == 0
    assert root.get("/admin/galleries/custody-2026").status_code == 404
    assert [e.action for e in events(app, "gallery_remove")] == ["gallery_remove"]
