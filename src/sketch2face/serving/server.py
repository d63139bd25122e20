"""``sketch2face serve-model``: a tiny HTTP app exposing the pipeline to remote web tiers.

    POST /v1/generate   multipart: sketch (image file), refine (0/1, default 1: both stages),
                        backdrop ("photo", the default, or "studio"), seed (int, optional),
                        skin / hair_color / gender (optional witness attributes)
                        -> 200 JSON {model_version, refiner_version, backdrop, timings_ms,
                                     notices, face_found, batch_size,
                                     images: {input, face, refined, studio}}
                           with base64 PNGs (face: stage one's; refined null when not refined;
                           studio: THE face on the studio backdrop, null unless backdrop is
                           "studio"); 400 {error} for bad images or a bad backdrop
    POST /v1/candidates multipart: sketch (image file), specs (JSON list of at most 12
                        {seed, attributes}), prepared (0/1: the sketch is already a 256x256
                        model input of an earlier round), refine (0/1, default 1), backdrop
                        ("photo", the default, or "studio")
                        -> 200 JSON {model_version, refiner_version, backdrop,
                                     attributes_applied, face_found, timings_ms, notices,
                                     images: {input, faces: [...], refined: [... or null],
                                              studio: [...]}}
                           with base64 PNGs in the order of specs (studio: one per candidate
                           with backdrop "studio", else empty); 400 {error} for bad images,
                           specs or backdrop
    GET  /v1/health     -> {status, model: {...}}

The backdrop (issue 22 item 3, :mod:`sketch2face.refine.backdrop`) is made here, by the pipeline,
like both stages: the face shown (refined, else stage one's) goes on the studio backdrop last, with
the prepared sketch the generator saw. ``backdrop`` in the answer says which one the faces are on;
a web tier that asked for "studio" refuses an answer without it (a server older than backdrops),
so the two tiers of one deployment run the same version.

The web tier's :class:`~sketch2face.serving.client.RemoteModelClient` is its only client. With
SKETCH2FACE_MODEL_TOKEN set, requests must carry ``Authorization: Bearer <token>``.
Production: ``gunicorn -w 1 --threads 8 'sketch2face.serving.server:create_model_app()'``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from sketch2face.candidates import ATTRIBUTE_FIELDS
from sketch2face.errors import InvalidImageError, Sketch2FaceError
from sketch2face.imaging import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_SKETCH_ASPECT,
    MIN_SKETCH_SIDE,
    decode_image_bytes,
)
from sketch2face.refine.backdrop import DEFAULT_BACKDROP, check_backdrop
from sketch2face.serving.client import (
    InProcessModelClient,
    ModelClient,
    candidates_output_to_json,
    model_output_to_json,
)

if TYPE_CHECKING:
    from sketch2face.candidates import CandidateSpec

log = logging.getLogger(__name__)


def create_model_app(
    client: ModelClient | None = None,
    *,
    token: str | None = None,
    max_upload_bytes: int = MAX_IMAGE_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
) -> Flask:
    """Build the model server; defaults come from SKETCH2FACE_CHECKPOINT/DEVICE/MODEL_TOKEN (the
    refiner from SKETCH2FACE_REFINER, GFPGAN weights or the packaged one: ``refine.resolve``)."""
    if client is None:
        client = InProcessModelClient(
            os.environ.get("SKETCH2FACE_CHECKPOINT") or None,
            os.environ.get("SKETCH2FACE_DEVICE") or None,
            max_batch=int(os.environ.get("SKETCH2FACE_MAX_BATCH") or 8),
        )
    if token is None:
        token = os.environ.get("SKETCH2FACE_MODEL_TOKEN") or None
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes + 64 * 1024

    @app.before_request
    def check_token() -> Any:
        if token is None or request.path == "/v1/health":
            return None
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return _error(401, "missing or wrong bearer token (SKETCH2FACE_MODEL_TOKEN)")
        return None

    @app.post("/v1/generate")
    def generate() -> Any:
        upload = request.files.get("sketch")
        if upload is None:
            return _error(400, "send the sketch as a multipart file field named 'sketch'")
        try:
            seed = int(request.form["seed"]) if request.form.get("seed") else None
        except ValueError:
            return _error(400, "seed must be an integer")
        refine = _flag(request.form.get("refine"), default=True)
        try:
            backdrop = parse_backdrop(request.form.get("backdrop"))
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            sketch_u8 = decode_image_bytes(
                upload.read(),
                name="sketch",
                max_pixels=max_image_pixels,
                min_side=MIN_SKETCH_SIDE,
                max_aspect=MAX_SKETCH_ASPECT,
            )
            attributes = {k: request.form[k] for k in ATTRIBUTE_FIELDS if request.form.get(k)}
            output = client.generate(
                sketch_u8, refine=refine, seed=seed, attributes=attributes, backdrop=backdrop
            )
        except InvalidImageError as exc:
            return _error(400, str(exc))
        except Sketch2FaceError as exc:
            log.exception("generation failed")
            return _error(503, str(exc))
        return jsonify(model_output_to_json(output))

    @app.post("/v1/candidates")
    def candidates() -> Any:
        upload = request.files.get("sketch")
        if upload is None:
            return _error(400, "send the sketch as a multipart file field named 'sketch'")
        prepared = _flag(request.form.get("prepared"), default=False)
        refine = _flag(request.form.get("refine"), default=True)
        try:
            backdrop = parse_backdrop(request.form.get("backdrop"))
            specs = parse_specs(request.form.get("specs", ""))
            sketch_u8 = decode_image_bytes(
                upload.read(),
                name="sketch",
                max_pixels=max_image_pixels,
                min_side=MIN_SKETCH_SIDE,
                max_aspect=MAX_SKETCH_ASPECT,
            )
            output = client.candidates(
                sketch_u8, specs, prepared=prepared, refine=refine, backdrop=backdrop
            )
        except ValueError as exc:  # InvalidImageError, CandidateError, bad attributes/backdrop
            return _error(400, str(exc))
        except Sketch2FaceError as exc:
            log.exception("candidate generation failed")
            return _error(503, str(exc))
        return jsonify(candidates_output_to_json(output))

    @app.get("/v1/health")
    def health() -> Any:
        return jsonify(status="ok", model=client.describe())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return _error(exc.code or 500, exc.description or exc.name)

    return app


def parse_backdrop(value: str | None) -> str:
    """The ``backdrop`` field of ``/v1/generate`` and ``/v1/candidates``: "photo" when absent or
    empty, else one of ``refine.backdrop.BACKDROPS``; a ValueError naming the choices
    otherwise."""
    if not value:
        return DEFAULT_BACKDROP
    return check_backdrop(value)


def parse_specs(text: str) -> list[CandidateSpec]:
    """The ``specs`` field of ``/v1/candidates``: a JSON list of ``{seed, attributes}``;
    CandidateError (a ValueError) saying what is wrong otherwise."""
    from sketch2face.candidates import (
        MAX_CANDIDATES,
        CandidateError,
        CandidateSpec,
        clean_attributes,
    )

    try:
        raw = json.loads(text)
    except ValueError:
        raise CandidateError("specs must be a JSON list of {seed, attributes}") from None
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CANDIDATES:
        raise CandidateError(f"specs must be a JSON list of 1 to {MAX_CANDIDATES} items")
    specs = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("seed"), int):
            raise CandidateError("each spec needs an integer seed")
        attributes = item.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise CandidateError("spec attributes must be an object")
        specs.append(CandidateSpec(item["seed"], clean_attributes(attributes)))
    return specs


def _flag(value: str | None, *, default: bool) -> bool:
    """A 0/1 form field: ``default`` when absent or empty, else true for 1/true/yes/on."""
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _error(status: int, message: str) -> Any:
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response
