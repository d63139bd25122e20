"""The HTTP server ``sketch2face serve`` runs: waitress, with slow clients cut off.

waitress reads every connection on one asyncore thread and buffers a request whole (headers and
body, spilling to a temporary file past ``inbuf_overflow``) before a worker thread sees it, so a
client that trickles its request holds no application thread. waitress only closes connections
that send *nothing* for ``channel_timeout`` seconds; a client that sends one byte a second would
stay forever. :func:`make_server` adds a deadline for the whole request: a connection whose
request is not complete ``request_timeout_s`` seconds after its first byte is closed
(checked about once a second). Idle keep-alive connections are closed after the same time.
"""

from __future__ import annotations

import time
from typing import Any

#: default seconds a client has to send one whole request (SKETCH2FACE_CLIENT_TIMEOUT_S)
DEFAULT_REQUEST_TIMEOUT_S = 30
#: default most open connections; more wait in the listen backlog (SKETCH2FACE_CONNECTION_LIMIT)
DEFAULT_CONNECTION_LIMIT = 500


def make_server(
    app: Any,
    host: str,
    port: int,
    *,
    threads: int = 8,
    request_timeout_s: int = DEFAULT_REQUEST_TIMEOUT_S,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    max_request_body_size: int | None = None,
) -> Any:
    """A waitress server for ``app`` bound to ``host:port`` (port 0: a free one); ``.run()`` serves.

    ``server.effective_port`` is the bound port (a single listening address). ``.close()`` stops it.
    """
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer, create_server

    timeout = max(1, int(request_timeout_s))

    class _DeadlineChannel(HTTPChannel):  # type: ignore[misc]
        """Remembers when the request being read began."""

        request_started = 0.0

        def received(self, data: bytes) -> bool:
            if data and self.request is None:
                self.request_started = time.time()
            return bool(super().received(data))

    def _maintenance(server: Any, now: float) -> None:
        for channel in list(server.active_channels.values()):
            if channel.requests:  # complete: a worker thread answers it
                continue
            reading = getattr(channel, "request", None) is not None
            started = getattr(channel, "request_started", channel.creation_time)
            if reading and now - started > timeout:  # trickling: cut off
                channel.will_close = True
            elif channel.last_activity < now - timeout:  # silent or idle keep-alive
                channel.will_close = True

    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": threads,
        "channel_timeout": timeout,
        "cleanup_interval": 1,
        "connection_limit": connection_limit,
        "asyncore_use_poll": True,  # select() stops at file descriptor 1024
        "ident": "sketch2face",
        "expose_tracebacks": False,
        # X-Forwarded-* reach the app, which trusts them only with SKETCH2FACE_BEHIND_PROXY
        # (ProxyFix) and reads their presence as "not a local browser" (web/first_start.py)
        "clear_untrusted_proxy_headers": False,
    }
    if max_request_body_size is not None:
        kwargs["max_request_body_size"] = max_request_body_size
    server = create_server(app, **kwargs)
    socket_map = getattr(server, "map", None) or server._map  # several addresses | one
    for dispatcher in list(socket_map.values()):
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = _DeadlineChannel
            dispatcher.maintenance = lambda now, _s=dispatcher: _maintenance(_s, now)
    return server
