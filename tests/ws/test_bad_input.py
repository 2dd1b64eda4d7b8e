"""Issue 3's "Bad input" list, item by item, on ONE connection: each bad input becomes one typed error
(on ``ws.errors`` and the channel's ``errors``), is logged once, and the connection and every other
subscription keep working (a canary channel receives an event after every item, same socket).

The server is the scripted loopback server (it sends what real servers will not on demand); the auth
endpoint is the real local HTTP one signing with the official ``pusher`` SDK.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nacl.secret
import nacl.utils
import pytest

from quvel_ws import (
    AuthorizationError,
    CallbackError,
    DecryptionError,
    ProtocolError,
    SubscriptionError,
    WebSocketService,
    WsError,
)
from tests.ws.conftest import AuthServer
from tests.ws.helpers import Collector
from tests.ws.scripted_server import Received, ScriptedConnection, ScriptedServer


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("quvel_ws") and r.levelno >= logging.WARNING]


def _sender(
    server: ScriptedServer, event: str, data: Any, *, encode: bool = True
) -> Callable[[], Awaitable[None]]:
    return lambda: server.send_event(event, data, channel="canary", encode=encode)


async def test_every_bad_input_is_one_typed_error_logged_once_and_nothing_else_breaks(
    auth_server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def refuse(conn: ScriptedConnection, frame: Received) -> bool:
        if frame.event == "pusher:subscribe" and frame.data.get("channel") == "private-refused":
            error = {"type": "AuthError", "error": "refused by the server", "status": 403}
            await conn.send_event("pusher:subscription_error", error, "private-refused", encode=False)
            return True
        return False

    auth_server.fail.update(
        {
            "private-a403": 403,
            "private-a500": 500,
            "private-nonjson": "nonjson",
            "private-slow": ("sleep", 1.5),
        }
    )
    caplog.set_level(logging.DEBUG, logger="quvel_ws")
    async with ScriptedServer(on_frame=refuse) as server:
        ws = WebSocketService(
            server.url,
            auth_endpoint=auth_server.url + "/broadcasting/auth",
            auth_timeout=0.5,
            max_message_bytes=4_000,
            backoff_initial=60,  # no retry of a transient auth failure inside this test
            backoff_max=60,
        )
        try:
            errors = Collector(ws.errors)
            canary = Collector(ws.channel("canary").listen(".Tick"))
            anything = Collector(ws.channel("canary").listen(".Any"))
            await Collector(ws.channel("canary").subscribed).first()
            socket_id = ws.socket_id
            ticks = 0

            async def step(
                label: str, action: Callable[[], Awaitable[Any]], expected: type[WsError] | None
            ) -> WsError | None:
                nonlocal ticks
                seen, logged = len(errors.items), len(_warnings(caplog))
                await action()
                if expected is not None:
                    await errors.count(seen + 1)
                ticks += 1  # the connection and the other subscription still work
                await server.send_event("Tick", ticks, channel="canary")
                await canary.count(ticks)
                new = errors.items[seen:]
                assert len(new) == (expected is not None), f"{label}: {new}"
                assert len(_warnings(caplog)) - logged == len(new), f"{label}: logged once"
                assert server.connection_count == 1, label
                assert ws.socket_id == socket_id, label
                if expected is None:
                    return None
                assert isinstance(new[0], expected), f"{label}: {new[0]!r}"
                return new[0]

            # a malformed frame, and valid JSON that is not a Pusher frame
            await step("malformed", lambda: server.send('{"event":"broken"'), ProtocolError)
            await step("not an object", lambda: server.send("[1,2,3]"), ProtocolError)
            await step("no event name", lambda: server.send('{"data":"{}"}'), ProtocolError)
            # unknown events are not errors: ignored quietly, nothing breaks
            await step("unknown event", lambda: server.send_event("Mystery", {}, channel="canary"), None)
            await step("unknown pusher event", lambda: server.send_event("pusher:mystery", {}), None)
            await step("unknown channel", lambda: server.send_event("Any", 1, channel="nowhere"), None)
            # data of every JSON type (string-encoded as servers send it, and raw in the frame)
            forms: list[Any] = [0, -1.5, "text", True, None, [1, "a"], {"a": {"b": [None]}}]
            for value in forms:
                await step(f"data {value!r}", _sender(server, "Any", value), None)
            for value in forms[:-3]:  # raw: numbers, strings, booleans in the frame itself
                await step(f"raw {value!r}", _sender(server, "Any", value, encode=False), None)
            assert anything.items == [*forms, *forms[:-3]]
            # an oversize payload
            error = await step(
                "oversize",
                lambda: server.send_event("Any", {"blob": "x" * 5_000}, channel="canary"),
                ProtocolError,
            )
            assert "limit" in str(error)
            # the auth endpoint answering 403, 500, non-JSON, or nothing in time
            for name, status in (("a403", 403), ("a500", 500), ("nonjson", 200), ("slow", 0)):
                channel_errors = Collector(ws.channel(name, "private").errors)
                error = await step(f"auth {name}", channel_errors.first, AuthorizationError)
                assert isinstance(error, AuthorizationError)
                assert error.status == status
                assert error.channel == f"private-{name}"
                assert channel_errors.items == [error]
            # the server's pusher:subscription_error
            refused = Collector(ws.channel("refused", "private").errors)
            error = await step("subscription_error", refused.first, SubscriptionError)
            assert isinstance(error, SubscriptionError)
            assert error.status == 403
            # a decryption failure (the key is re-fetched once, then the error is reported)
            vault = ws.channel("vault", "encrypted")
            vault_errors = Collector(vault.errors)
            secrets = Collector(vault.listen(".Secret"))
            await Collector(vault.subscribed).first()
            box = nacl.secret.SecretBox(nacl.utils.random(32))  # not the key the endpoint derives
            sealed = box.encrypt(b'{"pin":"0000"}')
            payload = {
                "nonce": base64.b64encode(sealed.nonce).decode(),
                "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
            }
            before = len(auth_server.socket_ids("private-encrypted-vault"))
            error = await step(
                "decryption",
                lambda: server.send_event("Secret", payload, channel="private-encrypted-vault"),
                DecryptionError,
            )
            assert vault_errors.items == [error]
            assert secrets.items == []
            assert len(auth_server.socket_ids("private-encrypted-vault")) == before + 1  # one refresh

            # a user callback that raises: the other subscribers of the event still get it
            def explode(data: Any) -> None:
                raise RuntimeError("boom")

            ws.channel("canary").listen(".Boom").subscribe(explode)
            fine = Collector(ws.channel("canary").listen(".Boom"))
            error = await step("callback", _sender(server, "Boom", 1), CallbackError)
            assert isinstance(error, CallbackError)
            assert isinstance(error.error, RuntimeError)
            assert fine.items == [1]
        finally:
            await ws.shutdown()
