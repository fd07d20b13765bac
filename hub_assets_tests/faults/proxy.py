"""A fault-injecting HTTP proxy in front of an S3 endpoint, on a free loopback port.

Point AWS_ENDPOINT_URL at `FaultProxy.url`: every request is forwarded to the upstream endpoint
unchanged (the signature covers the Host header, which is kept), except those the `Faults` pick.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from typing import Any
from urllib.parse import urlparse

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
_S3_ERRORS = {500: "InternalError", 503: "ServiceUnavailable"}


@dataclass(frozen=True)
class Faults:
    refuse_first: int = 0  # close the first K connections as soon as they are accepted
    refuse_s: float = 0.0  # close every connection accepted in S seconds from the first one
    from_first_put: bool = False  # count those K and S from the first PUT instead
    put_errors: int = 0  # answer the first K PUTs with `put_status` (after reading them)
    put_status: int = 503
    stall_puts: int = 0  # read half the body of the first K PUTs, then hang ...
    stall_s: float = 0.0  # ... this long (or until the proxy stops), then drop the connection


class FaultProxy:
    """Counts what it saw and did in `seen`: connections, puts, refused, put_errors, stalled, forwarded."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults = faults
        self.seen: Counter[str] = Counter()
        self.hanging = 0  # stalled requests hanging now
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._armed_at: float | None = None  # when refusals start counting
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _count(self, what: str, limit: float = float("inf")) -> bool:
        """Count one `what` if fewer than `limit` were counted; whether it was."""
        with self._lock:
            if self.seen[what] >= limit:
                return False
            self.seen[what] += 1
            return True

    def refuses_connection(self) -> bool:
        with self._lock:
            self.seen["connections"] += 1
            if self._armed_at is None and not self.faults.from_first_put:
                self._armed_at = time.monotonic()
            if self._armed_at is None:
                return False
            in_window = time.monotonic() - self._armed_at < self.faults.refuse_s
            if in_window or self.seen["refused"] < self.faults.refuse_first:
                self.seen["refused"] += 1
                return True
            return False

    def put_fault(self) -> str | None:
        with self._lock:
            self.seen["puts"] += 1
            if self._armed_at is None:
                self._armed_at = time.monotonic()
        if self._count("stalled", self.faults.stall_puts):
            return "stall"
        if self._count("put_errors", self.faults.put_errors):
            return "error"
        return None

    def hang(self) -> None:
        with self._lock:
            self.hanging += 1
        self._stopping.wait(self.faults.stall_s)
        with self._lock:
            self.hanging -= 1

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None) -> Any:
        self._count("forwarded")
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            upstream.request(method, path, body=body, headers=dict(headers))
            response = upstream.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            upstream.close()

    @contextmanager
    def running(self) -> Iterator[FaultProxy]:
        thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy

    def verify_request(self, request: socket | tuple[bytes, socket], client_address: Any) -> bool:
        # False: socketserver closes the connection before reading a byte of it.
        return not self.proxy.refuses_connection()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._proxy()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _proxy(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            raise NotImplementedError("chunked request bodies are not proxied")
        length = int(self.headers.get("Content-Length") or 0)
        proxy = self.server.proxy
        fault = proxy.put_fault() if self.command == "PUT" else None
        if fault == "stall":
            self.rfile.read(length // 2)
            proxy.hang()
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        if fault == "error":
            self._answer_error(proxy.faults.put_status)
            return
        headers = [(name, value) for name, value in self.headers.items() if name.lower() != "expect"]
        status, reason, response_headers, data = proxy.forward(self.command, self.path, headers, body)
        self.send_response_only(status, reason)
        for name, value in response_headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            sizes = [value for name, value in response_headers if name.lower() == "content-length"]
            self.send_header("Content-Length", sizes[0] if sizes else "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer_error(self, status: int) -> None:
        code = _S3_ERRORS.get(status, "InternalError")
        data = f"<Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error>".encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
