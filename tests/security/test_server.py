"""Security of the embedded server: what an attacker with a socket or an HTTP client cannot do.

Every refusal is checked from the outside (raw frames, raw signed requests) and followed by a proof
that the server still serves: the attacker's socket answers a ping, or an honest client gets its event.
"""

from __future__ import annotations

import ast
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import quvel_ws.server
from quvel_ws.server import AppConfig, PusherServer
from tests.security.raw import RawClient, channel_auth, refused, signed_query, succeeded

APP_A = AppConfig(id="1", key="key-a", secret="secret-a", enable_client_events=True)
APP_B = AppConfig(id="2", key="key-b", secret="secret-b", enable_client_events=True)
APP_QUIET = AppConfig(id="3", key="key-quiet", secret="secret-quiet", enable_client_events=False)


@pytest.fixture
async def server() -> AsyncIterator[PusherServer]:
    async with PusherServer(apps=[APP_A, APP_B, APP_QUIET]) as srv:
        yield srv


@pytest.fixture
async def http(server: PusherServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        yield client


async def connect(server: PusherServer, app: AppConfig = APP_A) -> RawClient:
    return await RawClient.connect(server.ws_url_for(app.key))


async def post_event(
    http: httpx.AsyncClient,
    app_id: str,
    body: dict[str, Any],
    *,
    key: str,
    secret: str,
    timestamp: int | None = None,
    sign_body: bytes | None = None,
) -> httpx.Response:
    raw = json.dumps(body).encode()
    path = f"/apps/{app_id}/events"
    query = signed_query(
        "POST", path, raw if sign_body is None else sign_body, key=key, secret=secret, timestamp=timestamp
    )
    return await http.post(f"{path}?{query}", content=raw, headers={"Content-Type": "application/json"})


def auth_a(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    return channel_auth(APP_A.key, APP_A.secret, socket_id, channel, channel_data)


def event(channel: str, name: str = "Hello", data: Any = "{}") -> dict[str, Any]:
    return {"name": name, "channels": [channel], "data": data}


# --- cross-app isolation ---------------------------------------------------------------------------


async def test_private_auth_signed_by_another_app_is_refused(server: PusherServer) -> None:
    client = await connect(server, APP_B)
    forged = channel_auth(APP_A.key, APP_A.secret, client.socket_id, "private-orders")
    assert refused(await client.subscribe("private-orders", auth=forged))
    # Same signature under B's key name, still A's secret: refused too.
    mixed = f"{APP_B.key}:{forged.split(':', 1)[1]}"
    assert refused(await client.subscribe("private-orders", auth=mixed))
    ok = channel_auth(APP_B.key, APP_B.secret, client.socket_id, "private-orders")
    assert succeeded(await client.subscribe("private-orders", auth=ok))
    await client.close()


async def test_http_api_refuses_keys_and_secrets_of_another_app(
    server: PusherServer, http: httpx.AsyncClient
) -> None:
    listener = await connect(server, APP_B)
    assert succeeded(await listener.subscribe("news"))
    # App A's credentials against app B's endpoint.
    r = await post_event(http, APP_B.id, event("news"), key=APP_A.key, secret=APP_A.secret)
    assert r.status_code == 401
    # B's key with A's secret.
    r = await post_event(http, APP_B.id, event("news"), key=APP_B.key, secret=APP_A.secret)
    assert r.status_code == 401
    await listener.nothing_for(0.2, lambda f: f.get("event") == "Hello")
    # Publishing on A does not reach B's subscriber of a channel with the same name.
    r = await post_event(http, APP_A.id, event("news"), key=APP_A.key, secret=APP_A.secret)
    assert r.status_code == 200
    await listener.nothing_for(0.2, lambda f: f.get("event") == "Hello")
    r = await post_event(http, APP_B.id, event("news"), key=APP_B.key, secret=APP_B.secret)
    assert r.status_code == 200
    assert (await listener.next(lambda f: f.get("event") == "Hello"))["channel"] == "news"
    await listener.close()


async def test_unknown_app_key_is_refused_with_4001(server: PusherServer) -> None:
    import websockets

    async with websockets.connect(server.ws_url_for("no-such-key") + "?protocol=7") as ws:
        frame = json.loads(await ws.recv())
        assert frame["event"] == "pusher:error"
        assert frame["data"]["code"] == 4001
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001


# --- signatures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda sid: channel_auth(APP_A.key, "wrong", sid, "private-x"), id="wrong-secret"),
        pytest.param(lambda sid: auth_a("1.1", "private-x"), id="other-socket"),
        pytest.param(lambda sid: auth_a(sid, "private-y"), id="other-channel"),
        pytest.param(lambda sid: auth_a(sid, "private-x").upper(), id="case"),
        pytest.param(lambda sid: auth_a(sid, "private-x")[:-1], id="truncated"),
        pytest.param(lambda sid: f"{APP_A.key}:", id="empty-signature"),
        pytest.param(lambda sid: "", id="empty"),
        pytest.param(lambda sid: 12345, id="not-a-string"),
        pytest.param(lambda sid: None, id="null"),
    ],
)
async def test_wrong_channel_signatures_are_refused(
    server: PusherServer, forge: Callable[[str], Any]
) -> None:
    client = await connect(server)
    answer = await client.subscribe("private-x", auth=forge(client.socket_id))
    assert refused(answer), answer
    assert server.channels(APP_A.id).get("private-x", 0) == 0
    await client.ping()
    await client.close()


async def test_an_auth_replayed_on_another_socket_is_refused(server: PusherServer) -> None:
    victim = await connect(server)
    attacker = await connect(server)
    stolen = channel_auth(APP_A.key, APP_A.secret, victim.socket_id, "private-inbox.1")
    assert succeeded(await victim.subscribe("private-inbox.1", auth=stolen))
    assert refused(await attacker.subscribe("private-inbox.1", auth=stolen))
    assert server.channels(APP_A.id)["private-inbox.1"] == 1
    await victim.close()
    await attacker.close()


@pytest.mark.parametrize("age", [-601, 601, 3600, -86400])
async def test_stale_or_future_timestamps_are_refused(
    server: PusherServer, http: httpx.AsyncClient, age: int
) -> None:
    listener = await connect(server)
    await listener.subscribe("news")
    r = await post_event(
        http, APP_A.id, event("news"), key=APP_A.key, secret=APP_A.secret, timestamp=int(time.time()) - age
    )
    assert r.status_code == 401
    await listener.nothing_for(0.1, lambda f: f.get("event") == "Hello")
    await listener.close()


async def test_a_captured_request_replayed_after_the_window_is_refused(
    server: PusherServer, http: httpx.AsyncClient
) -> None:
    """The timestamp bounds replay to Pusher's 600 s window: a captured request made 10 minutes ago
    (signed then, valid then) no longer publishes."""
    body = json.dumps(event("news")).encode()
    path = f"/apps/{APP_A.id}/events"
    then = int(time.time()) - 601
    captured = signed_query("POST", path, body, key=APP_A.key, secret=APP_A.secret, timestamp=then)
    r = await http.post(f"{path}?{captured}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert "timestamp" in r.json()["error"].lower()


async def test_tampered_body_and_signature_are_refused(server: PusherServer, http: httpx.AsyncClient) -> None:
    listener = await connect(server)
    await listener.subscribe("news")
    # Signed for one body, sent with another (body_md5 mismatch).
    signed_for = json.dumps(event("news", data='{"amount":1}')).encode()
    r = await post_event(
        http,
        APP_A.id,
        event("news", data='{"amount":1000}'),
        key=APP_A.key,
        secret=APP_A.secret,
        sign_body=signed_for,
    )
    assert r.status_code == 401
    # A valid query with its signature altered.
    raw = json.dumps(event("news")).encode()
    query = signed_query("POST", f"/apps/{APP_A.id}/events", raw, key=APP_A.key, secret=APP_A.secret)
    flipped = query[:-1] + ("0" if query[-1] != "0" else "1")
    r = await http.post(f"/apps/{APP_A.id}/events?{flipped}", content=raw)
    assert r.status_code == 401
    # Unsigned.
    r = await http.post(f"/apps/{APP_A.id}/events", content=raw)
    assert r.status_code == 401
    # Signed for GET, sent as POST.
    get_query = signed_query("GET", f"/apps/{APP_A.id}/events", raw, key=APP_A.key, secret=APP_A.secret)
    r = await http.post(f"/apps/{APP_A.id}/events?{get_query}", content=raw)
    assert r.status_code == 401
    await listener.nothing_for(0.1, lambda f: f.get("event") == "Hello")
    await listener.close()


async def test_channel_queries_need_a_signature_too(server: PusherServer, http: httpx.AsyncClient) -> None:
    client = await connect(server)
    await client.subscribe(
        "presence-x",
        auth=channel_auth(APP_A.key, APP_A.secret, client.socket_id, "presence-x", '{"user_id":"7"}'),
        channel_data='{"user_id":"7"}',
    )
    for path in (
        f"/apps/{APP_A.id}/channels",
        f"/apps/{APP_A.id}/channels/presence-x",
        f"/apps/{APP_A.id}/channels/presence-x/users",
    ):
        r = await http.get(path)
        assert r.status_code == 401, path
        assert "7" not in r.text
        q = signed_query("GET", path, b"", key=APP_A.key, secret="nope")
        assert (await http.get(f"{path}?{q}")).status_code == 401
        q = signed_query("GET", path, b"", key=APP_A.key, secret=APP_A.secret)
        assert (await http.get(f"{path}?{q}")).status_code == 200
    await client.close()


# --- names and sizes ---------------------------------------------------------------------------------


async def test_overlong_names_are_refused_everywhere(server: PusherServer, http: httpx.AsyncClient) -> None:
    client = await connect(server)
    long_channel = "c" * 201
    assert refused(await client.subscribe(long_channel))
    assert succeeded(await client.subscribe("c" * 200))
    r = await post_event(http, APP_A.id, event(long_channel), key=APP_A.key, secret=APP_A.secret)
    assert r.status_code == 400
    r = await post_event(http, APP_A.id, event("news", name="e" * 201), key=APP_A.key, secret=APP_A.secret)
    assert r.status_code == 400
    # Client event with an overlong name on a channel the socket did join.
    auth = channel_auth(APP_A.key, APP_A.secret, client.socket_id, "private-chat")
    assert succeeded(await client.subscribe("private-chat", auth=auth))
    await client.send({"event": "client-" + "x" * 300, "channel": "private-chat", "data": {}})
    err = await client.next(lambda f: f.get("event") == "pusher:error")
    assert err["data"]["code"] == 4301
    # Bad characters.
    for bad in ("bad channel", "new\nline", "naïve", "#not-a-user-channel", "a/b"):
        assert refused(await client.subscribe(bad)), bad
    assert not any(name.startswith(("bad", "new", "na", "#", "a/")) for name in server.channels(APP_A.id))
    await client.ping()
    await client.close()


async def test_oversize_payloads_are_refused(server: PusherServer, http: httpx.AsyncClient) -> None:
    big = "x" * (APP_A.max_payload_bytes + 1)
    r = await post_event(http, APP_A.id, event("news", data=big), key=APP_A.key, secret=APP_A.secret)
    assert r.status_code == 413
    a, b = await connect(server), await connect(server)
    for c in (a, b):
        assert succeeded(
            await c.subscribe(
                "private-chat", auth=channel_auth(APP_A.key, APP_A.secret, c.socket_id, "private-chat")
            )
        )
    await a.send({"event": "client-big", "channel": "private-chat", "data": {"x": big}})
    assert (await a.next(lambda f: f.get("event") == "pusher:error"))["data"]["code"] == 4301
    await b.nothing_for(0.1, lambda f: f.get("event") == "client-big")
    await a.ping()
    await a.close()
    await b.close()


# --- client events ------------------------------------------------------------------------------------


async def test_client_events_are_refused_where_disabled(server: PusherServer) -> None:
    a, b = await connect(server, APP_QUIET), await connect(server, APP_QUIET)
    for c in (a, b):
        auth = channel_auth(APP_QUIET.key, APP_QUIET.secret, c.socket_id, "private-room")
        assert succeeded(await c.subscribe("private-room", auth=auth))
    await a.send({"event": "client-typing", "channel": "private-room", "data": {"who": "a"}})
    err = await a.next(lambda f: f.get("event") == "pusher:error")
    assert err["data"]["code"] == 4301
    await b.nothing_for(0.2, lambda f: f.get("event") == "client-typing")
    await a.close()
    await b.close()


async def test_client_events_only_on_joined_private_channels_and_never_echoed(server: PusherServer) -> None:
    a, b = await connect(server), await connect(server)
    assert succeeded(await a.subscribe("public-room"))
    assert succeeded(await b.subscribe("public-room"))
    # Public channel: refused even though client events are enabled.
    await a.send({"event": "client-x", "channel": "public-room", "data": {}})
    assert (await a.next(lambda f: f.get("event") == "pusher:error"))["data"]["code"] == 4301
    # Encrypted channel: refused (the server could not check what it cannot read).
    for c in (a, b):
        auth = channel_auth(APP_A.key, APP_A.secret, c.socket_id, "private-encrypted-room")
        assert succeeded(await c.subscribe("private-encrypted-room", auth=auth))
    await a.send({"event": "client-x", "channel": "private-encrypted-room", "data": {}})
    assert (await a.next(lambda f: f.get("event") == "pusher:error"))["data"]["code"] == 4301
    # A private channel the sender has not joined: refused, b does not get it.
    auth_b = channel_auth(APP_A.key, APP_A.secret, b.socket_id, "private-b-only")
    assert succeeded(await b.subscribe("private-b-only", auth=auth_b))
    await a.send({"event": "client-x", "channel": "private-b-only", "data": {}})
    assert (await a.next(lambda f: f.get("event") == "pusher:error"))["data"]["code"] == 4009
    await b.nothing_for(0.2, lambda f: f.get("event") == "client-x")
    # A joined private channel: delivered to the other, not echoed to the sender.
    auth_a = channel_auth(APP_A.key, APP_A.secret, a.socket_id, "private-b-only")
    assert succeeded(await a.subscribe("private-b-only", auth=auth_a))
    await a.send({"event": "client-x", "channel": "private-b-only", "data": {"n": 1}})
    assert (await b.next(lambda f: f.get("event") == "client-x"))["data"] == {"n": 1}
    await a.nothing_for(0.2, lambda f: f.get("event") == "client-x")
    await a.close()
    await b.close()


async def test_client_event_rate_limit(server: PusherServer) -> None:
    a, b = await connect(server), await connect(server)
    for c in (a, b):
        auth = channel_auth(APP_A.key, APP_A.secret, c.socket_id, "private-flood")
        assert succeeded(await c.subscribe("private-flood", auth=auth))
    for i in range(APP_A.max_client_events_per_second * 3):
        await a.send({"event": "client-flood", "channel": "private-flood", "data": {"i": i}})
    err = await a.next(lambda f: f.get("event") == "pusher:error")
    assert err["data"]["code"] == 4301
    await a.ping()
    got = 0
    try:
        while True:
            await b.next(lambda f: f.get("event") == "client-flood", within=0.3)
            got += 1
    except TimeoutError:
        pass
    assert 0 < got <= APP_A.max_client_events_per_second + 1
    await a.close()
    await b.close()


# --- presence impersonation and unauthenticated subscriptions ---------------------------------------


async def test_presence_user_id_must_be_the_signed_one(server: PusherServer) -> None:
    honest = await connect(server)
    data_honest = '{"user_id":"1","user_info":{"name":"Ann"}}'
    auth = channel_auth(APP_A.key, APP_A.secret, honest.socket_id, "presence-room", data_honest)
    assert succeeded(await honest.subscribe("presence-room", auth=auth, channel_data=data_honest))

    mallory = await connect(server)
    signed_data = '{"user_id":"2","user_info":{"name":"Mallory"}}'
    signed = channel_auth(APP_A.key, APP_A.secret, mallory.socket_id, "presence-room", signed_data)
    for forged in (
        '{"user_id":"1","user_info":{"name":"Ann"}}',  # impersonate Ann with Mallory's own signature
        '{"user_id":"2","user_info":{"name":"Admin"}}',  # change the info
        '{"user_id":2,"user_info":{"name":"Mallory"}}',  # same id, other type: other bytes
        signed_data + " ",  # trailing space: other bytes
    ):
        assert refused(await mallory.subscribe("presence-room", auth=signed, channel_data=forged)), forged
    # No channel_data at all, with an auth signed for none.
    bare = channel_auth(APP_A.key, APP_A.secret, mallory.socket_id, "presence-room")
    assert refused(await mallory.subscribe("presence-room", auth=bare))
    assert server.presence_members("presence-room", APP_A.id) == {"1": {"name": "Ann"}}
    await honest.nothing_for(0.1, lambda f: f.get("event") == "pusher_internal:member_added")
    # The honest way in works, and Ann sees Mallory as herself (id 2), not as Ann.
    assert succeeded(await mallory.subscribe("presence-room", auth=signed, channel_data=signed_data))
    added = await honest.next(lambda f: f.get("event") == "pusher_internal:member_added")
    data = json.loads(added["data"]) if isinstance(added["data"], str) else added["data"]
    assert data["user_id"] == "2"
    await honest.close()
    await mallory.close()


@pytest.mark.parametrize("channel", ["private-x", "presence-x", "private-encrypted-x", "private-cache-x"])
async def test_private_channels_need_auth(server: PusherServer, channel: str) -> None:
    client = await connect(server)
    assert refused(await client.subscribe(channel))
    assert refused(await client.subscribe(channel, auth=None))
    assert refused(await client.subscribe(channel, channel_data='{"user_id":"1"}'))
    assert channel not in server.channels(APP_A.id)
    await client.ping()
    await client.close()


async def test_server_to_user_channel_needs_sign_in_as_that_user(server: PusherServer) -> None:
    client = await connect(server)
    assert refused(await client.subscribe("#server-to-user-1"))
    user_data = '{"id":"2"}'
    to_sign = f"{client.socket_id}::user::{user_data}"
    auth = f"{APP_A.key}:{hmac.new(APP_A.secret.encode(), to_sign.encode(), 'sha256').hexdigest()}"
    await client.send({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})
    await client.next(lambda f: f.get("event") == "pusher:signin_success")
    assert refused(await client.subscribe("#server-to-user-1"))
    await client.close()


async def test_forged_signin_closes_the_socket(server: PusherServer) -> None:
    import websockets

    client = await connect(server)
    user_data = '{"id":"1"}'
    forged = f"{APP_A.key}:{'0' * 64}"
    await client.send({"event": "pusher:signin", "data": {"auth": forged, "user_data": user_data}})

    async def read_all() -> None:
        while True:
            await client.next(within=5)

    with pytest.raises(websockets.ConnectionClosed):
        await read_all()
    assert client.ws.close_code == 4009


# --- constant-time comparison -------------------------------------------------------------------------


SERVER_DIR = Path(quvel_ws.server.__file__).parent


def _suspicious_comparisons(source: str) -> list[str]:
    """``==``/``!=`` whose operands mention a signature, a digest, a token or a secret (the app key is
    public: comparing it with ``==`` is fine)."""
    found = []
    words = ("signature", "digest", "token", "secret", "expected", "given", "md5", "['auth']", "auth_string")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            text = ast.unparse(node)
            operands = [ast.unparse(n).lower() for n in (node.left, *node.comparators)]
            if any(w in o for o in operands for w in words) and not any(
                o.startswith(("'", '"', "len(")) or o.isdigit() for o in operands
            ):
                found.append(text)
    return found


def test_signature_checks_use_constant_time_comparison() -> None:
    offenders = {}
    for path in SERVER_DIR.glob("*.py"):
        bad = _suspicious_comparisons(path.read_text())
        if bad:
            offenders[path.name] = bad
    assert offenders == {}, f"compare secrets with hmac.compare_digest, not ==: {offenders}"


async def test_compare_digest_is_what_decides(
    server: PusherServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every signature check goes through ``hmac.compare_digest`` (counted while it runs)."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    client = await connect(server)
    await client.subscribe("private-z", auth=auth_a(client.socket_id, "private-z"))
    assert calls, "channel auth was not compared with hmac.compare_digest"
    calls.clear()
    r = await post_event(http, APP_A.id, event("news"), key=APP_A.key, secret=APP_A.secret)
    assert r.status_code == 200
    assert calls, "the HTTP API signature was not compared with hmac.compare_digest"
    await client.close()
