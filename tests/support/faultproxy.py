"""A fault-injecting HTTP proxy in front of an S3 endpoint (SeaweedFS in the tests).

Why: retries, timeouts and refusals are only proven by failures that really happen on
the wire. The proxy listens on 127.0.0.1, forwards every request to the upstream S3
port, and a test scripts which requests fail and how:

    proxy.add(Fault("status", status=503, code="SlowDown", first=2, method="PUT"))

Actions:
  status  answer `status` with an S3 XML error body (`code`, `message`); not forwarded
  hang    hold the connection for `hang_seconds` (or until `release()`/`stop()`), then close
          it without an answer; with `forward=True` the request reaches the server first
          (a write that lands but whose answer is lost); with `cut="body"` the answer's
          headers and half its body are sent before the stall
  drop    forward the request, then close the socket in the middle of the answer:
          `cut="status"` inside the status line (the client cannot mistake it for an
          answer), `cut="body"` after the headers, halfway through the body
  reset   close the socket at once without forwarding (a connection reset)

Selection: `method` (exact) and `key` (regular expression searched in the object key,
the path after the bucket, unquoted) narrow the matching requests; of those, `first=N`
fires on the first N, `every=K` on every Kth, neither on all. The first fault that
fires wins. `latency` (seconds) delays every request, as a distant S3 region would.
`strip_conditions = True` removes If-None-Match/If-Match from every
forwarded request: a server that silently ignores conditional writes.

Every request is recorded (`requests`), with the fault applied, so tests can assert
that the client really retried.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
}
_CONDITIONAL = {"if-none-match", "if-match"}


@dataclass
class Fault:
    action: str  # status | hang | drop | reset
    status: int = 500
    code: str = "InternalError"
    message: str = "injected by the test fault proxy"
    method: str | None = None
    key: str | None = None
    first: int | None = None
    every: int | None = None
    hang_seconds: float = 30.0
    forward: bool = False
    cut: str = "status"
    matched: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ("status", "hang", "drop", "reset"):
            raise ValueError(f"unknown fault action {self.action!r}")
        if self.cut not in ("status", "body"):
            raise ValueError(f"unknown cut {self.cut!r}")

    @property
    def name(self) -> str:
        if self.action == "status":
            return f"{self.status} {self.code}"
        return self.action

    def matches(self, method: str, key: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.key is None or re.search(self.key, key) is not None

    def should_fire(self) -> bool:
        """Count one matching request; say whether this one fails."""
        self.matched += 1
        if self.first is not None:
            fire = self.matched <= self.first
        elif self.every is not None:
            fire = self.matched % self.every == 0
        else:
            fire = True
        if fire:
            self.fired += 1
        return fire


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    key: str  # object key ("" for bucket-level requests)
    query: str
    fault: str | None  # the fault's name, or None when forwarded untouched
    status: int | None  # the upstream's status when forwarded
    headers: dict[str, str] = field(default_factory=dict)


def _error_xml(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    # -- reading the request ----------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _split_path(self) -> tuple[str, str, str]:
        parsed = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parsed.path).lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key, parsed.query

    # -- answering ----------------------------------------------------------------

    def _handle(self) -> None:
        if self.proxy.latency:
            time.sleep(self.proxy.latency)  # a real region's round trip, before anything
        body = self._read_body()
        bucket, key, query = self._split_path()
        fault = self.proxy._choose(self.command, key)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if fault is None:
            status = self._forward_and_relay(body)
            self.proxy._record(self.command, key, query, None, status, headers)
            return
        self.proxy._record(self.command, key, query, fault.name, None, headers)
        if fault.action == "status":
            self._send_error_answer(fault, bucket, key)
        elif fault.action == "reset":
            self._abort(rst=True)
        elif fault.action == "hang":
            if fault.cut == "body":
                self._send_partial(body, fault)
            elif fault.forward:
                self._forward(body)
            self.proxy._released.wait(fault.hang_seconds)
            self._abort(rst=False)
        elif fault.action == "drop":
            self._send_partial(body, fault)
            self._abort(rst=False)

    def _send_partial(self, body: bytes, fault: Fault) -> None:
        """Forward, then send the answer only up to the fault's cut."""
        status, reason, resp_headers, data = self._forward(body)
        raw = self._render(status, reason, resp_headers, data)
        head_len = raw.index(b"\r\n\r\n") + 4
        if fault.cut == "body" and data and self.command != "HEAD":
            cut = head_len + len(data) // 2
        else:
            cut = len("HTTP/1.1 2")
        self.wfile.write(raw[:cut])
        self.wfile.flush()

    def _send_error_answer(self, fault: Fault, bucket: str, key: str) -> None:
        data = _error_xml(fault.code, fault.message, f"/{bucket}/{key}", f"fault-{fault.fired}")
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amz-request-id", f"fault-{fault.fired}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _abort(self, *, rst: bool) -> None:
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        host, port = self.proxy.upstream
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                lower = name.lower()
                if lower in _HOP_BY_HOP or lower == "content-length":
                    continue
                if lower in _CONDITIONAL and self.proxy.strip_conditions:
                    continue
                conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def _render(
        self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes
    ) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        for name, value in headers:
            if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                continue
            lines.append(f"{name}: {value}")
        length = dict((k.lower(), v) for k, v in headers).get("content-length")
        if self.command == "HEAD":
            lines.append(f"Content-Length: {length or 0}")
        else:
            lines.append(f"Content-Length: {len(data)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (b"" if self.command == "HEAD" else data)

    def _forward_and_relay(self, body: bytes) -> int:
        try:
            status, reason, headers, data = self._forward(body)
        except OSError:
            self._abort(rst=False)
            return 0
        self.wfile.write(self._render(status, reason, headers, data))
        self.wfile.flush()
        return status


class FaultProxy:
    """A running proxy on 127.0.0.1 (ephemeral port) in front of `upstream_url`."""

    def __init__(self, upstream_url: str) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        assert parsed.hostname and parsed.port
        self.upstream = (parsed.hostname, parsed.port)
        self.faults: list[Fault] = []
        self.requests: list[ProxiedRequest] = []
        self.strip_conditions = False
        self.latency = 0.0  # seconds added to every request (emulates a distant region)
        self._lock = threading.Lock()
        self._released = threading.Event()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fault-proxy",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.strip_conditions = False
        self._released.clear()

    def _choose(self, method: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, key) and fault.should_fire():
                    return fault
        return None

    def _record(
        self,
        method: str,
        key: str,
        query: str,
        fault: str | None,
        status: int | None,
        headers: dict[str, str],
    ) -> None:
        with self._lock:
            self.requests.append(ProxiedRequest(method, key, query, fault, status, headers))

    def faulted(self) -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self.requests if r.fault is not None]

    def matching(self, method: str, key_pattern: str) -> list[ProxiedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == method and re.search(key_pattern, r.key) is not None
            ]

    def release(self) -> None:
        """End every hang now (those connections close unanswered) and drop all faults."""
        with self._lock:
            self.faults.clear()
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
