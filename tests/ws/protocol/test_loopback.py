"""The core driven over real sockets against the scripted server: proves both against each other for
what real servers will not send on demand (malformed frames, any close code, silence, server pings).

The driver here is deliberately minimal (the library's driver lives in ``quvel_ws``); it only turns
the core's outputs into socket operations and socket happenings into core inputs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from quvel_ws.errors import ConnectionRefused, ProtocolError
from quvel_ws.protocol import (
    ChannelEvent,
    CloseTransport,
    ConnectionState,
    ErrorRaised,
    OpenTransport,
    Output,
    ProtocolConfig,
    PusherProtocol,
    SendFrame,
    SubscriptionSucceeded,
)
from tests.ws.scripted_server import ScriptedServer


class MiniDriver:
    """Runs a PusherProtocol on websockets; records every output."""

    def __init__(self, url: str, **config: Any) -> None:
        self.proto = PusherProtocol(ProtocolConfig(url=url, **config))
        self.log: list[Output] = []
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._conn: ClientConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, url: str) -> None:
        try:
            conn = await connect(url, ping_interval=None, close_timeout=0.5, open_timeout=2)
        except Exception as exc:
            self._inbox.put_nowait(("failed", exc))
            return
        self._inbox.put_nowait(("opened", conn))
        try:
            async for message in conn:
                self._inbox.put_nowait(("frame", conn, message))
        except ConnectionClosed:
            pass
        self._inbox.put_nowait(("closed", conn, conn.close_code, conn.close_reason or ""))

    def _act(self) -> None:
        for out in self.proto.events_to_process():
            self.log.append(out)
            if isinstance(out, OpenTransport):
                self._spawn(self._open(out.url))
            elif isinstance(out, SendFrame) and self._conn is not None:
                self._spawn(self._conn.send(out.text))
            elif isinstance(out, CloseTransport) and self._conn is not None:
                self._spawn(self._conn.close(out.code, out.reason))
        self._changed.set()

    async def run(self) -> None:
        self._act()
        while True:
            deadline = self.proto.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            try:
                item = await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                self.proto.tick(self.now())
                self._act()
                continue
            kind = item[0]
            if kind == "opened":
                self._conn = item[1]
                self.proto.transport_opened(self.now())
            elif kind == "failed":
                self.proto.transport_failed(item[1], self.now())
            elif kind == "frame" and item[1] is self._conn:
                self.proto.receive(item[2], self.now())
            elif kind == "closed" and item[1] is self._conn:
                self._conn = None
                self.proto.transport_closed(item[2], item[3], self.now())
            self._act()

    async def wait_for(self, check: Callable[[list[Output]], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not check(self.log):
                self._changed.clear()
                await self._changed.wait()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            self._conn.transport.abort()


@contextlib.asynccontextmanager
async def running(srv: ScriptedServer, **config: Any) -> AsyncIterator[MiniDriver]:
    driver = MiniDriver(srv.url, **config)
    task = asyncio.create_task(driver.run())
    try:
        yield driver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await driver.aclose()


def n_of(kind: type, log: list[Output]) -> int:
    return sum(isinstance(e, kind) for e in log)


async def test_connect_subscribe_receive_and_malformed_frames() -> None:
    async with ScriptedServer() as srv, running(srv) as d:
        d.proto.subscribe("chat", d.now())
        d.proto.connect(d.now())
        d._act()
        subscribe = {"channel": "chat", "auth": ""}
        await srv.expect(lambda f: f.event == "pusher:subscribe" and f.data == subscribe)
        await d.wait_for(lambda log: n_of(SubscriptionSucceeded, log) == 1)
        await srv.send("{broken json")
        await srv.send_event("plain", "not json at all", "chat", encode=False)
        await srv.send_event("obj", {"a": 1}, "chat")
        await d.wait_for(lambda log: n_of(ChannelEvent, log) == 2)
        events = [e for e in d.log if isinstance(e, ChannelEvent)]
        assert [(e.event, e.data) for e in events] == [("plain", "not json at all"), ("obj", {"a": 1})]
        assert any(isinstance(e, ErrorRaised) and isinstance(e.error, ProtocolError) for e in d.log)
        assert d.proto.state is ConnectionState.CONNECTED


async def test_server_ping_is_answered() -> None:
    async with ScriptedServer() as srv, running(srv) as d:
        d.proto.connect(d.now())
        d._act()
        await srv.wait_for_connection()
        await srv.send('{"event":"pusher:ping"}')
        pong = await srv.expect(lambda f: f.event == "pusher:pong")
        assert pong.frame == {"event": "pusher:pong", "data": {}}


@pytest.mark.parametrize("code", [4200, 4100, 1000, None, 1004])
async def test_close_codes_reconnect_and_resubscribe(code: int | None) -> None:
    async with ScriptedServer() as srv, running(srv, backoff_initial=0.05, immediate_retry_jitter=0.05) as d:
        d.proto.subscribe("chat", d.now())
        d.proto.connect(d.now())
        d._act()
        await d.wait_for(lambda log: n_of(SubscriptionSucceeded, log) == 1)
        await srv.close(code, "scripted")
        conn = await srv.wait_for_connection(1)
        await d.wait_for(lambda log: n_of(SubscriptionSucceeded, log) == 2)
        assert "chat" in conn.subscriptions
        assert d.proto.socket_id == conn.socket_id


async def test_dropped_tcp_reconnects() -> None:
    async with ScriptedServer() as srv, running(srv, backoff_initial=0.05) as d:
        d.proto.connect(d.now())
        d._act()
        await srv.wait_for_connection()
        await srv.drop()
        await srv.wait_for_connection(1)


@pytest.mark.parametrize("how", ["close", "first-message"])
async def test_refused_4001_never_reconnects(how: str) -> None:
    first = '{"event":"pusher:error","data":{"code":4001,"message":"App key not found"}}'
    handshake: Any = (lambda conn: first) if how == "first-message" else True
    async with ScriptedServer(handshake=handshake) as srv, running(srv, backoff_initial=0.05) as d:
        d.proto.connect(d.now())
        d._act()
        await srv.wait_for_connection()
        if how == "close":
            await d.wait_for(lambda log: d.proto.state is ConnectionState.CONNECTED)
            await srv.close(4001, "App key not found")
        await d.wait_for(lambda log: d.proto.state is ConnectionState.DISCONNECTED)
        assert any(isinstance(e, ErrorRaised) and isinstance(e.error, ConnectionRefused) for e in d.log)
        # Nothing can reconnect: no timer is armed, no open was asked for after the refusal.
        assert d.proto.next_deadline() is None
        assert sum(isinstance(e, OpenTransport) for e in d.log) == 1
        assert srv.connection_count == 1


async def test_blackholed_server_is_detected_by_the_heartbeat() -> None:
    async with (
        ScriptedServer(activity_timeout=0.2) as srv,
        running(srv, pong_timeout=0.3, immediate_retry_jitter=0.05) as d,
    ):
        d.proto.connect(d.now())
        d._act()
        await srv.wait_for_connection()
        await srv.expect(lambda f: f.event == "pusher:ping")  # answered while the server is alive
        srv.blackhole()
        await srv.wait_for_connection(1, timeout=5)
        assert any(isinstance(e, CloseTransport) and e.code == 4201 for e in d.log)


async def test_handshake_timeout_when_server_says_nothing() -> None:
    async with (
        ScriptedServer(handshake=False) as srv,
        running(srv, handshake_timeout=0.2, backoff_initial=0.05) as d,
    ):
        d.proto.connect(d.now())
        d._act()
        await srv.wait_for_connection(1, timeout=5)
        assert d.proto.state is not ConnectionState.CONNECTED


async def test_client_events_relayed_between_two_clients_with_presence_user_id() -> None:
    async with ScriptedServer() as srv, running(srv) as a, running(srv) as b:
        for d, uid in ((a, "1"), (b, "2")):
            d.proto.subscribe("presence-room", d.now())
            d.proto.connect(d.now())
            d._act()
            await d.wait_for(lambda log: any(type(e).__name__ == "AuthorizeChannel" for e in log))
            assert d.proto.socket_id is not None
            from quvel_ws.protocol import ChannelAuthData

            d.proto.channel_authorized(
                "presence-room", d.proto.socket_id, ChannelAuthData("k:s", f'{{"user_id":{uid}}}'), d.now()
            )
            d._act()
            await d.wait_for(lambda log: n_of(SubscriptionSucceeded, log) == 1)
        await a.wait_for(lambda log: any(type(e).__name__ == "MemberAdded" for e in log))
        a.proto.send_client_event("presence-room", "client-typing", {"on": True}, a.now())
        a._act()
        await b.wait_for(lambda log: n_of(ChannelEvent, log) == 1)
        (event,) = [e for e in b.log if isinstance(e, ChannelEvent)]
        assert (event.event, event.data, event.user_id) == ("client-typing", {"on": True}, "1")
        assert n_of(ChannelEvent, a.log) == 0  # never echoed to the sender


async def test_scripted_server_expect_times_out_with_what_it_received() -> None:
    async with ScriptedServer() as srv:
        async with connect(srv.url) as ws:
            await ws.recv()
            await ws.send('{"event":"pusher:ping","data":{}}')
            await srv.expect(lambda f: f.event == "pusher:ping")
            with pytest.raises(TimeoutError, match="pusher:ping"):
                await srv.expect(lambda f: f.event == "pusher:ping", timeout=0.2)  # already consumed
        assert srv.connection_count == 1
        assert [f.event for f in srv.frames()] == ["pusher:ping"]


@pytest.mark.parametrize(("code", "seen"), [(None, 1005), (4001, 4001), (4100, 4100), (1004, 1006)])
async def test_scripted_server_closes_with_any_code(code: int | None, seen: int) -> None:
    async with ScriptedServer() as srv, connect(srv.url) as ws:
        await ws.recv()
        await srv.close(code, "bye")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == seen  # 1004 may not be sent: websockets fails the connection instead


async def test_scripted_server_presence_members_leave_when_a_client_drops() -> None:
    async with ScriptedServer() as srv, connect(srv.url) as a, connect(srv.url) as b:
        for ws, uid in ((a, 1), (b, 2)):
            await ws.recv()
            await ws.send(
                '{"event":"pusher:subscribe","data":{"channel":"presence-r","auth":"k:s",'
                f'"channel_data":"{{\\"user_id\\":{uid}}}"}}}}'
            )
            await ws.recv()  # subscription_succeeded
        added = orjson.loads(await a.recv())
        assert added["event"] == "pusher_internal:member_added"
        assert orjson.loads(added["data"])["user_id"] == "2"
        await srv.connections[1].drop()
        removed = orjson.loads(await a.recv())
        assert (removed["event"], orjson.loads(removed["data"])) == (
            "pusher_internal:member_removed",
            {"user_id": "2"},
        )


@pytest.mark.parametrize("style", ["reverb", "soketi"])
async def test_signin_and_both_subscription_succeeded_styles(style: str) -> None:
    from quvel_ws.protocol import SignedIn, UserAuthData, UserEvent

    async with ScriptedServer(succeeded_style=style) as srv, running(srv) as d:  # type: ignore[arg-type]
        d.proto.signin(d.now())
        d.proto.subscribe("chat", d.now())
        d.proto.connect(d.now())
        d._act()
        await d.wait_for(lambda log: any(type(e).__name__ == "AuthorizeUser" for e in log))
        assert d.proto.socket_id is not None
        d.proto.user_authorized(d.proto.socket_id, UserAuthData("k:s", '{"id":"9"}'), d.now())
        d._act()
        await d.wait_for(lambda log: n_of(SignedIn, log) == 1 and n_of(SubscriptionSucceeded, log) == 1)
        (ok,) = [e for e in d.log if isinstance(e, SubscriptionSucceeded)]
        assert ok.data == ({} if style == "reverb" else None)
        await srv.expect(lambda f: f.event == "pusher:subscribe" and f.data["channel"] == "#server-to-user-9")
        await srv.send_event("notice", {"n": 1}, "#server-to-user-9")
        await d.wait_for(lambda log: n_of(UserEvent, log) == 1)
