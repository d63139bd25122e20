"""A lost or replaced provenance key is noticed (issue 25 item 4): the database records the key's
fingerprint; a start with another key (or none) while generations exist is refused, unless the
keys are rotated; after a rotation, earlier exports verify as signed by an earlier key."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sketch2face.cli.main import main as cli_main
from sketch2face.db.models import SigningKey
from sketch2face.provenance import (
    EARLIER_KEYS_DIRNAME,
    PUBLIC_KEY_FILENAME,
    SIGNING_KEY_FILENAME,
    key_id,
    verify_bytes,
)
from sketch2face.services.signing_keys import SigningKeyMismatchError
from sketch2face.web import create_app
from sketch2face.web.database import get_engine, new_session
from sketch2face.web.pages.verify import get_public_key

from .web_support import CREATED_APPS, WebClient, generation_id_from


def _restart(settings: Any, web_model_client: Any, **changes: Any) -> Any:
    app = create_app(settings.replace(**changes), model_client=web_model_client)
    CREATED_APPS.append(app)
    return app


def _signed_face(app: Any, alice: WebClient) -> bytes:
    gid = generation_id_from(alice.generate())
    response = alice.get(f"/generations/{gid}/face.png?download=1")
    assert response.status_code == 200
    return response.data


def _recorded(app: Any) -> list[tuple[str, bool]]:
    with new_session(app) as s:
        rows = s.scalars(sa.select(SigningKey).order_by(SigningKey.created_at)).all()
        return [(r.key_id, r.retired_at is None) for r in rows]


def test_the_key_fingerprint_is_recorded_at_first_start(app: Any, settings: Any) -> None:
    with app.app_context():
        kid = key_id(get_public_key(app))
    assert _recorded(app) == [(kid, True)]
    assert (settings.data_dir / SIGNING_KEY_FILENAME).is_file()


def test_a_missing_or_different_key_refuses_to_start(
    app: Any, alice: WebClient, settings: Any, web_model_client: Any
) -> None:
    _signed_face(app, alice)
    get_engine(app).dispose()
    data_dir: Path = settings.data_dir
    backup = data_dir.parent / "key-backup"
    backup.mkdir()
    shutil.copy2(data_dir / SIGNING_KEY_FILENAME, backup / SIGNING_KEY_FILENAME)

    (data_dir / SIGNING_KEY_FILENAME).unlink()
    (data_dir / PUBLIC_KEY_FILENAME).unlink()
    with pytest.raises(SigningKeyMismatchError) as missing:
        _restart(settings, web_model_client)
    message = str(missing.value)
    assert "is missing" in message and "refusing to start" in message
    assert "sketch2face restore" in message and "--rotate-signing-key" in message
    assert not (data_dir / SIGNING_KEY_FILENAME).exists(), "no new key made behind one's back"

    other = data_dir.parent / "other"
    _restart(settings, web_model_client, data_dir=other, database_url=f"sqlite:///{other}.db")
    shutil.copy2(other / SIGNING_KEY_FILENAME, data_dir / SIGNING_KEY_FILENAME)
    with pytest.raises(SigningKeyMismatchError, match="is another key"):
        _restart(settings, web_model_client)

    # the key restored from the backup: starts again
    shutil.copy2(backup / SIGNING_KEY_FILENAME, data_dir / SIGNING_KEY_FILENAME)
    _restart(settings, web_model_client)


def test_rotation_keeps_earlier_exports_verifiable(
    app: Any, alice: WebClient, settings: Any, web_model_client: Any, capsys: Any
) -> None:
    old_face = _signed_face(app, alice)
    with app.app_context():
        old_id = key_id(get_public_key(app))
    get_engine(app).dispose()
    data_dir: Path = settings.data_dir
    (data_dir / SIGNING_KEY_FILENAME).unlink()
    (data_dir / PUBLIC_KEY_FILENAME).unlink()

    rotated = _restart(settings, web_model_client, rotate_signing_key=True)
    with rotated.app_context():
        new_key = get_public_key(rotated)
    assert key_id(new_key) != old_id
    assert _recorded(rotated) == [(old_id, False), (key_id(new_key), True)]
    assert (data_dir / EARLIER_KEYS_DIRNAME / f"{old_id}.pub.pem").is_file()
    # the next plain start accepts the new key
    restarted = _restart(settings, web_model_client)

    # the web verify page: valid, signed by an earlier key of this instance
    c = WebClient(restarted)
    assert c.login("alice").status_code == 302
    page = c.post(
        "/verify",
        {"file": (io.BytesIO(old_face), "face.png")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert 'data-status="valid"' in page and "signed by an earlier key of this instance" in page

    # without the earlier keys the file is not this instance's current key's
    assert verify_bytes(old_face, new_key).status == "tampered"

    # the CLI with the data folder: valid (exit 0), and says which key
    face_path = data_dir.parent / "old_face.png"
    face_path.write_bytes(old_face)
    capsys.readouterr()
    assert cli_main(["verify", str(face_path), "--key-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID, SIGNED BY AN EARLIER KEY OF THIS INSTANCE")
    assert cli_main(["verify", str(face_path), "--key-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["earlier_key"] is True


def test_no_generations_means_nothing_to_protect(
    app: Any, settings: Any, web_model_client: Any
) -> None:
    get_engine(app).dispose()
    (settings.data_dir / SIGNING_KEY_FILENAME).unlink()
    (settings.data_dir / PUBLIC_KEY_FILENAME).unlink()
    again = _restart(settings, web_model_client)  # nothing was signed: the new key is recorded
    assert [current for _, current in _recorded(again)] == [False, True]
