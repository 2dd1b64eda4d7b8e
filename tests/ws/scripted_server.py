"""A real, scriptable Pusher-protocol WebSocket server for tests (``websockets.asyncio.server``).

It does what real servers will not do on demand: send malformed frames, non-JSON data or server
pings, close with any code (4001, 4100, 4200, even 1004/1005 that libraries refuse to send), drop
the TCP connection (1006), or go silent with the socket left open. By default it also behaves like a
small Soketi: it sends ``pusher:connection_established``, answers ``pusher:ping``, confirms
subscriptions (presence members included), relays client events to the other subscribers and
records every frame the client sent.

Usage::

    async with ScriptedServer(activity_timeout=30) as srv:
        client = make_client(srv.url)            # ws://127.0.0.1:PORT/app/app-key
        conn = await srv.wait_for_connection()   # the first connection (index 0)
        await srv.expect(lambda f: f.event == "pusher:subscribe" and f.data["channel"] == "chat")
        await srv.send_event("my-event", {"x": 1}, channel="chat")   # data JSON-encoded like servers do
        await srv.send('{"event":"broken"')      # any raw text frame
        await srv.close(4200, "reconnect now")   # close the latest connection with any code
        conn = await srv.wait_for_connection(1)  # the client came back
        srv.blackhole()                          # stop reading and answering; TCP stays open
        await srv.drop()                         # abort TCP: the client sees 1006

API:

- ``ScriptedServer(*, app_key="app-key", activity_timeout=30, handshake=True, answer_pings=True,
  auto_subscribe=True, succeeded_style="reverb", relay_client_events=True, answer_signin=True,
  on_frame=None)``. ``succeeded_style`` is how a non-presence ``subscription_succeeded`` carries its
  data: ``"reverb"`` (``"data":"{}"``) or ``"soketi"`` (no ``data`` key). ``answer_signin`` replies to
  ``pusher:signin`` with ``pusher:signin_success`` (signatures are not checked).
  ``handshake`` is ``True`` (send ``connection_established``), ``False`` (send nothing: handshake
  timeouts), or a callable ``(conn) -> str | None`` returning the raw first frame per connection
  (e.g. a ``pusher:error`` 4001).
  ``on_frame(conn, frame) -> bool`` (sync or async) sees every client frame first; returning True
  skips the default handling (to refuse a subscription, delay a pong...).
- ``url``, ``port``, ``connections`` (every accepted :class:`ScriptedConnection`, in order),
  ``connection_count``, ``latest``, ``received`` (every :class:`Received` frame, all connections).
- ``await wait_for_connection(index=0, timeout=5)``: the ``index``-th connection once accepted.
- ``await expect(predicate, timeout=5)``: the first recorded frame, not returned by an earlier
  ``expect``, for which ``predicate(frame)`` is true; waits for it; ``TimeoutError`` lists what came.
- ``frames(event=None)``: recorded frames, optionally one event only.
- On the latest connection (or on any ``ScriptedConnection`` directly): ``await send(text)``,
  ``await send_event(event, data=None, channel=None, *, encode=True, **extra)``,
  ``await close(code=1000, reason="")`` (``code=None`` sends an empty close frame: the client sees 1005),
  ``await drop()``, ``blackhole()``, ``socket_id``, ``subscriptions``, ``closed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# Close codes websockets lets an endpoint send; anything else is written as a raw close frame.
_SENDABLE = {1000, 1001, 1002, 1003, *range(1007, 1015)}


@dataclass(frozen=True)
class Received:
    """One frame the client sent. ``frame`` is the decoded JSON object, or None if it was not one."""

    conn: int
    text: str
    frame: dict[str, Any] | None

    @property
    def event(self) -> str | None:
        return self.frame.get("event") if self.frame is not None else None

    @property
    def data(self) -> Any:
        return self.frame.get("data") if self.frame is not None else None

    @property
    def channel(self) -> str | None:
        return self.frame.get("channel") if self.frame is not None else None


@dataclass
class ScriptedConnection:
    """One accepted client connection."""

    index: int
    ws: ServerConnection
    socket_id: str
    subscriptions: dict[str, str | None] = field(default_factory=dict)  # channel -> presence user id
    presence_info: dict[str, tuple[str, Any]] = field(default_factory=dict)  # channel -> (id, info)
    silent: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, text: str) -> None:
        """Send a raw text frame (anything: malformed JSON included)."""
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    async def send_event(
        self, event: str, data: Any = None, channel: str | None = None, *, encode: bool = True, **extra: Any
    ) -> None:
        """Send a Pusher frame; ``data`` is JSON-encoded into a string (as servers do) unless
        ``encode=False``; ``data=None`` with ``encode=False`` omits the key."""
        msg: dict[str, Any] = {"event": event}
        if channel is not None:
            msg["channel"] = channel
        if encode:
            msg["data"] = orjson.dumps(data).decode()
        elif data is not None:
            msg["data"] = data
        msg.update(extra)
        await self.send(orjson.dumps(msg).decode())

    async def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Close with any code. Codes websockets refuses to send (1004-1006, 1015, 2xxx) and
        ``None`` (an empty close frame: the client sees 1005) are written as raw close frames."""
        if code is not None and (code in _SENDABLE or 3000 <= code <= 4999):
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(code, reason)
            return
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        transport = self.ws.transport
        if not transport.is_closing():
            transport.write(bytes([0x88, len(payload)]) + payload)  # FIN + close opcode, unmasked
        try:
            await asyncio.wait_for(self.closed.wait(), 2)
        except TimeoutError:
            transport.abort()

    async def drop(self) -> None:
        """Abort the TCP connection without a close frame (the client sees 1006)."""
        self.ws.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 2)

    def blackhole(self) -> None:
        """Stop reading and answering; the TCP connection stays open (a dead NAT, a sleeping laptop)."""
        self.silent = True
        self.ws.transport.pause_reading()


FrameHook = Callable[[ScriptedConnection, Received], "bool | Awaitable[bool]"]


class ScriptedServer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        app_key: str = "app-key",
        activity_timeout: int | float = 30,
        handshake: bool | Callable[[ScriptedConnection], str | None] = True,
        answer_pings: bool = True,
        auto_subscribe: bool = True,
        succeeded_style: Literal["reverb", "soketi"] = "reverb",
        relay_client_events: bool = True,
        answer_signin: bool = True,
        on_frame: FrameHook | None = None,
    ) -> None:
        self.app_key = app_key
        self.activity_timeout = activity_timeout
        self.handshake = handshake
        self.answer_pings = answer_pings
        self.auto_subscribe = auto_subscribe
        self.relay_client_events = relay_client_events
        self.succeeded_style = succeeded_style
        self.answer_signin = answer_signin
        self.on_frame = on_frame
        self.connections: list[ScriptedConnection] = []
        self.received: list[Received] = []
        self._consumed: set[int] = set()
        self._server: Server | None = None
        self._changed: asyncio.Condition | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._changed = asyncio.Condition()
        # No server-side WS pings: liveness is the Pusher protocol's business (pusher:ping).
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None, close_timeout=2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self.connections:
            conn.ws.transport.abort()
        if self._server is not None:
            self._server.close(close_connections=False)
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None, "use `async with ScriptedServer() as srv`"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/app/{self.app_key}"

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    @property
    def latest(self) -> ScriptedConnection:
        if not self.connections:
            raise AssertionError("no client has connected yet")
        return self.connections[-1]

    # --- waiting --------------------------------------------------------------------------------------

    async def _wait(
        self,
        check: Callable[[], Any],
        timeout: float,  # noqa: ASYNC109 (test API)
        what: Callable[[], str],
    ) -> Any:
        assert self._changed is not None
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    result = check()
                    if result is not None:
                        return result
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(what()) from None

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_connection(self, index: int = 0, timeout: float = 5.0) -> ScriptedConnection:  # noqa: ASYNC109
        """The ``index``-th accepted connection (0 = the first), waiting for it if needed."""
        conn: ScriptedConnection = await self._wait(
            lambda: self.connections[index] if len(self.connections) > index else None,
            timeout,
            lambda: f"connection #{index} did not arrive within {timeout}s ({len(self.connections)} so far)",
        )
        return conn

    async def expect(self, predicate: Callable[[Received], bool], timeout: float = 5.0) -> Received:  # noqa: ASYNC109 (a one-call test API)
        """The first not-yet-expected frame matching ``predicate``; waits up to ``timeout`` seconds."""

        def find() -> Received | None:
            for i, frame in enumerate(self.received):
                if i not in self._consumed and predicate(frame):
                    self._consumed.add(i)
                    return frame
            return None

        found: Received = await self._wait(
            find,
            timeout,
            lambda: (
                f"no matching frame within {timeout}s; received: "
                + repr([r.text for r in self.received])[:2000]
            ),
        )
        return found

    def frames(self, event: str | None = None) -> list[Received]:
        return [r for r in self.received if event is None or r.event == event]

    # --- acting on the latest connection ------------------------------------------------------------

    async def send(self, text: str) -> None:
        await self.latest.send(text)

    async def send_event(
        self, event: str, data: Any = None, channel: str | None = None, *, encode: bool = True, **extra: Any
    ) -> None:
        await self.latest.send_event(event, data, channel, encode=encode, **extra)

    async def close(self, code: int | None = 1000, reason: str = "") -> None:
        await self.latest.close(code, reason)

    async def drop(self) -> None:
        await self.latest.drop()

    def blackhole(self) -> None:
        self.latest.blackhole()

    async def broadcast(self, event: str, data: Any, channel: str) -> int:
        """Send an event to every connection subscribed to ``channel``; returns how many got it."""
        targets = [c for c in self.connections if channel in c.subscriptions and not c.silent]
        for conn in targets:
            await conn.send_event(event, data, channel)
        return len(targets)

    # --- the server -----------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        index = len(self.connections)
        conn = ScriptedConnection(index, ws, f"{index + 1}.{(index + 1) * 7919}")
        self.connections.append(conn)
        try:
            if self.handshake is True:
                established = {"socket_id": conn.socket_id, "activity_timeout": self.activity_timeout}
                await conn.send_event("pusher:connection_established", established)
            elif callable(self.handshake):
                first = self.handshake(conn)
                if first is not None:
                    await conn.send(first)
            await self._notify()
            async for message in ws:
                text = message if isinstance(message, str) else message.decode(errors="replace")
                try:
                    parsed = orjson.loads(text)
                except orjson.JSONDecodeError:
                    parsed = None
                frame = Received(index, text, parsed if isinstance(parsed, dict) else None)
                self.received.append(frame)
                if not conn.silent:
                    await self._react(conn, frame)
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            await self._left(conn)
            conn.closed.set()
            await self._notify()

    async def _react(self, conn: ScriptedConnection, frame: Received) -> None:
        if self.on_frame is not None:
            handled = self.on_frame(conn, frame)
            if inspect.isawaitable(handled):
                handled = await handled
            if handled:
                return
        event, data = frame.event, frame.data
        if event == "pusher:ping" and self.answer_pings:
            await conn.send_event("pusher:pong", {}, encode=False)
        elif event == "pusher:subscribe" and self.auto_subscribe and isinstance(data, dict):
            await self._subscribe(conn, data)
        elif event == "pusher:signin" and self.answer_signin and isinstance(data, dict):
            await conn.send_event("pusher:signin_success", {"user_data": data.get("user_data")}, encode=False)
        elif event == "pusher:unsubscribe" and isinstance(data, dict):
            channel = data.get("channel")
            if isinstance(channel, str):
                await self._unsubscribe(conn, channel)
        elif (
            event is not None
            and event.startswith("client-")
            and self.relay_client_events
            and frame.channel in conn.subscriptions
        ):
            channel = frame.channel
            assert channel is not None
            extra = {}
            user_id = conn.subscriptions[channel]
            if user_id is not None:
                extra["user_id"] = user_id
            for other in self.connections:
                if other is not conn and channel in other.subscriptions and not other.silent:
                    await other.send_event(event, data, channel, encode=False, **extra)

    async def _subscribe(self, conn: ScriptedConnection, data: dict[str, Any]) -> None:
        channel = data.get("channel")
        if not isinstance(channel, str):
            return
        if not channel.startswith("presence-"):
            conn.subscriptions[channel] = None
            if self.succeeded_style == "soketi":
                await conn.send_event("pusher_internal:subscription_succeeded", None, channel, encode=False)
            else:
                await conn.send_event("pusher_internal:subscription_succeeded", {}, channel)
            return
        try:
            member = orjson.loads(data.get("channel_data") or "{}")
            user_id = str(member["user_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.send_event(
                "pusher:subscription_error",
                {"type": "AuthError", "error": "presence channel_data without user_id", "status": 401},
                channel,
                encode=False,
            )
            return
        already = {c.subscriptions.get(channel) for c in self.connections if channel in c.subscriptions}
        conn.subscriptions[channel] = user_id
        conn.presence_info[channel] = (user_id, member.get("user_info"))
        members = {
            uid: info
            for c in self.connections
            for ch, (uid, info) in c.presence_info.items()
            if ch == channel and channel in c.subscriptions
        }
        await conn.send_event(
            "pusher_internal:subscription_succeeded",
            {"presence": {"ids": list(members), "hash": members, "count": len(members)}},
            channel,
        )
        if user_id not in already:
            for other in self.connections:
                if other is not conn and channel in other.subscriptions and not other.silent:
                    added = {"user_id": user_id, "user_info": member.get("user_info")}
                    await other.send_event("pusher_internal:member_added", added, channel)

    async def _unsubscribe(self, conn: ScriptedConnection, channel: str) -> None:
        user_id = conn.subscriptions.pop(channel, None)
        conn.presence_info.pop(channel, None)
        if user_id is None:
            return
        still = any(c.subscriptions.get(channel) == user_id for c in self.connections)
        if not still:
            for other in self.connections:
                if channel in other.subscriptions and not other.silent:
                    await other.send_event("pusher_internal:member_removed", {"user_id": user_id}, channel)

    async def _left(self, conn: ScriptedConnection) -> None:
        for channel in list(conn.subscriptions):
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._unsubscribe(conn, channel)


__all__ = ["Received", "ScriptedConnection", "ScriptedServer"]
