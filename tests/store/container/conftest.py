"""A real local HTTP server that answers like a small Laravel API, for the ApiService tests."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pusher
import pytest

XSRF_RAW = "eyJpdiI6IkFCQyJ9%3D%3D"  # Laravel URL-encodes the cookie; the header carries it decoded
XSRF_DECODED = "eyJpdiI6IkFCQyJ9=="
WS_TOKEN = "ws-user-token"
WS_APP_KEY = "app-key"
WS_APP_SECRET = "app-secret"


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class LaravelLikeServer:
    server: ThreadingHTTPServer
    thread: threading.Thread
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    slow_started: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(self, path: str, timeout: float = 10.0) -> Seen:
        """Block until a request for ``path`` has arrived (run it with ``asyncio.to_thread``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: any(s.path == path for s in self.seen), timeout):
                raise TimeoutError(f"no request for {path} within {timeout}s")
            return next(s for s in self.seen if s.path == path)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _form(body: Any) -> dict[str, str]:
    """A pusher-js style form body (or a JSON one) as a dict."""
    if isinstance(body, dict):
        return {str(k): str(v) for k, v in body.items()}
    return {k: v[0] for k, v in parse_qs(str(body)).items()}


def _make_handler(state: LaravelLikeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            content_type = "application/json" if not isinstance(body, bytes) else "text/html"
            if body is not None:
                self.send_header("Content-Type", content_type)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.arrived:
                state.seen.append(Seen(self.command, parts.path, headers, body))
                state.arrived.notify_all()
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            path = parts.path

            if path == "/sanctum/csrf-cookie":
                self.send_response(204)
                self.send_header("Set-Cookie", f"XSRF-TOKEN={XSRF_RAW}; Path=/; SameSite=Lax")
                self.send_header("Set-Cookie", "laravel_session=sess123; Path=/; HttpOnly")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/api/echo":
                self._reply(200, {"method": self.command, "query": query, "headers": headers, "json": body})
            elif path == "/api/users" and self.command == "POST":
                errors: dict[str, list[str]] = {}
                if not (isinstance(body, dict) and body.get("name")):
                    errors["name"] = ["The name field is required."]
                if not (isinstance(body, dict) and "@" in str(body.get("email", ""))):
                    errors["email"] = ["The email field must be a valid email address."]
                if errors:
                    self._reply(
                        422,
                        {"message": "The name field is required. (and 1 more error)", "errors": errors},
                    )
                else:
                    self._reply(201, {"id": 1, **body})
            elif path == "/api/xsrf-protected" and self.command == "POST":
                if headers.get("x-xsrf-token") == XSRF_DECODED:
                    self._reply(200, {"ok": True})
                else:
                    self._reply(419, {"message": "CSRF token mismatch."})
            elif path in ("/broadcasting/auth", "/api/broadcasting/auth") and self.command == "POST":
                # Laravel's channel authorization behind Sanctum: session XSRF + bearer token required.
                form = _form(body)
                if headers.get("x-xsrf-token") != XSRF_DECODED:
                    self._reply(419, {"message": "CSRF token mismatch."})
                elif headers.get("authorization") != f"Bearer {WS_TOKEN}":
                    self._reply(403, {"message": "This action is unauthorized."})
                else:
                    signer = pusher.Pusher(app_id="1", key=WS_APP_KEY, secret=WS_APP_SECRET)
                    self._reply(
                        200, signer.authenticate(channel=form["channel_name"], socket_id=form["socket_id"])
                    )
            elif path in ("/broadcasting/user-auth", "/custom/user-auth") and self.command == "POST":
                form = (
                    {k: v[0] for k, v in parse_qs(str(body)).items()} if not isinstance(body, dict) else body
                )
                if headers.get("authorization") != f"Bearer {WS_TOKEN}":
                    self._reply(403, {"message": "This action is unauthorized."})
                else:
                    signer = pusher.Pusher(app_id="1", key=WS_APP_KEY, secret=WS_APP_SECRET)
                    self._reply(200, signer.authenticate_user(form["socket_id"], {"id": "7", "name": "Ann"}))
            elif path == "/api/boom":
                self._reply(500, {"message": "Server Error"})
            elif path.startswith("/api/status/"):
                status = int(path.rsplit("/", 1)[1])
                extra = {"Retry-After": "7"} if status == 429 else {}
                self._reply(status, {"message": f"status {status}"}, extra)
            elif path == "/api/slow":
                state.slow_started.set()
                state.release.wait(timeout=10)
                self._reply(200, {"slow": True})
            elif path == "/api/html":
                self._reply(200, b"<!doctype html><title>SPA</title>")
            elif path == "/api/empty":
                self._reply(204)
            elif path == "/api/redirect":
                self._reply(302, {}, {"Location": query["to"]})
            elif path == "/api/loop":
                self._reply(302, {}, {"Location": "/api/loop"})
            elif path == "/api/hangup":
                self.close_connection = True  # close without writing a response
            else:
                self._reply(404, {"message": "Not Found"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone away before the slow reply: expected here, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _start() -> LaravelLikeServer:
    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="laravel-like", daemon=True
    )
    state = LaravelLikeServer(server, thread)
    server.RequestHandlerClass = _make_handler(state)
    thread.start()
    return state


@pytest.fixture
def http_api() -> Iterator[LaravelLikeServer]:
    """The API server under test."""
    state = _start()
    yield state
    state.stop()


@pytest.fixture
def other_origin() -> Iterator[LaravelLikeServer]:
    """A second server on another port: another origin that must never see the API's credentials."""
    state = _start()
    yield state
    state.stop()
