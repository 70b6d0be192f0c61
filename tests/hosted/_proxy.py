"""A fault-injecting HTTP proxy between inspect and the server, counting what crosses it.

Every request is recorded (path, JSON body, status, JSON response), so a test can check
what the client sent and what it was told without trusting either side's own account:
how many calls reached the server, whether a cached call went out again, how many were
in flight at once, which usage figures the server reported. ``fault`` decides per
request: forward it, answer ``500``, or stall (answer nothing for a while, as an
overloaded server does, then give up with a ``504``). A request the server cannot take
(refused connection: the server is down) gets ``502``, as from a load balancer.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal["500", "stall"] | None
UPSTREAM_TIMEOUT = 120.0
"""Seconds the proxy waits for the server (longer than any generation in these tests)."""


@dataclass
class Exchange:
    """One request as the proxy saw it."""

    path: str
    """Request path, e.g. ``/v1/chat/completions``."""
    body: dict[str, Any]
    """The JSON request body (``{}`` for a GET)."""
    status: int = 0
    """Status sent back to the client; 0 while in flight."""
    response: dict[str, Any] | None = None
    """The JSON body sent back, when it was JSON."""
    fault: Fault = None
    """The fault injected instead of forwarding, if any."""

    @property
    def key(self) -> str:
        """The request's identity: the same call sent twice has the same key."""
        return self.path + json.dumps(self.body, sort_keys=True)


@dataclass
class FaultProxy:
    """Threaded stdlib proxy on a free loopback port in front of ``upstream`` (host:port)."""

    upstream_port: int
    fault: Callable[[Exchange], Fault] = lambda ex: None
    """Decides, per request, whether to inject a fault."""
    stall_s: float = 3.0
    """How long a stalled request is held before the proxy answers 504."""
    max_tokens_cap: int | None = 8
    """Forwarded requests ask for at most this many tokens: a test CPU writes a few tokens
    a second, and the simulator and scorers ask for hundreds. Answers get shorter (and may
    fail to parse: a flagged failure); what the client sent is recorded unchanged."""
    exchanges: list[Exchange] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    """Most requests open at once: shows the client ran calls concurrently."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy._handle(self, self.rfile.read(length))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def completions(self, status: int | None = 200) -> list[Exchange]:
        """Chat completion exchanges, only those answered with ``status`` (None: all)."""
        with self._lock:
            return [
                e
                for e in self.exchanges
                if e.path.endswith("/chat/completions") and (status is None or e.status == status)
            ]

    def served_twice(self) -> list[str]:
        """Request keys the server answered successfully more than once (cache misses)."""
        counts = Counter(e.key for e in self.completions(200))
        return [k for k, n in counts.items() if n > 1]

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        body = json.loads(raw) if raw else {}
        ex = Exchange(path=handler.path, body=body)
        with self._lock:
            self.exchanges.append(ex)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            ex.fault = self.fault(ex) if handler.command == "POST" else None
            if ex.fault == "500":
                status, payload = 500, _error("injected server error")
            elif ex.fault == "stall":
                time.sleep(self.stall_s)
                status, payload = 504, _error("injected stall")
            else:
                status, payload = self._forward(handler, self._capped(body) if raw else raw)
            ex.status = status
            try:
                ex.response = json.loads(payload)
            except ValueError:
                ex.response = None
            _reply(handler, status, payload)
        except OSError:
            pass  # the client gave up on this request (its timeout): nothing to answer
        finally:
            with self._lock:
                self.in_flight -= 1

    def _capped(self, body: dict[str, Any]) -> bytes:
        if self.max_tokens_cap is not None:
            for key in ("max_tokens", "max_completion_tokens"):
                if key in body:
                    body = {**body, key: min(int(body[key]), self.max_tokens_cap)}
            if not any(k in body for k in ("max_tokens", "max_completion_tokens")):
                body = {**body, "max_tokens": self.max_tokens_cap}
        return json.dumps(body).encode()

    def _forward(self, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {"Content-Type": "application/json"} if raw else {}
            conn.request(handler.command, handler.path, body=raw or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (ConnectionError, http.client.HTTPException):
            return 502, _error("upstream server unreachable")
        finally:
            conn.close()


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error"}}).encode()


def _reply(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
