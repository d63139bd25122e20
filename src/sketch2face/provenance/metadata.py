"""``Provenance``: what an exported file says about where it came from, as canonical JSON.

The JSON is what gets signed, byte for byte: keys sorted, no spaces, UTF-8. A verifier hashes the
stored text exactly as found, so any edit (even one that parses to the same values) is detected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sketch2face import __version__
from sketch2face.errors import ProvenanceError

SOFTWARE = "sketch2face"
STATEMENT = "AI-generated likeness, not a photograph"
#: bumped when fields change meaning; verifiers read older formats
FORMAT_VERSION = 1
#: what the file is
KIND_FACE = "face"
KIND_APPEAL_SHEET = "appeal-sheet"
#: ``refiner_id`` of a face no second stage touched (stage one's face alone)
NO_REFINER = "none"


@dataclass(frozen=True)
class Provenance:
    """Where an exported image or sheet came from; signed with the instance key."""

    #: "face" (a generated PNG) or "appeal-sheet" (the printable PDF)
    kind: str
    #: model that made the face, e.g. ``pix2pix-unet-ngf64-256px-step6000``; None = not known
    model_id: str | None = None
    #: SHA-256 (hex) of the model weights file; None = not known
    model_sha256: str | None = None
    generation_id: str | None = None
    case_number: str | None = None
    #: UTC time of signing, ISO-8601 with a ``Z``, e.g. ``2026-05-12T09:30:00Z``
    created_at: str = ""
    statement: str = STATEMENT
    #: SHA-256 (hex) of the raw Ed25519 public key that signs the file (set by the signer)
    key_id: str = ""
    software: str = SOFTWARE
    software_version: str = __version__
    format_version: int = FORMAT_VERSION
    #: the second stage that refined the face, e.g. ``refine-unet-ngf32-step800@<sha12>``;
    #: ``"none"`` (:data:`NO_REFINER`) when stage one's face is shown; None = not recorded
    #: (records signed before both stages were named)
    refiner_id: str | None = None
    #: SHA-256 (hex) of the refiner's weights file; None = none, or not known
    refiner_sha256: str | None = None
    #: background of the face: "photo" (the networks' own) or "studio" (``refine.backdrop``);
    #: None = not recorded
    backdrop: str | None = None

    @classmethod
    def create(
        cls,
        kind: str,
        *,
        model_id: str | None = None,
        model_sha256: str | None = None,
        generation_id: str | None = None,
        case_number: str | None = None,
        refiner_id: str | None = None,
        refiner_sha256: str | None = None,
        backdrop: str | None = None,
        now: datetime | None = None,
    ) -> Provenance:
        """New metadata stamped with the current UTC time and this software's version.

        ``refiner_id``: the second stage's version, :data:`NO_REFINER` when the face is stage
        one's alone, None when not known; ``backdrop``: "photo" or "studio" (None: not known).
        """
        if kind not in (KIND_FACE, KIND_APPEAL_SHEET):
            raise ValueError(
                f"unknown provenance kind {kind!r}; use {KIND_FACE!r} or {KIND_APPEAL_SHEET!r}"
            )
        return cls(
            kind=kind,
            model_id=model_id or None,
            model_sha256=model_sha256 or None,
            generation_id=generation_id or None,
            case_number=(case_number or "").strip() or None,
            created_at=utc_timestamp(now),
            refiner_id=refiner_id or None,
            refiner_sha256=refiner_sha256 or None,
            backdrop=backdrop or None,
        )

    def with_key_id(self, key_id: str) -> Provenance:
        """A copy naming the signing key."""
        return dataclasses.replace(self, key_id=key_id)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace, non-ASCII kept as UTF-8."""
        return canonical_json(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        """Parse stored metadata; unknown keys (from a newer version) are ignored."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProvenanceError(f"the provenance metadata is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ProvenanceError("the provenance metadata is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"kind", "created_at", "key_id"} - data.keys()
        if missing:
            raise ProvenanceError(f"the provenance metadata lacks {', '.join(sorted(missing))}")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise ProvenanceError(f"the provenance metadata is malformed ({exc})") from exc

    def summary_lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs for people, in reading order; unknown values say so."""
        return [
            ("Statement", self.statement),
            ("Case number", self.case_number or "none"),
            ("Generation", self.generation_id or "not recorded"),
            ("Made", self.created_at),
            ("Software", f"{self.software} {self.software_version}"),
            ("Model", self.model_id or "not recorded"),
            ("Model weights SHA-256", self.model_sha256 or "not recorded"),
            ("Refiner", _refiner_text(self.refiner_id)),
            ("Refiner weights SHA-256", _refiner_sha_text(self.refiner_id, self.refiner_sha256)),
            ("Backdrop", _BACKDROP_TEXT.get(self.backdrop or "", self.backdrop or "not recorded")),
            ("Signing key id", self.key_id),
            ("Document", self.kind),
        ]


_BACKDROP_TEXT = {
    "photo": "photo (the networks' own background)",
    "studio": "studio (plain backdrop put behind the head)",
}


def _refiner_text(refiner_id: str | None) -> str:
    if refiner_id is None:
        return "not recorded (signed before the refiner was named)"
    if refiner_id == NO_REFINER:
        return "none (stage one's face alone)"
    return refiner_id


def _refiner_sha_text(refiner_id: str | None, refiner_sha256: str | None) -> str:
    if refiner_sha256:
        return refiner_sha256
    return "none" if refiner_id == NO_REFINER else "not recorded"


def refiner_stamp(refiner: Any) -> tuple[str, str | None]:
    """(``refiner_id``, ``refiner_sha256``) for provenance of a face made with ``refiner`` (a
    loaded ``Refiner``, or None when no second stage ran): its version (else name) and the
    SHA-256 of its weights file (``path`` of the project's refiner, ``weights_path`` of GFPGAN;
    None when it has none or it cannot be read); ``(NO_REFINER, None)`` without one."""
    if refiner is None:
        return NO_REFINER, None
    version = str(getattr(refiner, "version", None) or getattr(refiner, "name", "") or "unknown")
    path = getattr(refiner, "path", None) or getattr(refiner, "weights_path", None)
    if not path:
        return version, None
    try:
        return version, weights_sha256(Path(path))
    except ProvenanceError:
        return version, None


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace (the signed form)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def utc_timestamp(now: datetime | None = None) -> str:
    """ISO-8601 UTC time to the second with a ``Z`` suffix."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def weights_sha256(path: Path) -> str:
    """SHA-256 (hex) of a weights file, computed once per (path, size, mtime)."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise ProvenanceError(
            f"cannot read the model weights {path} to fingerprint them: {exc.strerror or exc}"
        ) from exc
    cache_key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    with _DIGESTS_LOCK:
        if cache_key in _DIGESTS:
            return _DIGESTS[cache_key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _DIGESTS_LOCK:
        _DIGESTS[cache_key] = value
    return value


def default_checkpoint_path(checkpoint: str | Path | None = None) -> Path:
    """The weights file a pipeline would load: ``checkpoint``, else ``$SKETCH2FACE_CHECKPOINT``,
    else the packaged model (the same order as ``Sketch2Face.from_pretrained``, without torch)."""
    chosen = checkpoint or os.environ.get("SKETCH2FACE_CHECKPOINT") or None
    if chosen:
        return Path(chosen)
    return Path(__file__).resolve().parents[1] / "assets" / "default" / "sketch2face.safetensors"
