"""``generate_for``: sketch bytes -> model -> object store -> database row, shared by pages and API.

Order matters for consistency: images are written first, then the row and its audit event are
committed in one transaction; if anything fails, the transaction is rolled back and every object
already written is deleted, so a failure leaves neither a half record nor an orphaned file.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy.orm import Session, joinedload

from sketch2face.attributes import FaceAttributes
from sketch2face.candidates import ATTRIBUTE_FIELDS  # form / API fields of witness attributes
from sketch2face.db.models import Generation, User, as_utc, utcnow
from sketch2face.errors import InvalidImageError
from sketch2face.imaging import MAX_SKETCH_ASPECT, MIN_SKETCH_SIDE, decode_image_bytes
from sketch2face.refine.backdrop import BACKDROPS, DEFAULT_BACKDROP, check_backdrop
from sketch2face.services import audit
from sketch2face.services.attribute_check import check_faces, verdict_text
from sketch2face.services.listing import Listing, contains_pattern
from sketch2face.services.runtime import get_model_client, get_session, get_settings, get_store
from sketch2face.services.signing import loaded_refiner_sha256, loaded_weights_sha256
from sketch2face.storage import StorageError

log = logging.getLogger(__name__)

LIKENESS_NOTICE = "Generated likeness, not a photograph of a real person."
IMAGE_KINDS = ("sketch", "face", "refined", "studio")


def attributes_from_form(form: Any) -> tuple[tuple[str, str], ...]:
    """The attribute fields present in a request form, as GenerationOptions wants them."""
    return tuple((k, str(form.get(k, "")).strip()) for k in ATTRIBUTE_FIELDS if form.get(k))


SOURCES = ("upload", "canvas", "api")
MAX_CASE_CHARS = 64
MAX_NOTES_CHARS = 4000
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class GenerationOptions:
    """What the user chose besides the sketch; ``refine`` (default on) runs the second stage."""

    refine: bool = True
    case_number: str | None = None
    notes: str | None = None
    source: str = "upload"
    seed: int | None = None
    #: witness attributes as sorted (name, value) pairs: skin, hair_color, gender (unset = omitted)
    attributes: tuple[tuple[str, str], ...] = ()
    #: "photo" (the networks' background) or "studio" (the shown face on the studio backdrop)
    backdrop: str = DEFAULT_BACKDROP

    def cleaned(self) -> GenerationOptions:
        """Trimmed copy; raises ValueError with a user-facing message on bad values."""
        for label, text, limit in (
            ("The case number", self.case_number, MAX_CASE_CHARS),
            ("Notes", self.notes, MAX_NOTES_CHARS),
        ):
            if text and len(text) > limit:  # as sent, like the API's maxLength
                raise ValueError(f"{label} can be at most {limit} characters.")
            if text and "\x00" in text:  # PostgreSQL cannot store it; nobody types it
                raise ValueError(f"{label} contains a NUL character (\\x00); remove it.")
        case = (self.case_number or "").strip() or None
        notes = (self.notes or "").strip() or None
        if self.source not in SOURCES:
            raise ValueError(f"Unknown source {self.source!r}.")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"The variation seed must be a whole number from 0 to {MAX_SEED}.")
        attributes = tuple(sorted((k, v.strip()) for k, v in self.attributes if v and v.strip()))
        FaceAttributes.from_request(dict(attributes))  # ValueError says what is allowed
        try:
            backdrop = check_backdrop(self.backdrop)
        except ValueError:
            raise ValueError(
                f"The backdrop must be one of {', '.join(BACKDROPS)}, not {self.backdrop!r}."
            ) from None
        return GenerationOptions(
            self.refine, case, notes, self.source, self.seed, attributes, backdrop
        )


def _png(image_u8: np.ndarray, *, comment: str | None = None) -> bytes:
    """PNG bytes; generated images carry the likeness notice in a tEXt chunk."""
    info = PngInfo()
    if comment:
        info.add_text("Comment", comment)
        info.add_text("Software", "sketch2face")
    buf = io.BytesIO()
    Image.fromarray(image_u8).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def decode_sketch(image_bytes: bytes) -> np.ndarray:
    """Decode an upload with the app's byte and pixel limits and the size a face needs (real
    decoding, not the name)."""
    settings = get_settings()
    if not image_bytes:
        raise InvalidImageError(
            "The upload is empty (0 bytes); choose an image file or draw a sketch."
        )
    if len(image_bytes) > settings.max_upload_bytes:
        raise InvalidImageError(
            f"The upload is {len(image_bytes)} bytes; the limit is {settings.max_upload_bytes}."
        )
    return decode_image_bytes(
        image_bytes,
        name="the uploaded sketch",
        max_pixels=settings.max_image_pixels,
        min_side=MIN_SKETCH_SIDE,
        max_aspect=MAX_SKETCH_ASPECT,
    )


def generate_for(user: User, image_bytes: bytes, options: GenerationOptions) -> Generation:
    """Validate, generate, store and record one generation for ``user``.

    A case number links the generation to that case: one of ``user``'s open cases, or a new
    number, which opens a case with ``user`` as its member (``case_records.case_for_generation``;
    someone else's case or a closed one is a ValueError before the model runs).
    """
    from sketch2face.services.cases import case_for_generation

    options = options.cleaned()
    case_for_generation(get_session(), user, options.case_number, create=False)  # check first
    sketch_u8 = decode_sketch(image_bytes)
    started = time.perf_counter()
    output = get_model_client().generate(
        sketch_u8,
        refine=options.refine,
        seed=options.seed,
        attributes=dict(options.attributes),
        backdrop=options.backdrop,  # the model tier puts THE face on it (studio_u8)
    )
    model_ms = (time.perf_counter() - started) * 1000

    generation = Generation(id=uuid.uuid4().hex, user_id=user.id, created_at=utcnow())
    prefix = f"generations/{user.id}/{generation.id}"
    comment = f"sketch2face: {LIKENESS_NOTICE} Model {output.model_version}."
    images = {"sketch": (sketch_u8, None), "face": (output.face_u8, comment)}
    if output.refined_u8 is not None:
        images["refined"] = (output.refined_u8, comment)
    # "studio": THE face on the studio backdrop, as the model tier made it; stage one's and the
    # refined face stay as made
    if output.studio_u8 is not None:
        images["studio"] = (output.studio_u8, comment)
    shown_u8 = output.shown_u8

    store = get_store()
    session = get_session()
    written: list[str] = []
    try:
        for kind, (image_u8, text) in images.items():
            key = f"{prefix}/{kind}.png"
            written.append(key)  # before the put: a put that fails late may still have stored it
            store.put(key, _png(image_u8, comment=text), content_type="image/png")
        case = case_for_generation(session, user, options.case_number, create=True)
        generation.case_id = case.id if case is not None else None
        generation.case_number = options.case_number
        generation.notes = options.notes
        generation.source = options.source
        generation.refine_requested = options.refine
        generation.sketch_key = f"{prefix}/sketch.png"
        generation.face_key = f"{prefix}/face.png"
        generation.refined_key = f"{prefix}/refined.png" if "refined" in images else None
        generation.model_version = output.model_version
        generation.timings_ms = {**output.timings_ms, "model_call": round(model_ms, 1)}
        generation.details = {
            "notices": output.notices,
            "face_found": output.face_found,
            "seed": options.seed,
            "attributes": dict(options.attributes),
            "batch_size": output.batch_size,
            # what the second stage was (None: the face shown is stage one's)
            "refiner": output.refiner_version or None,
            "refiner_sha256": loaded_refiner_sha256(output.refiner_version),
            # the background of THE face, as the model tier made it; "studio": it is studio.png
            # (Generation.shown_key)
            "backdrop": output.backdrop,
            **({"studio_key": f"{prefix}/studio.png"} if "studio" in images else {}),
            # checked on THE face: the refined one when there is one
            "attribute_check": check_faces([shown_u8], [dict(options.attributes)])[0],
            # the weights' fingerprint for signed exports, while the model that made it is known
            "model_sha256": loaded_weights_sha256(output.model_version),
        }
        session.add(generation)
        audit.record(
            session,
            audit.GENERATE,
            user,
            generation_id=generation.id,
            case_id=generation.case_id,
            case_number=options.case_number,
            source=options.source,
            refine=options.refine,
        )
        session.commit()
    except BaseException:
        session.rollback()
        _delete_quietly(written)
        raise
    log.info("generation %s for user %s in %.0f ms", generation.id, user.id, model_ms)
    return generation


def delete_generation(user: User, generation: Generation) -> None:
    """Delete the row (with an audit event) and then its images.

    The row goes first: a crash after the commit can leave unreferenced files (logged) but never a
    row pointing at missing images.
    """
    session = get_session()
    keys = list(generation.image_keys.values())
    audit.record(
        session,
        audit.DELETE,
        user,
        generation_id=generation.id,
        case_id=generation.case_id,
        owner_id=generation.user_id,
        case_number=generation.case_number,
    )
    session.delete(generation)
    session.commit()
    _delete_quietly(keys)


def _delete_quietly(keys: list[str]) -> None:
    store = get_store()
    for key in keys:
        try:
            store.delete(key)
        except StorageError:
            log.exception("could not delete object %s; remove it by hand", key)


# ------------------------------------------------------------------ what pages and the API show

#: labels of the witness attributes, in form order
ATTRIBUTE_LABELS = {"skin": "Skin tone", "hair_color": "Hair colour", "gender": "Gender"}
#: what non-administrators read instead of the pipeline's technical notices, which can name
#: settings and command-line options (administrators see the original text)
REFINE_UNAVAILABLE_NOTICE = (
    "Refinement is not available on this server; the generated face is shown unrefined."
)
ATTRIBUTES_IGNORED_NOTICE = (
    "This model does not use the witness description (skin tone, hair colour, gender); "
    "it was not applied."
)
OTHER_NOTICE = "The model reported a technical notice; an administrator can see it."


#: what pages say about each backdrop (``refine.backdrop.BACKDROPS``)
BACKDROP_LABELS = {
    "photo": "Photo (the background the model paints)",
    "studio": "Plain studio backdrop",
}


def backdrop_of(details: Mapping[str, Any] | None) -> str:
    """The backdrop a generation or a candidate round was made on, from its ``details``:
    "photo" or "studio"; records made before backdrops existed are "photo"."""
    return str((details or {}).get("backdrop") or DEFAULT_BACKDROP)


def backdrop_label(details: Mapping[str, Any] | None) -> str:
    """What a page says about the backdrop of a generation or round (its ``details``)."""
    backdrop = backdrop_of(details)
    return BACKDROP_LABELS.get(backdrop, backdrop)


def requested_attributes(generation: Generation) -> dict[str, str]:
    """The witness attributes the generation was asked for (name -> value; unset ones absent)."""
    stored = generation.details.get("attributes") or {}
    return {k: str(stored[k]) for k in ATTRIBUTE_FIELDS if stored.get(k)}


def generation_record(generation: Generation) -> dict[str, Any]:
    """The fields every JSON view of a generation shares (API answers, case exports): who made
    it, when, for which case, with which model, seed, witness description and backdrop."""
    return {
        "id": generation.id,
        "created_at": as_utc(generation.created_at).isoformat(),
        "owner": generation.user.username if generation.user else None,
        "case_number": generation.case_number,
        "notes": generation.notes,
        "source": generation.source,
        "refine": generation.refine_requested,
        "model_version": generation.model_version,
        "seed": generation.details.get("seed"),
        "attributes": requested_attributes(generation),
        "backdrop": backdrop_of(generation.details),
    }


def describe_attributes(attributes: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, value) pairs for a page, e.g. ``[("Skin tone", "very light")]``."""
    return [
        (ATTRIBUTE_LABELS[k], v if v.startswith("#") else v.replace("-", " "))
        for k in ATTRIBUTE_FIELDS
        if (v := attributes.get(k))
    ]


def attribute_labels(
    attributes: Mapping[str, Any],
    checks: Mapping[str, Any] | None,
    specified: Iterable[str] | None = None,
) -> list[str]:
    """What a face's caption says about each attribute asked of the model, measured on the face
    (:mod:`~sketch2face.services.attribute_check`): "Skin tone: dark, shown" or "..., asked for,
    not shown"; attributes not in ``specified`` (a candidate's varied ones; default: all are
    specified) read as the model's choice, not as a description."""
    wanted = set(ATTRIBUTE_FIELDS if specified is None else specified)
    lines = []
    for key in ATTRIBUTE_FIELDS:
        value = str(attributes.get(key) or "")
        if not value:
            continue
        label = ATTRIBUTE_LABELS[key]
        shown = value if value.startswith("#") else value.replace("-", " ")
        verdict = (checks or {}).get(key)
        if key in wanted:
            lines.append(f"{label}: {shown}, {verdict_text(verdict)}")
        else:
            seen = verdict_text(verdict).replace("asked for, ", "")
            lines.append(f"{label}: model's choice ({shown}, {seen})")
    return lines


def _is_admin(viewer: Any) -> bool:
    return bool(getattr(viewer, "is_admin", False))


def viewer_notices(notices: Iterable[str], viewer: Any) -> list[str]:
    """Notices as ``viewer`` may read them: the pipeline's own text for administrators, a plain
    sentence for everyone else (no setting names or command-line options)."""
    if _is_admin(viewer):
        return list(notices)
    shown: list[str] = []
    for text in notices:
        lowered = text.lower()
        if lowered.startswith("refinement skipped"):
            plain = REFINE_UNAVAILABLE_NOTICE
        elif "attribute-conditioned" in lowered:
            plain = ATTRIBUTES_IGNORED_NOTICE
        elif "sketch2face_" in lowered or "--" in text:
            plain = OTHER_NOTICE
        else:
            plain = text
        if plain not in shown:
            shown.append(plain)
    return shown


def refine_available() -> bool:
    """Whether the app's model can refine faces (a refiner is installed or configured:
    ``refine.resolve``); the refine option is offered, switched on, only then."""
    check = getattr(get_model_client(), "refine_available", None)
    if check is None:
        return False
    try:
        return bool(check())
    except Exception:  # a status question must never break a page
        log.exception("could not tell whether refinement is available")
        return False


def recent_generations(session: Session, user_id: int, limit: int = 30) -> list[Generation]:
    """The newest ``limit`` generations made by user ``user_id``, newest first."""
    return list(
        session.scalars(
            sa.select(Generation)
            .where(Generation.user_id == user_id)
            .order_by(Generation.created_at.desc())
            .limit(limit)
        ).all()
    )


def history_listing(user_id: int | None, case_query: str = "") -> Listing[Generation]:
    """Generations newest first, each with its user loaded: only user ``user_id``'s unless it is
    None (everyone's); a non-empty ``case_query`` keeps those whose case number contains it
    (case-insensitive, LIKE characters literal)."""
    stmt = sa.select(Generation)
    if user_id is not None:
        stmt = stmt.where(Generation.user_id == user_id)
    if case_query:
        stmt = stmt.where(Generation.case_number.ilike(contains_pattern(case_query), escape="\\"))
    return Listing(
        stmt,
        (Generation.created_at.desc(), Generation.id.desc()),
        (joinedload(Generation.user),),
    )
