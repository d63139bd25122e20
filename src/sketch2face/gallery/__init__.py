"""Gallery search: compare a likeness (or any face photo) with an enrolled photo gallery.

- ``models``: SQL tables (galleries, photos, embeddings, search grants), the source of truth;
- ``faces``: the :class:`~sketch2face.gallery.faces.FaceEncoder` protocol and dlib's encoder;
- ``zipsafe``: reading uploaded ZIPs and folders without ZIP bombs or path traversal;
- ``store``: galleries and photos in SQL + the object store, search permission;
- ``enrol``: batch enrolment (detect, align, embed, thumbnail; duplicates by file hash);
- ``index``: exact and HNSW vector search, derived from SQL and cached beside the instance data;
- ``search``: one query image -> ranked candidates with distance and similarity score.

This package stays light to import (the SQL models are imported by ``sketch2face.db.models``).
"""

#: Shown on every result page, in every API response and printed by the CLI.
CAVEAT = (
    "A gallery match is an investigative lead to check, never an identification: face "
    "recognition makes mistakes, more so on sketches and generated likenesses, and the most "
    "similar enrolled face is returned even when the person is not in the gallery."
)
