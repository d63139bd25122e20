"""``WebSettings``: every knob of the web app, read from ``SKETCH2FACE_*`` environment variables.

docs/web.md lists each variable; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sketch2face.errors import ConfigError
from sketch2face.private_files import make_private_dirs

ENV_PREFIX = "SKETCH2FACE_"
SECRET_KEY_FILENAME = "secret_key"


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{ENV_PREFIX}{name}={value!r} is not a boolean; use 1/0, true/false.")


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name}={value!r} is not an integer.") from exc


@dataclass(frozen=True)
class WebSettings:
    """Resolved settings of one web app instance (see docs/web.md)."""

    #: folder for the default SQLite db, local images and the generated secret key
    data_dir: Path = Path("instance")
    secret_key: str | None = None
    #: SQLAlchemy URL; None -> sqlite:///<data_dir>/sketch2face.db
    database_url: str | None = None
    #: folder, file:///path or s3://bucket/prefix; None -> <data_dir>/objects
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    #: None -> run the pipeline in-process; else base URL of `sketch2face serve-model`
    model_url: str | None = None
    model_token: str | None = None
    model_timeout_s: float = 120.0
    #: generator checkpoint for the in-process model; None -> the packaged default
    checkpoint: str | None = None
    #: refiner checkpoint of the in-process model (``serve --refiner``; "none": off); None ->
    #: SKETCH2FACE_REFINER, GFPGAN weights or the packaged refiner (refine/resolve.py reads them)
    refiner: str | None = None
    device: str | None = None
    #: most queued generations run as one batch by the in-process model
    max_batch: int = 8
    open_signup: bool = False
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 16_000_000
    ratelimit_enabled: bool = True
    ratelimit_storage_uri: str = "memory://"
    #: failed sign-ins for one account from one address before the backoff starts
    login_account_failures: int = 5
    #: failed sign-ins from one address, any accounts, before the whole address backs off
    login_address_failures: int = 30
    #: generations per user, pages and API together (a candidate face counts as one): a witness
    #: session of ten rounds of 12 faces in five minutes (120) stays within it
    generate_rate_limit: str = "150 per 5 minutes"
    #: most live (unrevoked) API tokens one user may hold
    max_api_tokens: int = 10
    history_page_size: int = 20
    #: contact line printed on appeal sheets ("If you recognise this person ... contact: <this>");
    #: None -> the sheet asks the investigator for one
    appeal_contact: str | None = None
    #: run `alembic upgrade head` when the app starts
    auto_migrate: bool = True
    #: start although the data folder's provenance key is not the one the database recorded:
    #: it becomes the current key, earlier public keys stay (services/signing_keys.py)
    rotate_signing_key: bool = False
    #: Secure session cookie: always over HTTPS; True -> also over plain HTTP; False -> HTTPS
    #: only; None -> also over plain HTTP except to a loopback host and in debug/testing
    #: (web/security/headers.py cookie_is_secure)
    secure_cookies: bool | None = None
    #: trust one X-Forwarded-* hop (behind nginx/a load balancer)
    behind_proxy: bool = False
    debug: bool = False
    testing: bool = False
    extra_flask_config: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> WebSettings:
        """Build settings from ``SKETCH2FACE_*`` variables; keyword ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def get(name: str) -> str | None:
            raw = env.get(ENV_PREFIX + name)
            return raw if raw not in (None, "") else None

        strings = {
            "SECRET_KEY": "secret_key",
            "DATABASE_URL": "database_url",
            "STORAGE_URL": "storage_url",
            "S3_ENDPOINT_URL": "s3_endpoint_url",
            "S3_REGION": "s3_region",
            "S3_ACCESS_KEY_ID": "s3_access_key_id",
            "S3_SECRET_ACCESS_KEY": "s3_secret_access_key",
            "MODEL_URL": "model_url",
            "MODEL_TOKEN": "model_token",
            "CHECKPOINT": "checkpoint",
            "DEVICE": "device",
            "RATELIMIT_STORAGE_URI": "ratelimit_storage_uri",
            "GENERATE_RATE_LIMIT": "generate_rate_limit",
            "APPEAL_CONTACT": "appeal_contact",
        }
        for env_name, attr in strings.items():
            if (raw := get(env_name)) is not None:
                values[attr] = raw
        for env_name, attr in {
            "OPEN_SIGNUP": "open_signup",
            "RATELIMIT_ENABLED": "ratelimit_enabled",
            "AUTO_MIGRATE": "auto_migrate",
            "ROTATE_SIGNING_KEY": "rotate_signing_key",
            "SECURE_COOKIES": "secure_cookies",
            "BEHIND_PROXY": "behind_proxy",
            "DEBUG": "debug",
        }.items():
            if (raw := get(env_name)) is not None:
                values[attr] = _bool(env_name, raw)
        for env_name, attr in {
            "MAX_UPLOAD_BYTES": "max_upload_bytes",
            "MAX_IMAGE_PIXELS": "max_image_pixels",
            "HISTORY_PAGE_SIZE": "history_page_size",
            "MAX_BATCH": "max_batch",
            "LOGIN_ACCOUNT_FAILURES": "login_account_failures",
            "LOGIN_ADDRESS_FAILURES": "login_address_failures",
            "MAX_API_TOKENS": "max_api_tokens",
        }.items():
            if (raw := get(env_name)) is not None:
                values[attr] = _int(env_name, raw)
        if (raw := get("MODEL_TIMEOUT_S")) is not None:
            try:
                values["model_timeout_s"] = float(raw)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}MODEL_TIMEOUT_S={raw!r} is not a number.") from exc
        if (raw := get("DATA_DIR")) is not None:
            values["data_dir"] = Path(raw)
        if "secret_key" not in values and (raw := get("SECRET_KEY_FILE")) is not None:
            values["secret_key"] = read_secret_key_file(Path(raw))
        values.update(overrides)
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return cls(**values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> WebSettings:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sketch2face.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        """The storage URL, defaulting to ``<data_dir>/objects``."""
        return self.storage_url or str((self.data_dir / "objects").resolve())

    @property
    def use_secure_cookies(self) -> bool:
        """The Secure flag outside a request (Flask's config); each answer decides by its request
        (``web.security.headers.cookie_is_secure``)."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return not (self.debug or self.testing)

    def storage_options(self) -> dict[str, str | None]:
        """S3 options handed to :func:`sketch2face.storage.open_store`."""
        return {
            "endpoint_url": self.s3_endpoint_url,
            "region": self.s3_region,
            "access_key_id": self.s3_access_key_id,
            "secret_access_key": self.s3_secret_access_key,
        }


def read_secret_key_file(path: Path) -> str:
    """Read a secret key file, refusing an empty one."""
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the secret key file {path}: {exc}") from exc
    if len(key) < 16:
        raise ConfigError(f"the secret key in {path} is shorter than 16 characters; replace it.")
    return key


def ensure_secret_key_file(data_dir: Path) -> str:
    """Return the key in ``<data_dir>/secret_key``, creating it (random, mode 0600) on first use."""
    make_private_dirs(data_dir)
    path = data_dir / SECRET_KEY_FILENAME
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 and os.name == "posix":
            path.chmod(0o600)  # tighten a key that was copied around with loose permissions
        return read_secret_key_file(path)
    key = secrets.token_urlsafe(48)
    # write a private temp file, then link it into place: atomic, and never overwrites a key that
    # a concurrent process created first (link fails with FileExistsError).
    tmp = data_dir / f".{SECRET_KEY_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(key + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return read_secret_key_file(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key
