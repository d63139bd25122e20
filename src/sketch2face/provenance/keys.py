"""The instance's Ed25519 signing key: created once, kept with the instance secrets.

``<data_dir>/provenance_ed25519.pem`` holds the private key (PKCS#8 PEM, mode 0600), beside the
web app's ``secret_key``; ``provenance_ed25519.pub.pem`` beside it holds the public key, the file
to hand to whoever must check an export (``sketch2face verify FILE --public-key that.pem``).
A key is named by its *key id*: the SHA-256 of the raw 32-byte public key, in hex.

Every web worker and every host that signs must see the same data folder (as for ``secret_key``);
a host with its own folder would sign with its own key, which a verifier given this instance's
public key rejects.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sketch2face.errors import ProvenanceError
from sketch2face.private_files import make_private_dirs

log = logging.getLogger(__name__)

SIGNING_KEY_FILENAME = "provenance_ed25519.pem"
PUBLIC_KEY_FILENAME = "provenance_ed25519.pub.pem"
#: folder of the data folder holding the public keys of earlier (rotated) keys, ``<key id>.pub.pem``
EARLIER_KEYS_DIRNAME = "provenance_keys"
#: hex characters of the key id shown to people (the full id is kept in the metadata)
SHORT_KEY_ID_CHARS = 16


def ensure_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """Return the key in ``<data_dir>/provenance_ed25519.pem``, creating it (mode 0600) on first use.

    Concurrent first starts (several web workers) agree on one key: the new key is written to a
    private temporary file and linked into place, which fails if another process won the race.
    The public key file (also 0600, like all instance data) is (re)written beside it when missing.
    """
    make_private_dirs(data_dir)
    path = data_dir / SIGNING_KEY_FILENAME
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = data_dir / f".{SIGNING_KEY_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            try:
                os.link(tmp, path)
                log.info(
                    "created the provenance signing key %s (key id %s)", path, short_key_id(key)
                )
            except FileExistsError:
                pass  # another process created it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)
    elif os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)  # tighten a key that was copied around with loose permissions
    key = load_signing_key(path)
    public_path = data_dir / PUBLIC_KEY_FILENAME
    if not public_path.exists():
        # 0600 like everything in the data folder (private_files.py); it is copied out to share
        try:
            fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return key  # written by a concurrent process
        with os.fdopen(fd, "wb") as fh:
            fh.write(public_key_pem(key.public_key()))
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from an unencrypted PEM file."""
    data = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProvenanceError(
            f"{path} is not an unencrypted PEM private key ({exc}); move it away and restart to "
            "create a new key (files signed with the old key then no longer verify as this "
            "instance's)."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ProvenanceError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 key; provenance signing needs "
            "Ed25519 (move the file away to have a new key created)."
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a PEM file (a private key file is accepted too)."""
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProvenanceError(
            f"{path} is not a PEM public key ({exc}); use the instance's "
            f"{PUBLIC_KEY_FILENAME} from its data folder."
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ProvenanceError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 public key; use the instance's "
            f"{PUBLIC_KEY_FILENAME}."
        )
    return key


def instance_public_key(data_dir: Path) -> Ed25519PublicKey | None:
    """The public key of the instance whose data folder is ``data_dir``; None if it has no key."""
    for name in (PUBLIC_KEY_FILENAME, SIGNING_KEY_FILENAME):
        if (data_dir / name).is_file():
            return load_public_key(data_dir / name)
    return None


def earlier_public_keys(data_dir: Path) -> list[Ed25519PublicKey]:
    """The public keys this instance signed with before its current key (``provenance_keys/``)."""
    folder = Path(data_dir) / EARLIER_KEYS_DIRNAME
    if not folder.is_dir():
        return []
    return [load_public_key(path) for path in sorted(folder.glob("*.pub.pem"))]


def keep_earlier_public_key(data_dir: Path, public_key: Ed25519PublicKey) -> Path:
    """Write ``provenance_keys/<key id>.pub.pem`` (when missing): files signed with that key
    still verify as "signed by an earlier key of this instance" after a rotation."""
    folder = Path(data_dir) / EARLIER_KEYS_DIRNAME
    make_private_dirs(folder)
    path = folder / f"{key_id(public_key)}.pub.pem"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "wb") as fh:
            fh.write(public_key_pem(public_key))
    return path


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The public key as a PEM (SubjectPublicKeyInfo) file body."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """SHA-256 of the raw public key, hex (64 characters)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(raw_public_key(public)).hexdigest()


def short_key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The first 16 hex characters of :func:`key_id`, for display."""
    return key_id(key)[:SHORT_KEY_ID_CHARS]


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ProvenanceError(
            f"{what} file {path} does not exist; give the path of the instance's "
            f"{PUBLIC_KEY_FILENAME if what == 'public key' else SIGNING_KEY_FILENAME}."
        ) from exc
    except OSError as exc:
        raise ProvenanceError(
            f"cannot read the {what} file {path}: {exc.strerror or exc}; check its permissions "
            "(run as the instance's service account)."
        ) from exc
