"""The HTTP API with the official Python ``pusher`` SDK (unchanged) and hand-made bad requests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import httpx
import pusher
import pytest

from quvel_ws.server import AppConfig, PusherServer, sign_params
from tests.server.conftest import KEY, SECRET, Raw, Target, data_of


@pytest.fixture
async def server() -> AsyncIterator[PusherServer]:
    async with PusherServer(apps=[AppConfig(id="1", key=KEY, secret=SECRET, enable_client_events=True)]) as s:
        yield s


def sdk(server: PusherServer, secret: str = SECRET) -> pusher.Pusher:
    return pusher.Pusher(app_id="1", key=KEY, secret=secret, host="127.0.0.1", port=server.port, ssl=False)


def target(server: PusherServer) -> Target:
    return Target("embedded", server.ws_url, server.http_url)


async def test_sdk_trigger_batch_and_queries(server: PusherServer) -> None:
    client = sdk(server)
    ann, bob = await Raw.connect(server.ws_url), await Raw.connect(server.ws_url)
    await ann.subscribe("news")
    auth = client.authenticate(
        channel="presence-room",
        socket_id=ann.socket_id,
        custom_data={"user_id": 42, "user_info": {"name": "Ann"}},
    )
    ok = await ann.subscribe("presence-room", **auth)  # the SDK's authenticate() output is accepted
    assert data_of(ok)["presence"]["ids"] == [42]
    private = client.authenticate(channel="private-x", socket_id=bob.socket_id)
    assert (await bob.subscribe("private-x", **private))["event"] == "pusher_internal:subscription_succeeded"

    result = await asyncio.to_thread(client.trigger, ["news", "private-x"], "Ev", {"x": 1})
    assert result == {"ok": True}
    assert data_of(await ann.expect("Ev")) == {"x": 1}
    assert data_of(await bob.expect("Ev")) == {"x": 1}

    batch = [
        {"channel": "news", "name": "B1", "data": {"n": 1}},
        {"channel": "news", "name": "B2", "data": "x"},
    ]
    await asyncio.to_thread(client.trigger_batch, batch)
    assert [(await ann.expect("B1"))["event"], (await ann.expect("B2"))["data"]] == ["B1", "x"]

    channels = await asyncio.to_thread(client.channels_info, None, ["subscription_count"])
    assert set(channels["channels"]) == {"news", "presence-room", "private-x"}
    presence = await asyncio.to_thread(client.channels_info, "presence-", ["user_count"])
    assert presence["channels"] == {
        "presence-room": {"subscription_count": 1, "occupied": True, "user_count": 1}
    }
    info = await asyncio.to_thread(client.channel_info, "presence-room", ["user_count", "subscription_count"])
    assert info == {"occupied": True, "subscription_count": 1, "user_count": 1}
    users = await asyncio.to_thread(client.users_info, "presence-room")
    assert users == {"users": [{"id": "42"}]}


async def test_sdk_wrong_secret_is_refused(server: PusherServer) -> None:
    with pytest.raises(pusher.errors.PusherBadAuth):
        await asyncio.to_thread(sdk(server, secret="nope").trigger, "news", "Ev", {})


async def test_sdk_terminate_user_connections(server: PusherServer) -> None:
    client = sdk(server)
    raw = await Raw.connect(server.ws_url)
    await raw.send("pusher:signin", client.authenticate_user(raw.socket_id, {"id": "9"}))
    await raw.expect("pusher:signin_success")
    await asyncio.to_thread(client.terminate_user_connections, "9")
    assert (await raw.expect("pusher:error"))["data"]["code"] == 4009
    assert await raw.closed() == 4009


async def test_sdk_request_with_a_stale_timestamp_is_refused(server: PusherServer) -> None:
    stale_clock = SimpleNamespace(time=lambda: time.time() - 700)  # the SDK's clock only, not ours
    with mock.patch("pusher.http.time", stale_clock), pytest.raises(pusher.errors.PusherBadAuth):
        await asyncio.to_thread(sdk(server).trigger, "news", "Ev", {})


async def test_stale_timestamp_is_401(server: PusherServer) -> None:
    resp = await target(server).api(
        "POST", "/events", {"name": "E", "channel": "c", "data": "{}"}, timestamp=int(time.time()) - 700
    )
    assert resp.status_code == 401
    assert "Timestamp expired" in resp.json()["error"]


async def test_body_md5_must_match(server: PusherServer) -> None:
    body = json.dumps({"name": "E", "channel": "c", "data": "{}"}).encode()
    params = sign_params("POST", "/apps/1/events", {}, key=KEY, secret=SECRET, body=body)
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{server.http_url}/apps/1/events", params=params, content=body + b" ")
    assert resp.status_code == 401


@pytest.mark.parametrize("drop", ["auth_signature", "auth_key", "auth_timestamp"])
async def test_missing_auth_parameters_are_401(server: PusherServer, drop: str) -> None:
    body = json.dumps({"name": "E", "channel": "c", "data": "{}"}).encode()
    params = sign_params("POST", "/apps/1/events", {}, key=KEY, secret=SECRET, body=body)
    del params[drop]
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{server.http_url}/apps/1/events", params=params, content=body)
    assert resp.status_code == 401


async def test_invalid_json_body_is_400(server: PusherServer) -> None:
    body = b"{not json"
    params = sign_params("POST", "/apps/1/events", {}, key=KEY, secret=SECRET, body=body)
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{server.http_url}/apps/1/events", params=params, content=body)
    assert resp.status_code == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "E", "channel": "c"}, 400),  # no data
        ({"channel": "c", "data": "{}"}, 400),  # no name
        ({"name": "E", "channels": [], "data": "{}"}, 400),
        ({"name": "E", "channels": "c", "data": "{}"}, 400),
        ({"name": "E", "channel": "bad name", "data": "{}"}, 400),
        ({"name": "E", "channel": "c", "data": "{}", "socket_id": "abc"}, 400),
        ({"name": "E", "channels": ["private-encrypted-a", "b"], "data": "{}"}, 400),
        ({"name": "E", "channel": "c", "data": "x" * 10241}, 413),
        ({"name": "E", "channel": "c", "data": "{}", "info": "bogus"}, 400),
    ],
)
async def test_event_validation(server: PusherServer, body: dict[str, Any], status: int) -> None:
    resp = await target(server).api("POST", "/events", body)
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == status


async def test_events_info(server: PusherServer) -> None:
    raw = await Raw.connect(server.ws_url)
    await raw.subscribe("news")
    resp = await target(server).trigger(["news", "empty"], "E", {}, info="subscription_count")
    assert resp.json() == {
        "ok": True,
        "channels": {"news": {"subscription_count": 1}, "empty": {"subscription_count": 0}},
    }


async def test_batch_limit(server: PusherServer) -> None:
    batch = [{"channel": "c", "name": "E", "data": "{}"}] * 11
    resp = await target(server).api("POST", "/batch_events", {"batch": batch})
    assert resp.status_code == 400
    one_bad = [
        {"channel": "c", "name": "E", "data": "{}"},
        {"channel": "bad name", "name": "E", "data": "{}"},
    ]
    raw = await Raw.connect(server.ws_url)
    await raw.subscribe("c")
    assert (await target(server).api("POST", "/batch_events", {"batch": one_bad})).status_code == 400
    assert await raw.barrier() == []  # all or nothing


async def test_users_of_a_public_channel_is_400(server: PusherServer) -> None:
    assert (await target(server).api("GET", "/channels/news/users")).status_code == 400


async def test_health_and_unknown_routes(server: PusherServer) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(server.http_url + "/")).text == "OK"
        assert (await client.get(server.http_url + "/nope")).status_code == 404
        # keep-alive: several requests on one connection
        for _ in range(3):
            assert (await client.get(server.http_url + "/ready")).status_code == 200


async def test_webhooks_are_signed_like_pushers() -> None:
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        await received.put((headers, body))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    hook = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{hook.sockets[0].getsockname()[1]}/hook"
    app = AppConfig(id="1", key=KEY, secret=SECRET, enable_client_events=True, webhooks=(url,))
    events: list[dict[str, Any]] = []
    try:
        async with PusherServer(apps=[app]) as server:
            raw = await Raw.connect(server.ws_url)
            auth = pusher.Pusher(app_id="1", key=KEY, secret=SECRET).authenticate(
                channel="presence-w", socket_id=raw.socket_id, custom_data={"user_id": "5"}
            )
            await raw.subscribe("presence-w", **auth)
            await raw.send("client-hi", {"a": 1}, channel="presence-w")
            await raw.close()
            while {e["name"] for e in events} < {
                "channel_occupied",
                "member_added",
                "client_event",
                "member_removed",
                "channel_vacated",
            }:
                headers, body = await asyncio.wait_for(received.get(), 5)
                assert headers["x-pusher-key"] == KEY
                expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                assert headers["x-pusher-signature"] == expected
                payload = json.loads(body)
                assert isinstance(payload["time_ms"], int)
                events.extend(payload["events"])
    finally:
        hook.close()
        await hook.wait_closed()
    by_name = {e["name"]: e for e in events}
    assert by_name["member_added"] == {"name": "member_added", "channel": "presence-w", "user_id": "5"}
    assert by_name["client_event"]["event"] == "client-hi"
    assert by_name["client_event"]["user_id"] == "5"
    assert json.loads(by_name["client_event"]["data"]) == {"a": 1}


@pytest.mark.parametrize(
    "params",
    [
        {"auth_timestamp": "9" * 400},  # float overflow
        {"auth_timestamp": "1" * 5000},  # over int()'s digit limit
        {"auth_timestamp": "²"},  # str.isdigit() says yes, int() says no
    ],
)
async def test_hostile_auth_timestamps_are_400(server: PusherServer, params: dict[str, str]) -> None:
    query = {"auth_key": KEY, "auth_version": "1.0", "auth_signature": "0" * 64, **params}
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{server.http_url}/apps/1/channels", params=query)
    assert resp.status_code == 400


@pytest.mark.parametrize("length", ["1" * 5000, "²", "-1"])
async def test_hostile_content_length_is_400(server: PusherServer, length: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"POST /apps/1/events HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    writer.close()
