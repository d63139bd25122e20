"""Slow clients (issue 25 item 1): the server ``sketch2face serve`` runs reads requests without
holding application threads, and cuts off a client that trickles its request. Loopback only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

REQUEST = b"POST /api/v1/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"


@contextmanager
def _serving(app: Any, threads: int, timeout: int) -> Iterator[int]:
    """``app`` behind the server ``serve`` runs, on a free loopback port; stopped afterwards."""
    from waitress import wasyncore

    from sketch2face.cli.wsgi_server import make_server

    server = make_server(app, "127.0.0.1", 0, threads=threads, request_timeout_s=timeout)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(server._map)
        thread.join(timeout=5)


@pytest.fixture
def served(app: Any) -> Iterator[tuple[int, int]]:
    """The real app behind the server ``serve`` runs (2 threads, a 3 s request deadline)."""
    with _serving(app, threads=2, timeout=3) as port:
        yield port, 3


def _get(port: int, path: str) -> tuple[int, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1]), time.monotonic() - started


def _trickle(port: int, stop: threading.Event, closed_after: list[float]) -> None:
    """Send REQUEST one byte a second until the server closes the connection (or ``stop``)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for byte in REQUEST:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(1.0)
                if sock.recv(1024) == b"":  # closed by the server
                    closed_after.append(time.monotonic() - started)
                    return
            except TimeoutError:
                continue  # nothing from the server this second: send the next byte
            except OSError:
                closed_after.append(time.monotonic() - started)
                return


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_trickling_clients_hold_no_thread_and_are_cut_off(served: tuple[int, int]) -> None:
    port, timeout = served
    stop = threading.Event()
    closed_after: list[float] = []
    trickles = [
        threading.Thread(target=_trickle, args=(port, stop, closed_after), daemon=True)
        for _ in range(12)
    ]
    try:
        for thread in trickles:
            thread.start()
        time.sleep(1.5)  # every trickling connection is open and has sent a byte or two
        for _ in range(3):
            status, seconds = _get(port, "/healthz")
            assert status == 200
            assert seconds < 2.0, f"/healthz took {seconds:.1f} s behind 12 trickling clients"
        for thread in trickles:
            thread.join(timeout=timeout + 6)
        # each was cut off after the deadline (checked about once a second), long before it
        # could have sent its request
        assert len(closed_after) == 12, closed_after
        assert all(timeout - 0.5 <= t <= timeout + 3 for t in closed_after), closed_after
        assert _get(port, "/healthz")[0] == 200  # the server still serves
    finally:
        stop.set()


def test_forwarded_headers_reach_the_app() -> None:
    """waitress would drop X-Forwarded-* from an untrusted peer; the app decides instead
    (BEHIND_PROXY, and the first-start command is never shown to a proxied visitor)."""

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ.get("HTTP_X_FORWARDED_FOR", "-").encode()]

    with _serving(echo, threads=1, timeout=3) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n"
                b"Connection: close\r\n\r\n"
            )
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    assert answer.endswith(b"203.0.113.7")
