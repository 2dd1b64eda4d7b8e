"""The embedded server's WebSocket side: handshake refusals, limits, heartbeat, sign-in, bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from quvel_ws.auth import Authorizer
from quvel_ws.errors import InvalidArgument
from quvel_ws.server import AppConfig, Limits, PusherServer
from tests.server.conftest import KEY, SECRET, Raw, data_of

AUTH = Authorizer(KEY, SECRET, master_key=bytes(32))


def app(**options: object) -> AppConfig:
    return AppConfig(id="1", key=KEY, secret=SECRET, **options)  # type: ignore[arg-type]


async def test_starts_in_milliseconds_on_a_free_port() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with PusherServer() as server:
        assert loop.time() - started < 1.0  # generous: it is ~1 ms, but machines are shared
        assert server.ws_url == f"ws://127.0.0.1:{server.port}/app/app-key"
        assert server.http_url == f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize("version", ["1", "2", "3", "8", "7.0", "seven", "", "%207", "-7", "07"])
async def test_unsupported_protocol_is_4007(embedded: PusherServer, version: str) -> None:
    ws = await websockets.connect(embedded.ws_url + f"?protocol={version}")
    msg = json.loads(await ws.recv())
    assert msg["data"]["code"] == 4007
    assert "4 to 7" in msg["data"]["message"]
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 4007


@pytest.mark.parametrize("version", ["4", "5", "6", "7", None])
async def test_protocol_versions_4_to_7_are_served(embedded: PusherServer, version: str | None) -> None:
    # Pusher accepts 4-7: pysher 1.0.8 sends 6, older mobile SDKs 5; a missing version is served too.
    query = "" if version is None else f"?protocol={version}"
    async with websockets.connect(embedded.ws_url + query) as ws:
        msg = json.loads(await ws.recv())
        assert msg["event"] == "pusher:connection_established"


async def test_configurable_activity_timeout() -> None:
    async with PusherServer(activity_timeout=120) as server:
        raw = await Raw.connect(server.ws_url)
        assert raw.established["activity_timeout"] == 120


async def test_connection_quota_is_4004() -> None:
    async with PusherServer(apps=[app(max_connections=1)]) as server:
        first = await Raw.connect(server.ws_url)
        ws = await websockets.connect(server.ws_url)
        assert json.loads(await ws.recv())["data"]["code"] == 4004
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4004
        await first.barrier()  # the first one is unaffected


async def test_idle_socket_is_pinged_then_closed_with_4201() -> None:
    async with PusherServer(activity_timeout=1, pong_timeout=0.2) as server:
        silent = await Raw.connect(server.ws_url)
        assert await silent.recv(within=3) == {"event": "pusher:ping", "data": {}}
        code = await silent.closed(within=3)
        assert code == 4201


async def test_socket_answering_pings_stays_connected() -> None:
    async with PusherServer(activity_timeout=1, pong_timeout=0.3) as server:
        raw = await Raw.connect(server.ws_url)
        for _ in range(2):
            assert (await raw.recv(within=3))["event"] == "pusher:ping"
            await raw.send("pusher:pong")
        assert server.connection_count() == 1


@pytest.mark.parametrize("seconds", [0, 0.5, 1e-6, -1])
async def test_activity_timeout_has_a_floor_of_one_second(seconds: float) -> None:
    with pytest.raises(InvalidArgument):
        PusherServer(activity_timeout=seconds)


async def test_graceful_stop_closes_with_4200_and_restart_reuses_the_port(embedded: PusherServer) -> None:
    port = embedded.port
    raw = await Raw.connect(embedded.ws_url)
    stopping = asyncio.create_task(embedded.stop())
    error = await raw.recv()
    assert error["event"] == "pusher:error"
    assert error["data"]["code"] == 4200
    assert await raw.closed() == 4200
    await stopping
    await embedded.start()
    assert embedded.port == port
    again = await Raw.connect(embedded.ws_url)
    await again.close()


async def test_client_events_disabled_is_4301() -> None:
    async with PusherServer(apps=[app()]) as server:
        raw = await Raw.connect(server.ws_url)
        await raw.subscribe("private-a", **AUTH.private(raw.socket_id, "private-a"))
        await raw.send("client-x", {}, channel="private-a")
        err = await raw.expect("pusher:error")
        assert err["data"]["code"] == 4301


@pytest.mark.parametrize(("channel", "code"), [("public-chan", 4301), ("private-encrypted-x", 4301)])
async def test_client_events_only_on_private_and_presence(
    embedded: PusherServer, channel: str, code: int
) -> None:
    raw = await Raw.connect(embedded.ws_url)
    extra = AUTH.private(raw.socket_id, channel) if channel.startswith("private-") else {}
    extra.pop("shared_secret", None)
    await raw.subscribe(channel, **extra)
    await raw.send("client-x", {}, channel=channel)
    assert (await raw.expect("pusher:error"))["data"]["code"] == code


async def test_client_event_rate_limit() -> None:
    async with PusherServer(apps=[app(enable_client_events=True)]) as server:
        a, b = await Raw.connect(server.ws_url), await Raw.connect(server.ws_url)
        for raw in (a, b):
            await raw.subscribe("private-r", **AUTH.private(raw.socket_id, "private-r"))
        for i in range(12):
            await a.send("client-n", {"i": i}, channel="private-r")
        answers = await a.barrier()
        assert [m["data"]["code"] for m in answers] == [4301, 4301]
        received = await b.barrier()
        assert [m["data"]["i"] for m in received] == list(range(10))


async def test_client_event_payload_limit() -> None:
    async with PusherServer(apps=[app(enable_client_events=True, max_payload_bytes=100)]) as server:
        raw = await Raw.connect(server.ws_url)
        await raw.subscribe("private-p", **AUTH.private(raw.socket_id, "private-p"))
        await raw.send("client-big", {"x": "y" * 200}, channel="private-p")
        assert (await raw.expect("pusher:error"))["data"]["code"] == 4301


async def test_client_event_name_limit(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    await raw.subscribe("private-n", **AUTH.private(raw.socket_id, "private-n"))
    await raw.send("client-" + "x" * 200, {}, channel="private-n")
    assert (await raw.expect("pusher:error"))["data"]["code"] == 4301


async def test_presence_member_limit() -> None:
    async with PusherServer(apps=[app(max_presence_members=2)]) as server:
        clients = [await Raw.connect(server.ws_url) for _ in range(3)]
        results = []
        for i, raw in enumerate(clients):
            results.append(
                await raw.subscribe("presence-full", **AUTH.presence(raw.socket_id, "presence-full", i))
            )
        assert [r["event"] for r in results[:2]] == ["pusher_internal:subscription_succeeded"] * 2
        assert results[2]["event"] == "pusher:subscription_error"
        assert results[2]["data"] == {
            "type": "LimitReached",
            "status": 4100,
            "error": "The maximum members per presence channel (2) was reached.",
        }


async def test_presence_needs_channel_data(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    auth = AUTH.presence(raw.socket_id, "presence-x", 1)
    err = await raw.subscribe("presence-x", auth=auth["auth"])
    assert err["event"] == "pusher:subscription_error"
    assert err["data"]["type"] == "AuthError"
    bad = '{"user_info": {}}'
    signed = AUTH._sign(f"{raw.socket_id}:presence-x:{bad}")
    err = await raw.subscribe("presence-x", auth=signed, channel_data=bad)
    assert "user_id" in err["data"]["error"]


async def test_signin_and_user_channel(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    refused = await raw.subscribe("#server-to-user-7")
    assert refused["event"] == "pusher:subscription_error"
    await raw.send("pusher:signin", AUTH.user(raw.socket_id, {"id": 7, "user_info": {"name": "Ann"}}))
    ok = await raw.expect("pusher:signin_success")
    assert json.loads(ok["data"]["user_data"])["id"] == "7"
    assert (await raw.subscribe("#server-to-user-7"))["event"] == "pusher_internal:subscription_succeeded"
    await embedded.trigger("#server-to-user-7", "Hello", {"x": 1})
    assert data_of(await raw.expect("Hello")) == {"x": 1}


async def test_bad_signin_closes_with_4009(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    signed = AUTH.user("1.1", {"id": 7})
    await raw.send("pusher:signin", signed)
    assert (await raw.expect("pusher:error"))["data"]["code"] == 4009
    assert await raw.closed() == 4009


async def test_user_authentication_timeout() -> None:
    async with PusherServer(apps=[app(user_authentication_timeout=0.2)]) as server:
        lazy = await Raw.connect(server.ws_url)
        signed_in = await Raw.connect(server.ws_url)
        await signed_in.send("pusher:signin", AUTH.user(signed_in.socket_id, {"id": 1}))
        await signed_in.expect("pusher:signin_success")
        assert await lazy.closed(within=3) == 4009
        await signed_in.barrier()


async def test_wrong_json_types_get_errors_and_the_socket_lives(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    frames = [
        '{"event":"pusher:subscribe"}',
        '{"event":"pusher:subscribe","data":{"channel":5}}',
        '{"event":"pusher:subscribe","data":"not an object"}',
        '{"event":"pusher:unsubscribe","data":[]}',
        '{"event":"pusher:signin","data":{"auth":1,"user_data":2}}',
        '{"event":"unknown-event","data":{}}',
        '{"event":"client-x","channel":["a"],"data":{}}',
    ]
    for frame in frames[:-3]:
        await raw.ws.send(frame)
    answers = await raw.barrier()
    assert [m["event"] for m in answers] == ["pusher:error", "pusher:error", "pusher:error", "pusher:error"]
    await raw.ws.send(frames[-2])
    await raw.ws.send(frames[-1])
    answers = await raw.barrier()
    assert [m["data"]["code"] for m in answers] == [4200, 4009]
    await raw.ws.send(frames[-3])  # a bad signin closes, as Pusher does
    assert await raw.closed() == 4009


async def test_binary_frame_is_refused_politely(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    await raw.ws.send(b"\x00\x01binary")
    answers = await raw.barrier()
    assert answers[0]["data"]["code"] == 4200


async def test_oversize_frame_closes_with_1009() -> None:
    async with PusherServer(limits=Limits(max_frame_bytes=1024)) as server:
        raw = await Raw.connect(server.ws_url)
        await raw.ws.send(json.dumps({"event": "client-x", "data": "y" * 5000}))
        assert await raw.closed() == 1009
        other = await Raw.connect(server.ws_url)  # the server itself is fine
        await other.barrier()


async def test_flood_of_garbage_does_not_starve_a_good_client(embedded: PusherServer) -> None:
    good, bad = await Raw.connect(embedded.ws_url), await Raw.connect(embedded.ws_url)
    await good.subscribe("ticks")

    async def flood() -> None:
        junk = [
            "{",
            "[1,2,3]",
            '{"event":7}',
            "\xff" * 50,
            '{"event":"pusher:subscribe","data":{"channel":"bad name"}}',
        ]
        for i in range(3000):
            await bad.ws.send(junk[i % len(junk)])

    async def drain_bad() -> None:
        try:
            while True:
                await bad.ws.recv()
        except websockets.ConnectionClosed:
            pass

    flooding = asyncio.create_task(flood())
    draining = asyncio.create_task(drain_bad())
    for i in range(200):
        await embedded.trigger("ticks", "Tick", {"i": i})
        if i % 20 == 0:
            await asyncio.sleep(0)  # interleave with the flood
    received = [data_of(await good.expect("Tick"))["i"] for _ in range(200)]
    assert received == list(range(200))
    await flooding
    draining.cancel()
    await asyncio.gather(draining, return_exceptions=True)
    await bad.barrier()  # the flooder itself is still served (it gets its pong)


async def test_several_apps_are_isolated() -> None:
    apps = [AppConfig(id="1", key="key-one", secret="s1"), AppConfig(id="2", key="key-two", secret="s2")]
    async with PusherServer(apps=apps) as server:
        one = await Raw.connect(server.ws_url_for("key-one"))
        two = await Raw.connect(server.ws_url_for("key-two"))
        await one.subscribe("shared")
        await two.subscribe("shared")
        assert await server.trigger("shared", "E", {"app": 2}, app_id="2") == 1
        assert data_of(await two.expect("E")) == {"app": 2}
        assert await one.barrier() == []
        assert server.channels("1") == {"shared": 1}


async def test_idle_http_connections_are_closed() -> None:
    async with PusherServer(limits=Limits(head_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 3)  # then closed by the server
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_idle_keep_alive_connections_are_closed() -> None:
    async with PusherServer(limits=Limits(http_idle_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 3)  # the answer, then EOF once idle
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"OK")
        writer.close()


async def test_http_and_websocket_garbage_on_the_same_port(embedded: PusherServer) -> None:
    for request in (
        b"NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET /app/app-key HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", embedded.port)
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), 3)
        assert answer.split(b" ")[1] in (b"400", b"413"), answer
        writer.close()
    raw = await Raw.connect(embedded.ws_url)  # still serving
    await raw.barrier()


def test_server_thread_for_sync_code() -> None:
    with PusherServer().start_in_thread() as server:
        port = server.port
        assert server.connection_count() == 0
        server.stop()
        server.start()
        assert server.port == port
        assert server.trigger("news", "E", {"x": 1}) == 0  # nobody subscribed
        server.restart()
        assert server.channels() == {}


async def test_disabled_app_is_refused() -> None:
    async with PusherServer(apps=[app(enabled=False)]) as server:
        ws = await websockets.connect(server.ws_url)
        assert json.loads(await ws.recv())["data"]["code"] == 4003
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        from tests.server.conftest import Target

        resp = await Target("embedded", server.ws_url, server.http_url).api("GET", "/channels")
        assert resp.status_code == 403


async def test_abort_drops_connections_without_a_close_frame(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    await embedded.restart(abort=True)
    with pytest.raises(websockets.ConnectionClosedError):
        await raw.recv()
    assert raw.ws.close_code == 1006
    assert embedded.connection_count() == 0


async def test_close_one_socket(embedded: PusherServer) -> None:
    a, b = await Raw.connect(embedded.ws_url), await Raw.connect(embedded.ws_url)
    assert embedded.close_socket(a.socket_id, 4100, "over capacity")
    assert await a.closed() == 4100
    assert not embedded.close_socket("1.1")
    await b.barrier()


async def test_send_raw_lets_a_test_misbehave(embedded: PusherServer) -> None:
    raw = await Raw.connect(embedded.ws_url)
    assert embedded.send_raw(raw.socket_id, '{"event":"pusher:error","data":"{\\"code\\":4200}"}')
    assert (await raw.recv())["data"] == '{"code":4200}'
    assert embedded.send_raw(raw.socket_id, b"not json")
    assert (await raw.ws.recv()) == "not json"
    assert not embedded.send_raw("1.1", "x")


async def test_watchlist_online_and_offline(embedded: PusherServer) -> None:
    ann, bob = await Raw.connect(embedded.ws_url), await Raw.connect(embedded.ws_url)
    await bob.send("pusher:signin", AUTH.user(bob.socket_id, {"id": "2"}))
    await bob.expect("pusher:signin_success")
    await ann.send("pusher:signin", AUTH.user(ann.socket_id, {"id": "1", "watchlist": ["2", "3"]}))
    await ann.expect("pusher:signin_success")
    online = await ann.expect("pusher_internal:watchlist_events")
    assert online["data"] == {"events": [{"name": "online", "user_ids": ["2"]}]}

    carl = await Raw.connect(embedded.ws_url)
    await carl.send("pusher:signin", AUTH.user(carl.socket_id, {"id": 3}))
    assert (await ann.expect("pusher_internal:watchlist_events"))["data"]["events"] == [
        {"name": "online", "user_ids": ["3"]}
    ]
    await bob.close()
    assert (await ann.expect("pusher_internal:watchlist_events"))["data"]["events"] == [
        {"name": "offline", "user_ids": ["2"]}
    ]


async def test_subscription_count_events_are_coalesced() -> None:
    async with PusherServer(
        apps=[app(subscription_count_events=True, subscription_count_interval=0.3)]
    ) as server:
        first = await Raw.connect(server.ws_url)
        await first.subscribe("counted")
        assert data_of(await first.expect("pusher_internal:subscription_count")) == {"subscription_count": 1}
        others = [await Raw.connect(server.ws_url) for _ in range(3)]
        for raw in others:
            await raw.subscribe("counted")
        # three joins within the interval: one event with the final count
        assert data_of(await first.expect("pusher_internal:subscription_count")) == {"subscription_count": 4}
        await others[0].close()
        assert data_of(await first.expect("pusher_internal:subscription_count")) == {"subscription_count": 3}
        presence = await Raw.connect(server.ws_url)
        await presence.subscribe("presence-p", **AUTH.presence(presence.socket_id, "presence-p", 1))
        assert await presence.barrier() == []  # never for presence channels


async def test_a_client_that_never_reads_is_dropped_not_buffered_forever() -> None:
    async with PusherServer(limits=Limits(max_write_buffer_bytes=256 * 1024)) as server:
        good = await Raw.connect(server.ws_url)
        await good.subscribe("firehose")
        stuck = await Raw.connect(server.ws_url)
        await stuck.subscribe("firehose")
        stuck.ws.transport.pause_reading()  # the kernel buffers fill, then the server's
        received = 0
        caught_up = asyncio.Event()

        async def read_good() -> None:
            nonlocal received
            while True:
                await good.expect("Big")
                received += 1
                if received == sent and server.connection_count() == 1:
                    caught_up.set()

        reader = asyncio.create_task(read_good())
        sent = 0
        while server.connection_count() == 2 and sent < 5000:
            await server.trigger("firehose", "Big", "x" * 8000)
            sent += 1
            await asyncio.sleep(0)  # let the good reader keep up
        assert server.connection_count() == 1  # the stuck one was dropped
        if received < sent:
            await asyncio.wait_for(caught_up.wait(), 10)  # the good reader got every event
        reader.cancel()
        assert server.channels() == {"firehose": 1}


async def test_allowed_origins() -> None:
    cfg = app(allowed_origins=("https://app.example.com", "*.example.org"))
    async with PusherServer(apps=[cfg]) as server:
        for origin in ("https://app.example.com", "https://x.example.org"):
            ok = await websockets.connect(server.ws_url, origin=origin)  # type: ignore[arg-type]
            assert json.loads(await ok.recv())["event"] == "pusher:connection_established"
            await ok.close()
        for bad_origin in ("https://evil.example.com", None):
            refused = await websockets.connect(server.ws_url, origin=bad_origin)  # type: ignore[arg-type]
            assert json.loads(await refused.recv())["data"]["code"] == 4009
            with pytest.raises(websockets.ConnectionClosed):
                await refused.recv()


async def test_no_state_is_left_behind_after_churn() -> None:
    """Connect, join every kind of channel, sign in, watch, leave abruptly, 200 times: nothing leaks."""
    async with PusherServer(apps=[app(enable_client_events=True)]) as server:
        for i in range(200):
            raw = await Raw.connect(server.ws_url)
            sid = raw.socket_id
            await raw.send("pusher:signin", AUTH.user(sid, {"id": str(i % 7), "watchlist": ["1", "2"]}))
            await raw.subscribe("news")
            await raw.subscribe("presence-room", **AUTH.presence(sid, "presence-room", i % 5))
            await raw.subscribe("private-a", **AUTH.private(sid, "private-a"))
            await raw.subscribe(f"#server-to-user-{i % 7}")
            await raw.send("client-x", {"i": i}, channel="private-a")
            if i % 2:
                await raw.ws.close()
            else:
                raw.ws.transport.abort()
        state = server._state(None)
        async with asyncio.timeout(5):
            # the server offers no "all connections gone" event: poll the condition, bounded above
            while state.sockets or state.channels or state.users or state.watchers:  # noqa: ASYNC110
                await asyncio.sleep(0.01)


async def test_in_process_trigger_refuses_bad_arguments_with_invalid_argument(embedded: PusherServer) -> None:
    loose: Any = embedded  # the calls below break the type hints on purpose
    for channels, event, data in [
        (5, "E", 1),
        ([b"news"], "E", 1),
        ("bad name!", "E", 1),
        ("news", None, 1),
        ("news", "E", {1, 2}),  # not JSON-encodable
        ("news", "E", "x" * 20_000),  # over the payload limit
    ]:
        with pytest.raises(InvalidArgument):
            await loose.trigger(channels, event, data)
    raw = await Raw.connect(embedded.ws_url)
    await raw.subscribe("news")
    assert await embedded.trigger(["news"], "E", {"ok": True}) == 1  # and the server still serves
    assert data_of(await raw.expect("E")) == {"ok": True}
    await raw.close()
