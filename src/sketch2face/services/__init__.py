"""The service layer: cases, candidate rounds, generations, signed exports and the audit log, as
plain functions that the web pages, the API and the CLI share.

No HTTP here (no Flask request, abort or response): a service takes plain values, raises a
domain error (``ValueError``, ``cases.CaseError``, ``InvalidImageError`` ...) and leaves the
status code to its caller. What it needs from the running instance (the database session, the
object store, the model client, the signing key) it gets from ``runtime.current()``, which the
web app installs per app (``web/runtime.py``).
"""
