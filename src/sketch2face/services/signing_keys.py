"""The provenance signing key, checked against the fingerprint the database recorded (issue 25).

A lost or replaced data folder used to go unnoticed: the app made a new key, and genuine old
exports then checked as tampered. The database (table ``signing_keys``) now records every key the
instance has signed with; at start :func:`check_signing_key` compares the data folder's key with
the current one recorded there:

* nothing recorded yet (a new instance, or one from before this check): the key is recorded;
* the same key: nothing to do;
* missing or another key while generations exist (their exports were signed): refused with
  :class:`SigningKeyMismatchError`, which says how to restore the key or rotate;
* ``rotate=True`` (``serve --rotate-signing-key`` / ``SKETCH2FACE_ROTATE_SIGNING_KEY=1``): the
  folder's key (a new one when it has none) becomes the current key; the earlier public keys stay
  in the table and in ``<data_dir>/provenance_keys/`` so their files verify as "signed by an
  earlier key of this instance".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.orm import Session

from sketch2face.db.models import Generation, SigningKey, utcnow
from sketch2face.errors import ProvenanceError
from sketch2face.provenance.keys import (
    SIGNING_KEY_FILENAME,
    ensure_signing_key,
    keep_earlier_public_key,
    key_id,
    load_signing_key,
    public_key_pem,
)

log = logging.getLogger(__name__)

ROTATE_ENV = "SKETCH2FACE_ROTATE_SIGNING_KEY"


class SigningKeyMismatchError(ProvenanceError):
    """The data folder's signing key is not the one the database's signed records were made with."""


@dataclass(frozen=True)
class SigningKeys:
    """The key to sign with and the public keys of the instance's earlier keys."""

    current: Ed25519PrivateKey
    earlier: list[Ed25519PublicKey] = field(default_factory=list)


def check_signing_key(session: Session, data_dir: Path, *, rotate: bool = False) -> SigningKeys:
    """Load (or create) the data folder's key and check it against the database (module doc).

    Commits the session when it records a key. Raises SigningKeyMismatchError when the start
    must be refused.
    """
    data_dir = Path(data_dir)
    rows = list(session.scalars(sa.select(SigningKey).order_by(SigningKey.created_at)))
    current_row = next((r for r in rows if r.retired_at is None), None)
    key_path = data_dir / SIGNING_KEY_FILENAME
    folder_key = load_signing_key(key_path) if key_path.exists() else None
    if current_row is not None and (folder_key is None or key_id(folder_key) != current_row.key_id):
        signed = session.scalar(sa.select(sa.func.count()).select_from(Generation)) or 0
        if signed and not rotate:
            raise SigningKeyMismatchError(
                _mismatch_message(data_dir, current_row, folder_key, signed)
            )
        log.warning(
            "provenance signing key: the data folder %s %s, not the recorded key %s; %s",
            data_dir,
            "has no key" if folder_key is None else f"holds key {key_id(folder_key)[:16]}",
            current_row.key_id[:16],
            "rotating as asked (the old public key is kept)"
            if signed
            else "no generations were signed with it, so the folder's key is recorded instead",
        )
    key = ensure_signing_key(data_dir)
    kid = key_id(key)
    now = utcnow()
    changed = False
    by_id = {r.key_id: r for r in rows}
    for row in rows:
        if row.key_id != kid and row.retired_at is None:
            row.retired_at = now
            changed = True
    if kid in by_id:
        if by_id[kid].retired_at is not None:
            by_id[kid].retired_at = None  # an earlier key brought back
            changed = True
    else:
        session.add(
            SigningKey(key_id=kid, public_key_pem=public_key_pem(key.public_key()).decode())
        )
        changed = True
    if changed:
        try:
            session.commit()
        except sa.exc.IntegrityError:  # another worker recorded the same key first
            session.rollback()
    earlier = [_public(r.public_key_pem) for r in rows if r.key_id != kid]
    for public in earlier:
        keep_earlier_public_key(data_dir, public)
    return SigningKeys(key, earlier)


def _public(pem: str) -> Ed25519PublicKey:
    key = load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ProvenanceError("signing_keys holds a public key that is not Ed25519.")
    return key


def _mismatch_message(
    data_dir: Path, row: SigningKey, folder_key: Ed25519PrivateKey | None, signed: int
) -> str:
    found = (
        f"{data_dir / SIGNING_KEY_FILENAME} is missing"
        if folder_key is None
        else f"{data_dir / SIGNING_KEY_FILENAME} is another key ({key_id(folder_key)[:16]})"
    )
    return (
        f"refusing to start: the database holds {signed} generation(s) whose exports were signed "
        f"with provenance key {row.key_id[:16]}, but {found}. With another key, every genuine "
        "earlier export would check as TAMPERED. The data folder was probably lost or replaced. "
        f"Restore the key: `sketch2face restore BACKUP --keys-only --data-dir {data_dir}` from a "
        "backup made by `sketch2face backup`, or copy provenance_ed25519.pem (and "
        "provenance_ed25519.pub.pem, provenance_keys/) from a copy of the old data folder into "
        f"{data_dir}. If the key is lost for good, rotate: start once with "
        f"`sketch2face serve --rotate-signing-key` (or {ROTATE_ENV}=1); the old public key stays "
        "recorded, so earlier exports still verify, as signed by an earlier key of this instance."
    )
