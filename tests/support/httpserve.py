"""Serve a local directory over HTTP on 127.0.0.1, so apt can read a file archive.

Why: apt's file:// method skips the HTTP code path real users hit; a tiny threaded
server is closer to reality and still needs no network. It records each request so
tests can assert what apt fetched (e.g. InRelease first, by-hash paths).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int


class _Handler(SimpleHTTPRequestHandler):
    log: list[Request]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code if isinstance(code, int) else int(code) if str(code).isdigit() else 0
        self.log.append(Request(self.command or "", self.path, status))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: no per-request lines on stderr


class StaticHttpServer:
    """A ThreadingHTTPServer on 127.0.0.1 (ephemeral port) serving `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[Request] = []
        handler = type("Handler", (_Handler,), {"log": self.requests})
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(handler, directory=str(directory))
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so stop() returns quickly
            name=f"http:{directory}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def serve_directory(directory: Path) -> Iterator[StaticHttpServer]:
    """`with serve_directory(d) as srv: srv.url` — stopped when the block ends."""
    server = StaticHttpServer(directory)
    try:
        yield server
    finally:
        server.stop()
