"""The single ownership check for generations (flaskr's ``get_post(id, check_author=True)``)."""

from __future__ import annotations

from flask import abort

from sketch2face.web.db import get_session
from sketch2face.web.models import Generation, User


def get_owned_generation(generation_id: str, user: User) -> Generation:
    """Return the generation if ``user`` owns it or is an admin; else 404.

    404 rather than 403 for someone else's generation: it does not confirm the id exists.
    """
    generation = get_session().get(Generation, generation_id) if len(generation_id) <= 32 else None
    if generation is None or not (generation.user_id == user.id or user.is_admin):
        abort(404, description="No such generation, or it is not yours.")
    return generation
