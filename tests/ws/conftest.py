"""Fixtures of the client tests: a real local auth endpoint signing with the official ``pusher`` SDK."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs

import pusher
import pytest

from tests.peers import APP_ID, APP_KEY, APP_SECRET

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()


class ServerAddress(Protocol):
    """Where a Pusher-compatible server listens (Soketi or the embedded one)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


def sdk_for(server: ServerAddress) -> pusher.Pusher:
    """The official server SDK pointed at ``server`` (triggers and signs)."""
    return pusher.Pusher(
        app_id=APP_ID,
        key=APP_KEY,
        secret=APP_SECRET,
        host=server.host,
        port=server.port,
        ssl=False,
        encryption_master_key_base64=MASTER_KEY,
    )


@dataclass
class AuthRecord:
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class AuthServer:
    """A real HTTP auth endpoint (Laravel's ``/broadcasting/auth`` and ``/broadcasting/user-auth``)
    that signs with the official ``pusher`` SDK. ``fail[channel]`` makes one channel fail:
    an int status, ``"nonjson"``, or ``("sleep", seconds)``."""

    sdk: pusher.Pusher = field(
        default_factory=lambda: pusher.Pusher(
            app_id=APP_ID, key=APP_KEY, secret=APP_SECRET, encryption_master_key_base64=MASTER_KEY
        )
    )
    user_id: str = "42"
    user_info: dict[str, Any] = field(default_factory=lambda: {"name": "Ann"})
    fail: dict[str, Any] = field(default_factory=dict)
    records: list[AuthRecord] = field(default_factory=list)
    required_header: tuple[str, str] | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def socket_ids(self, channel: str | None = None) -> list[str]:
        with self._lock:
            return [
                r.form.get("socket_id", "")
                for r in self.records
                if channel is None or r.form.get("channel_name") == channel
            ]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition on the auth server not met")
            time.sleep(0.02)

    def _answer(self, path: str, form: dict[str, str]) -> tuple[int, bytes]:
        if path.endswith("/user-auth"):
            user = {"id": self.user_id, "user_info": self.user_info}
            return 200, json.dumps(self.sdk.authenticate_user(form["socket_id"], user)).encode()
        if path.endswith("/batch-auth"):
            sid = form["socket_id"]
            out: dict[str, Any] = {}
            for key in sorted(k for k in form if k.startswith("channel_name[")):
                name = form[key]
                if name in self.fail:
                    out[name] = {"status": self.fail[name]}
                else:
                    out[name] = {"status": 200, "data": self._sign(name, sid)}
            return 200, json.dumps({sid: out}).encode()
        channel, sid = form["channel_name"], form["socket_id"]
        failure = self.fail.get(channel)
        if isinstance(failure, int):
            return failure, b'{"message":"Forbidden"}'
        if failure == "nonjson":
            return 200, b"<html>login</html>"
        if isinstance(failure, tuple) and failure[0] == "sleep":
            time.sleep(failure[1])
        elif isinstance(failure, dict):
            return 200, json.dumps(failure).encode()
        return 200, json.dumps(self._sign(channel, sid)).encode()

    def _sign(self, channel: str, socket_id: str) -> dict[str, Any]:
        if channel.startswith("presence-"):
            data = {"user_id": self.user_id, "user_info": self.user_info}
            return dict(self.sdk.authenticate(channel=channel, socket_id=socket_id, custom_data=data))
        result = dict(self.sdk.authenticate(channel=channel, socket_id=socket_id))
        if isinstance(result.get("shared_secret"), bytes):
            result["shared_secret"] = result["shared_secret"].decode()
        return result

    def start(self) -> AuthServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                with outer._lock:
                    outer.records.append(
                        AuthRecord(self.path, form, {k.lower(): v for k, v in self.headers.items()})
                    )
                if outer.required_header is not None:
                    name, value = outer.required_header
                    if self.headers.get(name) != value:
                        self._reply(403, b'{"message":"no token"}')
                        return
                redirect = outer.fail.get(form.get("channel_name", ""))
                if (
                    isinstance(redirect, tuple)
                    and redirect[0] == "redirect"
                    and self.path == "/broadcasting/auth"
                ):
                    self.send_response(redirect[1])
                    self.send_header("Location", redirect[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with outer._lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    status, payload = outer._answer(self.path, form)
                except (BrokenPipeError, ConnectionResetError):
                    return
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                self._reply(status, payload)

            def _reply(self, status: int, payload: bytes) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer().start()
    yield server
    server.stop()
