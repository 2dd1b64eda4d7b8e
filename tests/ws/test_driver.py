"""The asyncio client against a scripted loopback server: what real servers will not do on demand."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel

from quvel_ws import (
    AuthorizationError,
    CallbackError,
    ChannelAuthData,
    ConnectionRefused,
    ConnectionState,
    PayloadValidationError,
    PresenceHandlers,
    ProtocolError,
    ServerError,
    ServiceShutDown,
    SubscriptionError,
    WebSocketService,
    WsError,
)
from tests.ws.helpers import Collector, until
from tests.ws.scripted_server import Received, ScriptedServer

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "immediate_retry_jitter": 0.05}


async def fake_auth(channel: str, socket_id: str) -> ChannelAuthData:
    """The scripted server checks no signature; presence needs channel_data."""
    if channel.startswith("presence-"):
        return ChannelAuthData(auth="k:sig", channel_data='{"user_id":7,"user_info":{"name":"Bo"}}')
    return ChannelAuthData(auth="k:sig")


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as srv:
        yield srv


@pytest.fixture
async def make_ws() -> AsyncIterator[Callable[..., WebSocketService]]:
    made: list[WebSocketService] = []

    def make(url: str, **options: Any) -> WebSocketService:
        ws = WebSocketService(url, authorizer=fake_auth, **{**FAST, **options})
        made.append(ws)
        return ws

    yield make
    for ws in made:
        await ws.shutdown()


def subscribes(channel: str) -> Callable[[Received], bool]:
    return lambda f: f.event == "pusher:subscribe" and f.data["channel"] == channel


def unsubscribes(channel: str) -> Callable[[Received], bool]:
    return lambda f: f.event == "pusher:unsubscribe" and f.data["channel"] == channel


async def test_lazy_connect_on_first_subscription(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    ch = ws.channel("news")
    assert server.connection_count == 0
    assert ws.current_state is ConnectionState.INITIALIZED
    got = Collector(ch.listen(".Hello"))
    await server.expect(subscribes("news"))
    await server.send_event("Hello", {"n": 1}, channel="news")
    assert await got.first() == {"n": 1}
    assert ws.socket_id == server.latest.socket_id


async def test_malformed_frames_and_non_json_data_do_not_stop_the_read_loop(
    server: ScriptedServer, make_ws: Any
) -> None:
    ws = make_ws(server.url)
    errors = Collector(ws.errors)
    got = Collector(ws.channel("news").listen(".E"))
    await server.expect(subscribes("news"))
    await server.send('{"event":"broken"')
    await server.send("[1,2,3]")
    await server.send_event("E", "not json at all", channel="news", encode=False)
    await server.send_event("E", 12, channel="news", encode=False)
    await server.send_event("E", None, channel="news", encode=False)  # no data key
    await server.send_event("E", {"ok": True}, channel="news")
    assert await got.count(4) == ["not json at all", 12, None, {"ok": True}]
    kinds = await errors.count(2)
    assert all(isinstance(e, ProtocolError) for e in kinds)
    assert ws.current_state is ConnectionState.CONNECTED
    assert server.connection_count == 1


async def test_oversize_message_is_reported_and_dropped(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url, max_message_bytes=2_000)
    errors = Collector(ws.errors)
    got = Collector(ws.channel("news").listen(".E"))
    await server.expect(subscribes("news"))
    await server.send_event("E", {"blob": "x" * 5_000}, channel="news")
    await server.send_event("E", {"small": 1}, channel="news")
    assert await got.first() == {"small": 1}
    error = await errors.first()
    assert isinstance(error, ProtocolError)
    assert "limit" in str(error)
    assert server.connection_count == 1


async def test_server_ping_is_answered_with_pong(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    await ws.connect(timeout=5)
    await server.send_event("pusher:ping", None, encode=False)
    await server.expect(lambda f: f.event == "pusher:pong")


async def test_close_4001_stops_for_good(make_ws: Any) -> None:
    async with ScriptedServer() as server:
        ws = make_ws(server.url)
        states = Collector(ws.state)
        errors = Collector(ws.errors)
        await ws.connect(timeout=5)
        await server.close(4001, "App does not exist")
        await states.wait(lambda s: s[-1] is ConnectionState.DISCONNECTED)
        assert any(isinstance(e, ConnectionRefused) and e.code == 4001 for e in await errors.count(1))
        with pytest.raises(TimeoutError):
            await server.wait_for_connection(1, timeout=0.5)


async def test_first_message_error_4001_refuses_connect(make_ws: Any) -> None:
    error = '{"event":"pusher:error","data":{"code":4001,"message":"App key app-key not in this cluster"}}'
    async with ScriptedServer(handshake=lambda conn: error) as server:
        ws = make_ws(server.url)
        with pytest.raises(ConnectionRefused):
            await ws.connect(timeout=5)


@pytest.mark.parametrize("code", [4100, 4200, 1006])
async def test_close_codes_that_reconnect_resubscribe(
    server: ScriptedServer, make_ws: Any, code: int
) -> None:
    ws = make_ws(server.url)
    ch = ws.channel("orders", type="private")
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen("OrderShipped"))
    await subscribed.first()
    if code == 1006:
        await server.drop()
    else:
        await server.close(code, "go away")
    await server.wait_for_connection(1)
    await server.expect(lambda f: f.conn == 1 and subscribes("private-orders")(f))
    await subscribed.count(2)
    await server.send_event("App\\Events\\OrderShipped", {"id": 1}, channel="private-orders")
    assert await got.first() == {"id": 1}


async def test_silence_makes_the_client_ping_then_reconnect(make_ws: Any) -> None:
    async with ScriptedServer(activity_timeout=1) as server:
        ws = make_ws(server.url, activity_timeout=0.3, pong_timeout=0.3)
        states = Collector(ws.state)
        await ws.connect(timeout=5)
        await server.expect(lambda f: f.event == "pusher:ping")  # after 0.3 s of silence
        server.blackhole()
        await server.wait_for_connection(1, timeout=5)
        await states.wait(lambda s: s.count(ConnectionState.CONNECTED) >= 2)


async def test_pusher_error_after_connect_is_informational(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    errors = Collector(ws.errors)
    await ws.connect(timeout=5)
    await server.send_event("pusher:error", {"code": 4301, "message": "rate limit"})
    error = await errors.first()
    assert isinstance(error, ServerError)
    assert error.code == 4301
    assert ws.current_state is ConnectionState.CONNECTED


async def test_server_subscription_error_reaches_the_channel(make_ws: Any) -> None:
    async def refuse(conn: Any, frame: Received) -> bool:
        if frame.event == "pusher:subscribe" and frame.data["channel"] == "private-no":
            await conn.send_event(
                "pusher:subscription_error",
                {"type": "AuthError", "error": "The connection is unauthorized.", "status": 401},
                "private-no",
                encode=False,
            )
            return True
        return False

    async with ScriptedServer(on_frame=refuse) as server:
        ws = make_ws(server.url)
        errors = Collector(ws.channel("no", type="private").errors)
        ok = Collector(ws.channel("yes").subscribed)
        error = await errors.first()
        assert isinstance(error, SubscriptionError)
        assert error.status == 401
        await ok.first()


async def test_raising_callback_is_reported_once_and_the_stream_goes_on(
    server: ScriptedServer, make_ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ws = make_ws(server.url)
    ch = ws.channel("news")
    calls: list[Any] = []

    def explode(data: Any) -> None:
        calls.append(data)
        raise RuntimeError("boom")

    ch_errors = Collector(ch.errors)
    ch.listen(".E").subscribe(explode)
    other = Collector(ch.listen(".E"))
    await server.expect(subscribes("news"))
    with caplog.at_level(logging.ERROR, logger="quvel_ws"):
        await server.send_event("E", 1, channel="news")
        await server.send_event("E", 2, channel="news")
        assert await other.count(2) == [1, 2]
    assert calls == [1, 2]
    errors = await ch_errors.count(2)
    assert all(isinstance(e, CallbackError) and isinstance(e.error, RuntimeError) for e in errors)
    assert len([r for r in caplog.records if "boom" in r.getMessage()]) == 2  # once per failure


async def test_invalid_payload_goes_to_errors_and_the_stream_goes_on(
    server: ScriptedServer, make_ws: Any
) -> None:
    class Order(BaseModel):
        id: int

    ws = make_ws(server.url)
    ch = ws.channel("orders")
    orders = Collector(ch.listen(".Order", Order))
    errors = Collector(ch.errors)
    await server.expect(subscribes("orders"))
    await server.send_event("Order", {"id": "not a number"}, channel="orders")
    await server.send_event("Order", {"id": 5}, channel="orders")
    assert await orders.first() == Order(id=5)
    assert isinstance(await errors.first(), PayloadValidationError)


async def test_reference_counting_subscribes_once_and_never_duplicates(
    server: ScriptedServer, make_ws: Any
) -> None:
    ws = make_ws(server.url)
    first = Collector(ws.channel("rc").listen(".E"))
    second = Collector(ws.channel("rc").listen(".E"))
    await server.expect(subscribes("rc"))
    await server.send_event("E", 1, channel="rc")
    await second.first()
    first.dispose()
    await server.send_event("E", 2, channel="rc")
    await second.count(2)
    assert len(server.frames("pusher:subscribe")) == 1
    assert not server.frames("pusher:unsubscribe")
    second.dispose()
    await server.expect(unsubscribes("rc"))
    third = Collector(ws.channel("rc").listen(".E"))
    await server.expect(lambda f: subscribes("rc")(f) and f is not server.frames("pusher:subscribe")[0])
    await ws_ready(ws, "rc")
    await server.send_event("E", 3, channel="rc")
    assert await third.first() == 3
    assert first.items == [1]
    assert second.items == [1, 2]
    await server.send_event("E", 4, channel="rc")
    assert await third.count(2) == [3, 4]  # one delivery each: no duplicated handler


async def ws_ready(ws: WebSocketService, name: str) -> None:
    """Wait until ``name`` is subscribed, without keeping a reference to it."""
    probe = Collector(ws.channel(name).subscribed)
    await probe.first()
    probe.dispose()


async def test_leave_leaves_all_four_variants_and_completes(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    public = Collector(ws.channel("room").listen(".E"))
    private = Collector(ws.channel("room", "private").listen(".E"))
    presence = Collector(ws.join("room").members)
    other = Collector(ws.channel("lobby").listen(".E"))
    for name in ("room", "private-room", "presence-room", "lobby"):
        await server.expect(subscribes(name))
    ws.leave("room")
    for name in ("room", "private-room", "presence-room"):
        await server.expect(unsubscribes(name))
    assert public.completed
    assert private.completed
    assert presence.completed
    assert not other.completed
    ws.leave_all()
    await server.expect(unsubscribes("lobby"))
    assert other.completed


async def test_presence_members_joining_leaving(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    ch = ws.join("room.1")
    members = Collector(ch.members)
    joining = Collector(ch.joining)
    leaving = Collector(ch.leaving)
    here: list[Any] = []
    await ws.subscribe("room.1", "presence", presence_handlers=PresenceHandlers(on_here=here.append))
    await members.wait(lambda items: bool(items and items[-1]))
    assert [m.id for m in members.items[-1]] == ["7"]
    assert ch.me is not None
    assert ch.me.id == "7"
    await server.send_event(
        "pusher_internal:member_added", {"user_id": 8, "user_info": {"n": "C"}}, "presence-room.1"
    )
    await server.send_event(
        "pusher_internal:member_added", {"user_id": 8, "user_info": {"n": "C2"}}, "presence-room.1"
    )  # an update, not a second join
    await server.send_event("pusher_internal:member_removed", {"user_id": 99}, "presence-room.1")  # unknown
    await server.send_event("pusher_internal:member_removed", {"user_id": 8}, "presence-room.1")
    assert [m.id for m in await leaving.count(1)] == ["8"]
    assert [m.id for m in joining.items] == ["8"]
    assert [[m.id for m in snap] for snap in members.items[-3:]] == [["7", "8"], ["7", "8"], ["7"]]
    assert here
    late = Collector(ch.members)  # replayed to a late subscriber
    assert [m.id for m in late.items[0]] == ["7"]


async def test_whisper_between_two_clients(server: ScriptedServer, make_ws: Any) -> None:
    alice, bob = make_ws(server.url), make_ws(server.url)
    a, b = alice.channel("chat", "private"), bob.channel("chat", "private")
    a_ready, b_ready = Collector(a.subscribed), Collector(b.subscribed)
    heard = Collector(b.listen_for_whisper("typing"))
    own = Collector(a.listen_for_whisper("typing"))
    await a_ready.first()
    await b_ready.first()
    a.whisper("typing", {"who": "alice"})
    assert await heard.first() == {"who": "alice"}
    assert own.items == []
    sent = await server.expect(lambda f: f.event == "client-typing")
    assert sent.channel == "private-chat"


async def test_disconnect_stops_reconnecting(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    await ws.connect(timeout=5)
    await ws.disconnect()
    assert ws.current_state is ConnectionState.DISCONNECTED
    await asyncio.wait_for(server.latest.closed.wait(), 5)
    with pytest.raises(TimeoutError):
        await server.wait_for_connection(1, timeout=0.5)


async def test_server_rendering_never_opens_a_socket(server: ScriptedServer) -> None:
    ws = WebSocketService(server.url, server_rendering=True)
    received: list[Any] = []
    sub = await ws.subscribe("news", "public", "E", received.append)
    assert not sub.active
    sub.unsubscribe()
    items = Collector(ws.channel("news").listen(".E"))
    assert items.completed
    assert items.items == []
    await ws.connect()
    ws.channel("chat", "private").whisper("typing", {})
    assert server.connection_count == 0
    await ws.shutdown()


async def test_threadsafe_entry_from_another_thread(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    await ws.connect(timeout=5)
    delivered: list[tuple[Any, bool]] = []
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def on_event(data: Any) -> None:
        delivered.append((data, threading.get_ident() == loop_thread))
        loop.call_soon(arrived.set)

    def worker() -> Any:
        sub = ws.threadsafe.subscribe("news", "public", ".E", on_event)
        raw = ws.channel("news").listen(".E").subscribe(lambda d: delivered.append((d, True)))
        return sub, raw

    sub, raw = await asyncio.to_thread(worker)
    await server.expect(subscribes("news"))
    await ws_ready(ws, "news")
    await server.send_event("E", "hi", channel="news")
    await asyncio.wait_for(arrived.wait(), 5)
    await asyncio.to_thread(ws.threadsafe.unsubscribe, sub)
    raw.dispose()
    await server.expect(unsubscribes("news"))
    assert delivered[0] == ("hi", True)
    with pytest.raises(WsError):
        ws.threadsafe.leave_all()  # on the loop itself it would deadlock: refused


async def test_listen_batches_groups_per_read_and_validates(server: ScriptedServer, make_ws: Any) -> None:
    class Tick(BaseModel):
        i: int

    ws = make_ws(server.url)
    ch = ws.channel("ticks")
    batches = Collector(ch.listen_batches(".Tick", Tick))
    errors = Collector(ch.errors)
    await ws_ready(ws, "ticks")
    frames: list[dict[str, Any]] = [{"i": i} for i in range(50)]
    frames[10] = {"i": "not a number"}
    for data in frames:
        await server.send_event("Tick", data, channel="ticks")
    await batches.wait(lambda bs: sum(len(b) for b in bs) >= 49)
    flat = [t.i for b in batches.items for t in b]
    assert flat == [i for i in range(50) if i != 10]
    assert all(batches.items)
    assert isinstance(await errors.first(), PayloadValidationError)


async def test_async_callbacks_and_use_after_shutdown(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    seen: list[Any] = []

    async def handler(data: Any) -> None:
        await asyncio.sleep(0)
        seen.append(data)
        if data == "bad":
            raise ValueError("async boom")

    errors = Collector(ws.errors)
    sub = await ws.subscribe("news", "public", ".E", handler)
    news = ws.channel("news")
    await ws_ready(ws, "news")
    await server.send_event("E", "bad", channel="news")
    await server.send_event("E", "good", channel="news")
    error = await errors.first()
    assert isinstance(error, CallbackError)
    assert isinstance(error.__cause__, ValueError)
    await until(lambda: len(seen) == 2)
    assert seen == ["bad", "good"]
    await ws.shutdown()
    sub.unsubscribe()  # harmless after shutdown
    ws.leave_all()
    # A channel made before shutdown completes its new Observables at once; making a new channel, or
    # any imperative call, raises.
    late = Collector(news.listen(".E"))
    assert late.completed
    with pytest.raises(ServiceShutDown):
        ws.channel("news")
    with pytest.raises(WsError, match="shut down"):
        await ws.connect()


async def test_watchlist_events_arrive_on_global_events(server: ScriptedServer, make_ws: Any) -> None:
    ws = make_ws(server.url)
    events = Collector(ws.global_events)
    await ws.connect(timeout=5)
    watch = {"events": [{"name": "online", "user_ids": ["1"]}, {"name": "offline", "user_ids": ["2", "3"]}]}
    await server.send_event("pusher_internal:watchlist_events", watch, encode=False)
    first, second = await events.count(2)
    assert (first.event, second.event) == ("online", "offline")
    assert second.data["user_ids"] == ["2", "3"]


@pytest.mark.parametrize(("status", "retried"), [(0, True), (503, True), (403, False)])
async def test_transient_auth_failures_are_retried_with_backoff(
    server: ScriptedServer, status: int, retried: bool
) -> None:
    calls: list[float] = []

    async def flaky(channel: str, socket_id: str) -> ChannelAuthData:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) <= 2:
            raise AuthorizationError(channel, "auth endpoint down", status=status)
        return ChannelAuthData(auth="k:sig")

    ws = WebSocketService(server.url, authorizer=flaky, backoff_initial=0.05, backoff_max=0.2)
    try:
        ch = ws.channel("orders", "private")
        errors = Collector(ch.errors)
        subscribed = Collector(ch.subscribed)
        if retried:
            await subscribed.first()
            assert len(calls) == 3
            assert [getattr(e, "status", None) for e in errors.items] == [status, status]
            assert calls[1] - calls[0] >= 0.02  # first retry after uniform(0.025, 0.05) s
            assert calls[2] - calls[1] >= 0.045  # then uniform(0.05, 0.1) s: backing off
        else:
            await errors.first()
            with pytest.raises(TimeoutError):
                await subscribed.first(within=0.5)
            assert len(calls) == 1  # a refusal waits for a new subscribe or a reconnect
    finally:
        await ws.shutdown()


def test_threadsafe_refuses_at_once_after_the_loop_closed() -> None:
    """A blocking call into a closed loop would wait for its timeout and then fail; it fails at once."""
    from quvel_ws import WebSocketService

    loop = asyncio.new_event_loop()
    ws = WebSocketService("ws://127.0.0.1:9/app/app-key", loop=loop)
    loop.close()
    started = time.monotonic()
    with pytest.raises(WsError, match="closed"):
        ws.threadsafe.call(lambda: None, timeout=30)
    assert time.monotonic() - started < 10  # a hang would run to the 30 s timeout
