"""Cases and candidate rounds in the API (/api/v1, bearer tokens, JSON errors).

    GET  /cases                                      the cases you can see (admins: all)
    POST /cases                                      create (number, title, notes) -> 201; 409 taken
    GET  /cases/{case_id}                            the case, members, sketches, rounds
    POST /cases/{case_id}/candidates                 a first round for a sketch -> 201
    GET  /cases/{case_id}/rounds/{round_id}          one round
    POST /cases/{case_id}/rounds/{round_id}/next     "more like these" from chosen ids -> 201
    GET  /cases/{case_id}/rounds/{round_id}/grid     the round as one numbered PNG
    GET  /cases/{case_id}/candidates/{candidate_id}/image   one candidate's PNG
    POST /cases/{case_id}/likeness                   mark a candidate or a generation

Everything of a case answers 404 to anyone who is not a member (administrators see all), through
:func:`sketch2face.web.security.access.get_case_for`, exactly like the pages. Forms are checked as the
OpenAPI document (:func:`openapi_additions`, merged into ``api.openapi_document``) declares them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, g, jsonify, request, url_for
from werkzeug.exceptions import NotFound

from sketch2face.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES
from sketch2face.db.models import CASE_STATUSES, CandidateRound, Case, User, as_utc
from sketch2face.services.candidate_rounds import breed_round, round_grid_png, start_round
from sketch2face.services.cases import (
    MAX_NOTES_CHARS,
    MAX_NUMBER_CHARS,
    MAX_TITLE_CHARS,
    case_generations,
    case_listing,
    case_summary,
    create_case,
    members_of,
    set_likeness,
)
from sketch2face.services.generation import (
    BACKDROPS,
    LIKENESS_NOTICE,
    backdrop_of,
    viewer_notices,
)
from sketch2face.web.api import fields
from sketch2face.web.api.auth import token_required
from sketch2face.web.database import get_session
from sketch2face.web.paging import page_of, requested_page
from sketch2face.web.responses import stored_image
from sketch2face.web.security.access import (
    get_case_candidate,
    get_case_for,
    get_case_generation,
    get_case_round,
)
from sketch2face.web.security.headers import NO_STORE

#: the case number field of POST /cases (issue 25: look-alikes are one case)
CASE_NUMBER_DESCRIPTION = (
    "Unique case number: no control or invisible formatting characters, at least one letter "
    "or digit; numbers that differ only in letter case or Unicode compatibility forms (NFKC) "
    "are the same case"
)
bp = Blueprint("cases_api", __name__, url_prefix="/api/v1")
T = TypeVar("T")
API_PAGE_SIZE = 50
MAX_PAGE = 2**31 - 1
_COUNT = re.compile(r"^[0-9]{1,2}$")
_IDS = re.compile(r"^[0-9]{1,10}(,[0-9]{1,10}){0,11}$")


def _in_case(lookup: Callable[..., T], case: Case, ref: Any, field: str) -> T:
    """An id sent in the form that must belong to ``case``: unknown or another case's is a 409
    naming the field (404 stays for what the path names: the case itself)."""
    try:
        return lookup(case, ref)
    except NotFound:
        abort(409, description=f"{field} {str(ref)[:40]!r} is not part of case {case.number}.")


def _user() -> User:
    user: User = g.api_user
    return user


def _fail(exc: Exception) -> Any:
    status = getattr(exc, "status", 400)
    abort(status, description=str(exc))


def _count(form: Mapping[str, str]) -> int:
    """``n``: the number of candidates, 1..MAX_CANDIDATES (absent: the default)."""
    value = form.get("n")
    if value is None:
        return DEFAULT_CANDIDATES
    if not _COUNT.fullmatch(value) or not 1 <= int(value) <= MAX_CANDIDATES:
        raise ValueError(
            f"n must be a whole number from 1 to {MAX_CANDIDATES}, not {value[:20]!r}."
        )
    return int(value)


def _text_field(form: Mapping[str, str], name: str, limit: int) -> str | None:
    value = form.get(name)
    if value is not None and (len(value) > limit or "\x00" in value):
        raise ValueError(f"{name} must be at most {limit} characters without NUL characters.")
    return value


# ------------------------------------------------------------------------------------ JSON views
def case_json(case: Case, *, full: bool = False) -> dict[str, Any]:
    """A case as JSON; ``full`` adds members, sketches (generations) and rounds."""
    body = case_summary(case)
    body["url"] = url_for("cases_api.get_case", case_id=case.id, _external=True)
    body["likeness_image"] = (
        url_for(
            "cases_api.candidate_image",
            case_id=case.id,
            candidate_id=case.likeness_candidate_id,
            _external=True,
        )
        if case.likeness_candidate_id is not None
        else url_for(
            "api.image", generation_id=case.likeness_generation_id, kind="face", _external=True
        )
        if case.likeness_generation_id is not None
        else None
    )
    if full:
        session = get_session()
        body["members"] = [m.user.username for m in members_of(session, case)]
        body["generations"] = [
            {
                "id": gen.id,
                "created_at": as_utc(gen.created_at).isoformat(),
                "owner": gen.user.username if gen.user else None,
                "url": url_for("api.get_generation", generation_id=gen.id, _external=True),
            }
            for gen in case_generations(session, case)
        ]
        body["rounds"] = [round_json(r) for r in case.rounds]
    body["notice"] = LIKENESS_NOTICE
    return body


def round_json(round_: CandidateRound) -> dict[str, Any]:
    """A candidate round with its candidates and their image URLs, and the backdrop its faces
    are on (``details["backdrop"]``; rounds made before backdrops: "photo")."""
    case = round_.case
    return {
        "id": round_.id,
        "number": round_.number,
        "case_id": round_.case_id,
        "generation_id": round_.generation_id,
        "parent_round_id": round_.parent_id,
        "chosen_candidate_ids": list(round_.chosen_candidate_ids),
        "fixed_attributes": dict(round_.fixed_attributes),
        "model_version": round_.model_version,
        "attributes_applied": bool(round_.details.get("attributes_applied", True)),
        "backdrop": backdrop_of(round_.details),
        "notices": viewer_notices(round_.details.get("notices", []), g.api_user),
        "created_at": as_utc(round_.created_at).isoformat(),
        "created_by": round_.created_by.username if round_.created_by else None,
        "grid": url_for(
            "cases_api.round_grid", case_id=case.id, round_id=round_.id, _external=True
        ),
        "candidates": [
            {
                "id": c.id,
                "number": c.number,
                "seed": c.seed,
                "attributes": dict(c.attributes),
                "parent_ids": list(c.parent_ids),
                "closest": c.closest,
                "likeness": case.likeness_candidate_id == c.id,
                "image": url_for(
                    "cases_api.candidate_image", case_id=case.id, candidate_id=c.id, _external=True
                ),
            }
            for c in round_.candidates
        ],
    }


# ------------------------------------------------------------------------------------ routes
@bp.get("/cases")
@token_required
def list_cases() -> Any:
    """The cases you are a member of (administrators: all), newest first, paged."""
    page_text = request.args.get("page")
    if page_text is not None and not (
        re.fullmatch(r"[0-9]{1,10}", page_text) and 1 <= int(page_text) <= MAX_PAGE
    ):
        abort(400, description=f"page must be a whole number from 1, not {page_text[:20]!r}.")
    session = get_session()
    listing = case_listing(_user())
    total = listing.count(session)
    page = page_of(requested_page(request.args), total, API_PAGE_SIZE)
    rows = listing.page(session, page.size, page.offset)
    return jsonify(
        cases=[case_json(c) for c in rows], page=page.number, pages=page.pages, total=total
    )


@bp.post("/cases")
@token_required
def create() -> Any:
    """Create a case; you become its first member. 409 when the number is taken."""
    try:
        case = create_case(
            get_session(),
            _user(),
            _text_field(request.form, "number", MAX_NUMBER_CHARS),
            title=_text_field(request.form, "title", MAX_TITLE_CHARS) or "",
            notes=_text_field(request.form, "notes", MAX_NOTES_CHARS),
            via="api",
        )
    except ValueError as exc:  # CaseError included (with its status)
        _fail(exc)
    response = jsonify(case_json(case, full=True))
    response.status_code = 201
    response.headers["Location"] = url_for("cases_api.get_case", case_id=case.id, _external=True)
    return response


@bp.get("/cases/<int:case_id>")
@token_required
def get_case(case_id: int) -> Any:
    """One case with its members, sketches and rounds."""
    return jsonify(case_json(get_case_for(case_id, _user()), full=True))


@bp.post("/cases/<int:case_id>/candidates")
@token_required
def generate_candidates(case_id: int) -> Any:
    """A first round for one of the case's sketches: ``generation_id``, ``n`` (default 6),
    fixed attributes ``skin``, ``hair_color``, ``gender`` (exactly those sent; the rest vary),
    ``backdrop`` (photo or studio; default: the generation's)."""
    user = _user()
    case = get_case_for(case_id, user)
    generation_id = request.form.get("generation_id")
    if not generation_id:
        abort(400, description="generation_id (one of the case's sketches) is required.")
    generation = _in_case(get_case_generation, case, generation_id, "generation_id")
    try:
        round_ = start_round(
            user,
            case,
            generation,
            n=_count(request.form),
            fixed_attributes=dict(fields.attributes(request.form)),
            via="api",
            backdrop=request.form.get("backdrop") or None,
        )
    except ValueError as exc:  # CaseError, CandidateError, InvalidImageError
        _fail(exc)
    return _created(round_)


def _created(round_: CandidateRound) -> Response:
    response = jsonify(round_json(round_))
    response.status_code = 201
    response.headers["Location"] = url_for(
        "cases_api.get_round", case_id=round_.case_id, round_id=round_.id, _external=True
    )
    return response


@bp.get("/cases/<int:case_id>/rounds/<int:round_id>")
@token_required
def get_round(case_id: int, round_id: int) -> Any:
    """One candidate round."""
    case = get_case_for(case_id, _user())
    return jsonify(round_json(get_case_round(case, round_id)))


@bp.post("/cases/<int:case_id>/rounds/<int:round_id>/next")
@token_required
def next_round(case_id: int, round_id: int) -> Any:
    """ "More like these": ``chosen`` (comma-separated candidate ids of this round, marked as
    closest) and ``n`` -> the next round, bred from them."""
    user = _user()
    case = get_case_for(case_id, user)
    parent = get_case_round(case, round_id)
    chosen = request.form.get("chosen", "")
    if not _IDS.fullmatch(chosen):
        abort(400, description="chosen must be 1 to 12 candidate ids separated by commas.")
    try:
        round_ = breed_round(
            user,
            case,
            parent,
            [int(i) for i in chosen.split(",")],
            n=_count(request.form),
            via="api",
        )
    except ValueError as exc:
        _fail(exc)
    return _created(round_)


@bp.get("/cases/<int:case_id>/rounds/<int:round_id>/grid")
@token_required
def round_grid(case_id: int, round_id: int) -> Any:
    """The round's candidates as one numbered PNG."""
    case = get_case_for(case_id, _user())
    response = Response(round_grid_png(get_case_round(case, round_id)), mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response


@bp.get("/cases/<int:case_id>/candidates/<int:candidate_id>/image")
@token_required
def candidate_image(case_id: int, candidate_id: int) -> Any:
    """One candidate's face (PNG; the refined one when it was refined)."""
    case = get_case_for(case_id, _user())
    return stored_image(get_case_candidate(case, candidate_id).shown_key)


@bp.post("/cases/<int:case_id>/likeness")
@token_required
def likeness(case_id: int) -> Any:
    """Mark ``candidate_id`` (a candidate of the case) or ``generation_id`` (one of its
    sketches' faces) as the case's likeness."""
    user = _user()
    case = get_case_for(case_id, user)
    candidate_id = request.form.get("candidate_id")
    generation_id = request.form.get("generation_id")
    if (candidate_id is None) == (generation_id is None):
        abort(400, description="Send either candidate_id or generation_id.")
    if candidate_id is not None:
        if not re.fullmatch(r"[0-9]{1,10}", candidate_id):
            abort(400, description="candidate_id must be a whole number.")
        set_likeness(
            get_session(),
            user,
            case,
            candidate=_in_case(get_case_candidate, case, int(candidate_id), "candidate_id"),
            via="api",
        )
    else:
        assert generation_id is not None
        set_likeness(
            get_session(),
            user,
            case,
            generation=_in_case(get_case_generation, case, generation_id, "generation_id"),
            via="api",
        )
    return jsonify(case_json(case, full=True))


#: the OpenAPI schema of the ``backdrop`` field of POST /cases/{case_id}/candidates
CANDIDATES_BACKDROP_FIELD: dict[str, Any] = {
    "type": "string",
    "enum": list(BACKDROPS),
    "description": "Background of the candidates' faces: photo (the networks' own) or studio "
    "(a plain studio backdrop); default: the one the generation was made with. Later rounds "
    "bred from this one keep it.",
}


#: the OpenAPI schema of a round's ``backdrop`` in its JSON
ROUND_BACKDROP_FIELD: dict[str, Any] = {
    "type": "string",
    "enum": list(BACKDROPS),
    "description": "Background of the round's faces (the candidate images): photo (the "
    "networks' own) or studio (a plain studio backdrop).",
}


def openapi_part(max_upload_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, schemas) of the case API, for ``openapi``."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    png = {"image/png": {"schema": {"type": "string", "format": "binary"}}}

    def answers(*codes: str) -> dict[str, Any]:
        texts = {
            "400": "Bad value (the message names the field)",
            "401": "Missing or bad token",
            "404": "No such case (or not a member), or nothing of that id in it",
            "409": "Case number taken, the case is closed, or an id sent in the form is not "
            "part of this case (or round)",
            "429": "Rate limited (each candidate counts as a generation)",
            "503": "Model unavailable",
        }
        return {c: {"description": texts[c], "content": error} for c in codes}

    def ref(name: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}

    def form(
        properties: dict[str, Any], required: list[str], one_of: list[str] | None = None
    ) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if one_of:  # exactly one of these fields
            schema["oneOf"] = [{"required": [name]} for name in one_of]
        content = {"schema": schema}
        return {
            "required": bool(required or one_of),
            "content": {
                "multipart/form-data": content,
                "application/x-www-form-urlencoded": content,
            },
        }

    def path_id(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        }

    count = {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_CANDIDATES,
        "default": DEFAULT_CANDIDATES,
        "description": "How many candidate faces.",
    }
    attributes = {"type": "object", "additionalProperties": {"type": "string"}}
    candidate = {
        "type": "object",
        "required": ["id", "number", "seed", "attributes", "closest", "likeness", "image"],
        "properties": {
            "id": {"type": "integer"},
            "number": {"type": "integer", "minimum": 1, "description": "1-based, as on the grid"},
            "seed": {"type": "integer"},
            "attributes": attributes,
            "parent_ids": {"type": "array", "items": {"type": "integer"}},
            "closest": {"type": "boolean"},
            "likeness": {"type": "boolean"},
            "image": {"type": "string", "format": "uri"},
        },
    }
    round_schema = {
        "type": "object",
        "required": [
            "id",
            "number",
            "case_id",
            "candidates",
            "fixed_attributes",
            "grid",
            "backdrop",
        ],
        "properties": {
            "id": {"type": "integer"},
            "number": {"type": "integer"},
            "case_id": {"type": "integer"},
            "generation_id": {"type": ["string", "null"]},
            "parent_round_id": {"type": ["integer", "null"]},
            "chosen_candidate_ids": {"type": "array", "items": {"type": "integer"}},
            "fixed_attributes": attributes,
            "model_version": {"type": "string"},
            "attributes_applied": {"type": "boolean"},
            "backdrop": ROUND_BACKDROP_FIELD,
            "notices": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": ["string", "null"]},
            "grid": {"type": "string", "format": "uri"},
            "candidates": {"type": "array", "items": {"$ref": "#/components/schemas/Candidate"}},
        },
    }
    case_schema = {
        "type": "object",
        "required": ["id", "number", "title", "status", "created_at", "url", "notice"],
        "properties": {
            "id": {"type": "integer"},
            "number": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "string", "enum": list(CASE_STATUSES)},
            "notes": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": ["string", "null"]},
            "likeness": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "candidate_id": {"type": "integer"},
                            "generation_id": {"type": "string"},
                        },
                    },
                ]
            },
            "likeness_image": {"type": ["string", "null"], "format": "uri"},
            "url": {"type": "string", "format": "uri"},
            "members": {"type": "array", "items": {"type": "string"}},
            "generations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "owner": {"type": ["string", "null"]},
                        "url": {"type": "string", "format": "uri"},
                    },
                },
            },
            "rounds": {"type": "array", "items": {"$ref": "#/components/schemas/CandidateRound"}},
            "notice": {"type": "string", "const": LIKENESS_NOTICE},
        },
    }
    text = {"type": "string", "pattern": fields.NO_NUL}
    paths: dict[str, Any] = {
        "/cases": {
            "get": {
                "summary": "The cases you can see (administrators: all), newest first",
                "parameters": [
                    {
                        "name": "page",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        "description": "1-based; beyond the last page shows the last page.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "One page of cases",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["cases", "page", "pages", "total"],
                                    "properties": {
                                        "cases": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Case"},
                                        },
                                        "page": {"type": "integer"},
                                        "pages": {"type": "integer"},
                                        "total": {"type": "integer"},
                                    },
                                }
                            }
                        },
                    },
                    **answers("400", "401"),
                },
            },
            "post": {
                "summary": "Create a case (you become its first member)",
                "requestBody": form(
                    {
                        "number": {
                            **text,
                            "minLength": 1,
                            "maxLength": MAX_NUMBER_CHARS,
                            "pattern": fields.CASE_NUMBER_REQUIRED,
                            "description": CASE_NUMBER_DESCRIPTION,
                        },
                        "title": {**text, "maxLength": MAX_TITLE_CHARS},
                        "notes": {**text, "maxLength": MAX_NOTES_CHARS},
                    },
                    ["number"],
                ),
                "responses": {
                    "201": {"description": "Created", "content": ref("Case")},
                    **answers("400", "401", "409"),
                },
            },
        },
        "/cases/{case_id}": {
            "get": {
                "summary": "A case: members, sketches, candidate rounds, likeness",
                "parameters": [path_id("case_id")],
                "responses": {
                    "200": {"description": "The case", "content": ref("Case")},
                    **answers("401", "404"),
                },
            }
        },
        "/cases/{case_id}/candidates": {
            "post": {
                "summary": "Generate a first round of candidate faces for one of the case's "
                "sketches; the attributes sent stay fixed, the others and the seed vary",
                "parameters": [path_id("case_id")],
                "requestBody": form(
                    {
                        "generation_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 32,
                            "description": "A generation (sketch) of this case",
                        },
                        "n": count,
                        "skin": fields.attribute_schema("skin", "skin tone held fixed"),
                        "hair_color": fields.attribute_schema(
                            "hair_color", "hair colour held fixed"
                        ),
                        "gender": fields.attribute_schema("gender", "gender held fixed"),
                        "backdrop": CANDIDATES_BACKDROP_FIELD,
                    },
                    ["generation_id"],
                ),
                "responses": {
                    "201": {"description": "The new round", "content": ref("CandidateRound")},
                    **answers("400", "401", "404", "409", "429", "503"),
                },
            }
        },
        "/cases/{case_id}/rounds/{round_id}": {
            "get": {
                "summary": "One candidate round",
                "parameters": [path_id("case_id"), path_id("round_id")],
                "responses": {
                    "200": {"description": "The round", "content": ref("CandidateRound")},
                    **answers("401", "404"),
                },
            }
        },
        "/cases/{case_id}/rounds/{round_id}/next": {
            "post": {
                "summary": "More like these: mark the chosen candidates as closest and breed "
                "the next round from them",
                "parameters": [path_id("case_id"), path_id("round_id")],
                "requestBody": form(
                    {
                        "chosen": {
                            "type": "string",
                            "pattern": "^[0-9]{1,10}(,[0-9]{1,10}){0,11}$",
                            "description": "Candidate ids of this round, comma-separated",
                        },
                        "n": count,
                    },
                    ["chosen"],
                ),
                "responses": {
                    "201": {"description": "The new round", "content": ref("CandidateRound")},
                    **answers("400", "401", "404", "409", "429", "503"),
                },
            }
        },
        "/cases/{case_id}/rounds/{round_id}/grid": {
            "get": {
                "summary": "The round's candidates as one numbered PNG",
                "parameters": [path_id("case_id"), path_id("round_id")],
                "responses": {
                    "200": {"description": "PNG", "content": png},
                    **answers("401", "404"),
                },
            }
        },
        "/cases/{case_id}/candidates/{candidate_id}/image": {
            "get": {
                "summary": "One candidate's face",
                "parameters": [path_id("case_id"), path_id("candidate_id")],
                "responses": {
                    "200": {"description": "PNG", "content": png},
                    **answers("401", "404"),
                },
            }
        },
        "/cases/{case_id}/likeness": {
            "post": {
                "summary": "Mark a candidate, or the face of one of the case's sketches, as the "
                "case's likeness (send exactly one of the two)",
                "parameters": [path_id("case_id")],
                "requestBody": form(
                    {
                        "candidate_id": {"type": "string", "pattern": "^[0-9]{1,10}$"},
                        "generation_id": {"type": "string", "minLength": 1, "maxLength": 32},
                    },
                    [],
                    one_of=["candidate_id", "generation_id"],
                ),
                "responses": {
                    "200": {"description": "The case", "content": ref("Case")},
                    **answers("400", "401", "404", "409"),
                },
            }
        },
    }
    schemas = {"Case": case_schema, "CandidateRound": round_schema, "Candidate": candidate}
    return paths, schemas
