"""Security of the client: TLS verified by default, credentials kept on their origin, no secrets in logs."""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quvel.demo import DemoBackend, DemoUser, PusherCredentials
from quvel_ws import AuthorizationError, CertificateError, ConnectionState, TransportError, WebSocketService
from quvel_ws.server import AppConfig, PusherServer
from tests.faults.proxy import FaultProxy
from tests.security.certs import PKI, make_pki
from tests.security.recorder import Recorder, Reply
from tests.ws.helpers import Collector

FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.2, "immediate_retry_jitter": 0.05}
CREDENTIAL_HEADERS = ("authorization", "cookie", "x-xsrf-token", "x-csrf-token")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture
async def server() -> AsyncIterator[PusherServer]:
    async with PusherServer() as srv:
        yield srv


# --- TLS ----------------------------------------------------------------------------------------------


async def test_tls_certificates_are_verified_by_default(server: PusherServer, pki: PKI) -> None:
    async with FaultProxy("127.0.0.1", server.port, ssl=pki.server_context()) as tls:
        url = f"wss://127.0.0.1:{tls.port}/app/app-key"
        ws = WebSocketService(url, **FAST)
        errors = Collector(ws.errors)
        try:
            with pytest.raises(CertificateError):  # not transient: no retry loop (issue 11)
                await ws.connect(timeout=5.0)
            assert ws.current_state is ConnectionState.FAILED
            transport_errors = [e for e in errors.items if isinstance(e, TransportError)]
            assert transport_errors, errors.items
            assert any("certificate" in str(e).lower() for e in transport_errors), transport_errors
            assert server.connection_count() == 0  # no handshake ever reached the server
        finally:
            await ws.shutdown()

        for options in ({"ca_file": str(pki.ca_cert)}, {"ssl": pki.client_context()}):
            trusted = WebSocketService(url, **options, **FAST)
            try:
                await trusted.connect(timeout=5)
                assert trusted.socket_id
                ch = trusted.channel("news")
                subscribed = Collector(ch.subscribed)
                got = Collector(ch.listen(".Ping"))
                await subscribed.first()
                await server.trigger("news", "Ping", {"ok": True})
                assert await got.first() == {"ok": True}
            finally:
                await trusted.shutdown()


async def test_tls_hostname_must_match_even_with_the_ca(server: PusherServer, pki: PKI) -> None:
    """The certificate names localhost and 127.0.0.1; served as 127.0.0.2 it must be refused."""
    async with FaultProxy("127.0.0.1", server.port, host="127.0.0.2", ssl=pki.server_context()) as tls:
        ws = WebSocketService(f"wss://127.0.0.2:{tls.port}/app/app-key", ca_file=str(pki.ca_cert), **FAST)
        errors = Collector(ws.errors)
        try:
            with pytest.raises(CertificateError):
                await ws.connect(timeout=5.0)
            messages = " ".join(str(e).lower() for e in errors.items if isinstance(e, TransportError))
            assert "hostname" in messages or "ip address mismatch" in messages or "certificate" in messages
        finally:
            await ws.shutdown()


# --- credentials stay on their origin ---------------------------------------------------------------


def _app_client(origin: str, token: str, session: str, xsrf: str, **kwargs: Any) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=origin, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    host = httpx.URL(origin).host
    client.cookies.set("laravel_session", session, domain=host)
    client.cookies.set("XSRF-TOKEN", xsrf, domain=host)
    return client


def _leaks(headers: dict[str, str], *values: str) -> list[str]:
    found = [h for h in CREDENTIAL_HEADERS if h in headers]
    found += [f"value {v!r}" for v in values if any(v in hv for hv in headers.values())]
    return found


async def test_auth_credentials_go_only_to_the_api_origin(server: PusherServer) -> None:
    token, session, xsrf = (secrets.token_hex(8) for _ in range(3))
    async with (
        Recorder("127.0.0.1") as app_origin,
        Recorder("localhost") as elsewhere,
        FaultProxy("127.0.0.1", server.port, record=4096) as proxy,
    ):
        app_origin.replies["/broadcasting/auth"] = Reply(403, body=b'{"message":"no"}')
        elsewhere.replies["/broadcasting/auth"] = Reply(403, body=b'{"message":"no"}')
        client = _app_client(app_origin.origin, token, session, xsrf)
        ws_url = f"ws://127.0.0.1:{proxy.port}/app/app-key"

        # 1. Auth endpoint on the app's own origin: the credentials go (positive control).
        ws = WebSocketService(ws_url, http_client=client, **FAST)
        try:
            errors = Collector(ws.errors)
            ws.channel("orders", type="private").listen("X").subscribe()
            await errors.wait(lambda items: any(isinstance(e, AuthorizationError) for e in items))
            sent = app_origin.requests[-1].headers
            assert sent.get("authorization") == f"Bearer {token}"
            assert session in sent.get("cookie", "")
            assert sent.get("x-xsrf-token") == xsrf
        finally:
            await ws.shutdown()

        # 2. Auth endpoint on another origin: none of the app's credentials go there.
        ws = WebSocketService(
            ws_url, http_client=client, auth_endpoint=f"{elsewhere.origin}/broadcasting/auth", **FAST
        )
        try:
            errors = Collector(ws.errors)
            ws.channel("orders", type="private").listen("X").subscribe()
            await errors.wait(lambda items: any(isinstance(e, AuthorizationError) for e in items))
            assert elsewhere.requests, "the auth request never reached the other origin"
            for request in elsewhere.requests:
                assert _leaks(request.headers, token, session, xsrf) == [], request.headers
        finally:
            await ws.shutdown()

        # 3. Explicit auth headers (Echo's auth.headers) go to the auth endpoint, not the WebSocket.
        ws = WebSocketService(
            ws_url, http_client=client, auth_headers={"Authorization": f"Bearer {xsrf}"}, **FAST
        )
        try:
            errors = Collector(ws.errors)
            ws.channel("orders", type="private").listen("X").subscribe()
            await errors.wait(lambda items: any(isinstance(e, AuthorizationError) for e in items))
            assert app_origin.requests[-1].headers.get("authorization") == f"Bearer {xsrf}"
        finally:
            await ws.shutdown()

        # 4. The WebSocket handshakes carried none of them.
        assert proxy.handshakes
        for raw in proxy.handshakes:
            head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
            for value in (token, session, xsrf):
                assert value not in head
            assert "\r\nauthorization:" not in head
            assert "\r\ncookie:" not in head
        await client.aclose()


async def test_a_redirect_to_another_origin_gets_no_credentials(server: PusherServer) -> None:
    """Even an app client that follows redirects must not carry the token, session or XSRF header to
    the origin a (compromised or misconfigured) auth endpoint redirects to."""
    token, session, xsrf = (secrets.token_hex(8) for _ in range(3))
    async with Recorder("127.0.0.1") as app_origin, Recorder("localhost") as elsewhere:
        app_origin.replies["/broadcasting/auth"] = Reply(
            307, headers={"Location": f"{elsewhere.origin}/steal"}, body=b""
        )
        elsewhere.replies["/steal"] = Reply(403, body=b'{"message":"no"}')
        client = _app_client(app_origin.origin, token, session, xsrf, follow_redirects=True)
        ws = WebSocketService(server.ws_url, http_client=client, **FAST)
        try:
            errors = Collector(ws.errors)
            ws.channel("orders", type="private").listen("X").subscribe()
            await errors.wait(lambda items: any(isinstance(e, AuthorizationError) for e in items))
            assert app_origin.requests
            for request in elsewhere.requests:
                assert _leaks(request.headers, token, session, xsrf) == [], request.headers
        finally:
            await ws.shutdown()
            await client.aclose()


# --- nothing secret in the logs --------------------------------------------------------------------------


class _Everything(logging.Handler):
    """Keeps every record as a handler writes it: the formatted message and any traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        # What a handler that keeps records (rather than lines) would also hold.
        self.lines.extend(repr(arg) for arg in (record.args if isinstance(record.args, tuple) else ()))


async def test_secrets_and_tokens_never_appear_in_logs() -> None:
    """A whole session at DEBUG (private, presence and encrypted channels, sign-in, a reconnect with
    re-authorisation, a refused channel): the app secret, bearer token, session cookie, auth
    signatures and shared secrets appear in no log line."""
    app_secret = "app-secret-" + secrets.token_hex(12)
    master_key = secrets.token_bytes(32)
    token = "tok-" + secrets.token_hex(16)
    user = DemoUser(1, "Ann", "ann@example.test", token)
    handler = _Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    signatures: list[str] = []  # every auth signature the back end handed out
    shared: list[str] = []  # every encrypted channel key it handed out

    async def record_auth(response: httpx.Response) -> None:
        if "/broadcasting/" in response.request.url.path and response.status_code == 200:
            body = (await response.aread()).decode()
            import json

            payload = json.loads(body)
            if isinstance(payload.get("auth"), str):
                signatures.append(payload["auth"].split(":", 1)[-1])
            if isinstance(payload.get("shared_secret"), str):
                shared.append(payload["shared_secret"])

    try:
        app = AppConfig(id="1", key="app-key", secret=app_secret, enable_client_events=True)
        async with PusherServer(apps=[app]) as server, FaultProxy("127.0.0.1", server.port) as proxy:
            creds = PusherCredentials(server.http_url, "1", "app-key", app_secret, master_key)
            async with DemoBackend(creds, users=[user]) as backend:
                client = httpx.AsyncClient(
                    base_url=backend.url,
                    headers={"Authorization": f"Bearer {token}"},
                    event_hooks={"response": [record_auth]},
                )
                ws = WebSocketService(f"ws://127.0.0.1:{proxy.port}/app/app-key", http_client=client, **FAST)
                try:
                    private = ws.channel(backend.notification_channel(1))
                    presence = ws.join("room.1")
                    encrypted = ws.encrypted_private("vault")
                    subs = [Collector(c.subscribed) for c in (private, presence, encrypted)]
                    got = Collector(encrypted.listen(".Secret"))
                    notes = Collector(private.notifications())
                    refused_errors = Collector(ws.errors)
                    ws.channel("private-App.Models.User.2").listen("X").subscribe()  # not Ann's: 403
                    ws.signin()
                    for s in subs:
                        await s.first()
                    await backend.notify(1, "App\\Notifications\\Hello", {"title": "hi"})
                    await backend.broadcast("private-encrypted-vault", "Secret", {"pin": 1234})
                    await notes.first()
                    assert await got.first() == {"pin": 1234}
                    await refused_errors.wait(
                        lambda items: any(isinstance(e, AuthorizationError) for e in items)
                    )
                    await proxy.drop_all()  # reconnect: everything is re-authorised with a new socket id
                    for s in subs:
                        await s.count(2)
                finally:
                    await ws.shutdown()
                    await client.aclose()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    assert len(signatures) >= 8, signatures  # 4 auths (3 channels + sign-in), twice
    assert shared
    text = "\n".join(handler.lines)
    assert len(handler.lines) > 20, "DEBUG logging captured (almost) nothing: the check would be void"
    long_lived = {
        "app secret": app_secret,
        "bearer token": token,
        "master key (b64)": base64.b64encode(master_key).decode(),
        **{f"shared secret {i}": v for i, v in enumerate(shared)},
    }
    per_socket = {f"auth signature {i}": v for i, v in enumerate(signatures)}
    leaked = {name: v for name, v in {**long_lived, **per_socket}.items() if v in text}
    where = sorted({line[:200] for line in handler.lines for v in leaked.values() if v in line})
    assert leaked == {}, f"secrets in logs: {sorted(leaked)}; in lines: {where[:5]}"
    # Not even a recognisable piece of any of them (websockets' frame dumps show a frame's head and
    # tail, and a subscribe frame ends with its signature).
    pieces = sorted(
        name for name, v in {**long_lived, **per_socket}.items() if v[:12] in text or v[-12:] in text
    )
    assert pieces == [], f"pieces of secrets in logs: {pieces}"
