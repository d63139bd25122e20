"""What the app tells browsers: security headers, caching of images, the cookie's Secure flag.

HTTPS is judged from the request itself (``request.is_secure``): directly, or through a proxy
that says so in ``X-Forwarded-Proto`` when ``SKETCH2FACE_BEHIND_PROXY`` makes ProxyFix trust it.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, Request, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from sketch2face.web.extensions import get_settings
from sketch2face.web.settings import WebSettings

#: images and downloads: a deleted generation must not live on in the browser's cache
NO_STORE = "no-store"
#: one year; no includeSubDomains, which would bind other sites of the same domain
HSTS = "max-age=31536000"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
#: the studio needs none of these powerful features; deny them to any script that might
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), payment=(), usb=()"
)
_PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded")


def add_security_headers(response: Response) -> Response:
    """``after_request`` hook: the headers every answer carries (HSTS only over HTTPS)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if request.is_secure:  # over plain HTTP the header is ignored by browsers, and would be a lie
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _plain_http_to_loopback(req: Request) -> bool:
    """A plain-HTTP request for a loopback host with no sign of a proxy in front: a developer's
    own machine (http://127.0.0.1:8000, http://localhost:8000)."""
    if req.is_secure or any(name in req.headers for name in _PROXY_HEADERS):
        return False
    host = req.host.rsplit(":", 1)[0] if not req.host.endswith("]") else req.host
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookie_is_secure(settings: WebSettings, req: Request) -> bool:
    """Whether this answer's session cookie gets the ``Secure`` flag.

    Always over HTTPS. Otherwise ``SKETCH2FACE_SECURE_COOKIES`` decides when set (1: always,
    0: HTTPS only); unset, every plain-HTTP request is Secure too (a browser then keeps the cookie
    off plain connections) except in debug/testing and for a loopback host, where scripts and
    browsers that refuse Secure cookies over http://127.0.0.1 can still sign in.
    """
    if req.is_secure:
        return True
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    if settings.debug or settings.testing:
        return False
    return not _plain_http_to_loopback(req)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions with the Secure flag decided per request."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """See :func:`cookie_is_secure`; outside a request, the configured default."""
        if has_request_context():
            return cookie_is_secure(get_settings(app), request)
        return super().get_cookie_secure(app)
