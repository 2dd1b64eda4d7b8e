"""A scripted server that answers like Laravel Reverb (``/work/shared/reference/reverb-behaviour.md``).

Reverb cannot be installed here, so the client suite runs against this stand-in as a third server beside
the embedded one and Soketi. It is a real WebSocket server (``websockets``) plus a small HTTP API for the
official ``pusher`` SDK, on its own thread and loop, and it reproduces Reverb's answers:

- ``pusher:connection_established`` with ``activity_timeout`` 30, ``data`` a JSON string; an unknown app
  key gets ``pusher:error`` 4001 and a close;
- ``pusher:ping`` -> ``{"event":"pusher:pong"}``;
- public subscribe -> ``subscription_succeeded`` with ``"data":"{}"``; private, encrypted and presence
  subscribes check the HMAC of ``socket_id:channel[:channel_data]``; a bad or missing signature gets
  the **channel-less** ``{"event":"pusher:error","data":"{\\"code\\":4009,\\"message\\":\\"Connection is
  unauthorized\\"}"}`` and the socket stays open;
- presence: ``ids``/``hash``/``count`` de-duplicated by user id; ``member_added`` only for a user's first
  connection, ``member_removed`` after the last one;
- ``pusher:unsubscribe`` is answered with nothing;
- client events (``accept_client_events_from = members``): relayed to the other subscribers (with
  ``user_id`` on presence), never echoed; from a non-member -> ``pusher:error`` 4009 "The client is not
  a member of the specified channel.";
- anything else (malformed JSON, an unknown event such as ``pusher:signin``, which Reverb does not
  implement) -> ``pusher:error`` 4200 "Invalid message format"; the socket stays open;
- more than ``rate_limit`` messages in a second (when set) -> ``pusher:error`` 4301 "Rate limit
  exceeded", socket kept;
- a message over ``max_message_size`` (10,000 bytes) -> ``pusher:error`` 4200 "Maximum message size
  exceeded" and the connection is closed.

The HTTP API (``host``/``port`` for the SDK) takes ``POST /apps/{id}/events`` and ``batch_events`` and
answers ``GET /apps/{id}/channels[/{name}]``; request signatures are not checked (the tests' SDK signs
them correctly; this server exists to test the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.peers import APP_ID, APP_KEY, APP_SECRET, free_port

UNAUTHORIZED = "Connection is unauthorized"
INVALID = "Invalid message format"


def error_frame(code: int, message: str) -> str:
    """Reverb's channel-less error: ``data`` is a JSON string, there is no ``channel`` key."""
    return orjson.dumps(
        {"event": "pusher:error", "data": orjson.dumps({"code": code, "message": message}).decode()}
    ).decode()


@dataclass(eq=False)
class _Conn:
    ws: ServerConnection
    socket_id: str
    channels: dict[str, tuple[str, Any] | None] = field(default_factory=dict)  # presence: (id, info)
    window: float = 0.0
    count: int = 0

    async def send(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)


class ReverbLikeServer:
    """See the module docstring. ``start()`` runs it on a thread; ``restart(hard)`` re-listens on the
    same ports; ``stop()`` ends it. ``subscribes`` counts the ``pusher:subscribe`` frames per channel."""

    kind = "reverb"
    host = "127.0.0.1"

    def __init__(
        self,
        *,
        key: str = APP_KEY,
        secret: str = APP_SECRET,
        app_id: str = APP_ID,
        rate_limit: int | None = None,
        max_message_size: int = 10_000,
    ) -> None:
        self.key, self.secret, self.app_id = key, secret, app_id
        self.rate_limit = rate_limit
        self.max_message_size = max_message_size
        self.ws_port = free_port()
        self.port = free_port()  # the HTTP API, where the SDK points
        self.subscribes: dict[str, int] = {}
        self.errors_sent: list[tuple[int, str]] = []
        self._conns: set[_Conn] = set()
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ws_server: Server | None = None
        self._http_server: asyncio.Server | None = None
        self._lock = threading.Lock()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/app/{self.key}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle (any thread) -------------------------------------------------------------------

    def start(self) -> ReverbLikeServer:
        self._thread = threading.Thread(target=self._loop.run_forever, name="reverb-like", daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._call(self._close(hard=True))
        self._call(self._cancel_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._thread = None
        self._loop.close()

    def restart(self, hard: bool = True) -> None:
        """Drop every connection (``hard``: no close frame, as after ``kill -9``) and listen again."""
        self._call(self._close(hard=hard))
        self._call(self._listen())

    def kill(self) -> None:
        """Stop listening and drop every connection (an outage until :meth:`revive`)."""
        self._call(self._close(hard=True))

    def revive(self) -> None:
        self._call(self._listen())

    def subscribe_count(self, channel: str) -> int:
        with self._lock:
            return self.subscribes.get(channel, 0)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        self._ws_server = await serve(
            self._handle, "127.0.0.1", self.ws_port, ping_interval=None, max_size=None, close_timeout=1
        )
        self._http_server = await asyncio.start_server(self._http, "127.0.0.1", self.port)

    async def _close(self, *, hard: bool) -> None:
        for server in (self._ws_server, self._http_server):
            if server is not None:
                server.close()
        for conn in list(self._conns):
            if hard:
                conn.ws.transport.abort()
            else:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.close(1001, "server shutting down")
        self._conns.clear()
        for server in (self._ws_server, self._http_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)
        self._ws_server = self._http_server = None

    # --- WebSocket ---------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path if ws.request is not None else "").path
        if path != f"/app/{self.key}":
            await ws.send(error_frame(4001, f"Application does not exist [{path.rsplit('/', 1)[-1]}]"))
            await ws.close(4001, "Application does not exist")
            return
        n = next(self._ids)
        conn = _Conn(ws, f"{100000 + n}.{n * 7919}")
        self._conns.add(conn)
        try:
            established = {"socket_id": conn.socket_id, "activity_timeout": 30}
            await conn.send(
                orjson.dumps(
                    {"event": "pusher:connection_established", "data": orjson.dumps(established).decode()}
                ).decode()
            )
            async for message in ws:
                text = message if isinstance(message, str) else message.decode(errors="replace")
                if len(text.encode()) > self.max_message_size:
                    await self._error(conn, 4200, "Maximum message size exceeded")
                    await ws.close(1009, "Maximum message size exceeded")
                    return
                if self._over_rate(conn):
                    await self._error(conn, 4301, "Rate limit exceeded")
                    continue
                await self._message(conn, text)
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            for channel in list(conn.channels):
                await self._leave(conn, channel)

    def _over_rate(self, conn: _Conn) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        if now - conn.window >= 1.0:
            conn.window, conn.count = now, 0
        conn.count += 1
        return conn.count > self.rate_limit

    async def _error(self, conn: _Conn, code: int, message: str) -> None:
        with self._lock:
            self.errors_sent.append((code, message))
        await conn.send(error_frame(code, message))

    async def _message(self, conn: _Conn, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            frame = None
        event = frame.get("event") if isinstance(frame, dict) else None
        if not isinstance(frame, dict) or not isinstance(event, str):
            await self._error(conn, 4200, INVALID)
            return
        data = frame.get("data")
        if isinstance(data, str) and event.startswith("pusher:"):
            with contextlib.suppress(orjson.JSONDecodeError):
                data = orjson.loads(data)
        if event == "pusher:ping":
            await conn.send('{"event":"pusher:pong"}')
        elif event == "pusher:subscribe" and isinstance(data, dict) and isinstance(data.get("channel"), str):
            await self._subscribe(conn, data)
        elif event == "pusher:unsubscribe" and isinstance(data, dict):
            await self._leave(conn, str(data.get("channel")))
        elif event.startswith("client-") and isinstance(frame.get("channel"), str):
            await self._client_event(conn, frame)
        else:
            await self._error(conn, 4200, INVALID)

    def _signed(self, conn: _Conn, channel: str, auth: Any, channel_data: str | None) -> bool:
        if not isinstance(auth, str) or ":" not in auth:
            return False
        key, _, signature = auth.partition(":")
        subject = f"{conn.socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
        expected = hmac.new(self.secret.encode(), subject.encode(), hashlib.sha256).hexdigest()
        return key == self.key and hmac.compare_digest(signature, expected)

    async def _subscribe(self, conn: _Conn, data: dict[str, Any]) -> None:
        channel: str = data["channel"]
        with self._lock:
            self.subscribes[channel] = self.subscribes.get(channel, 0) + 1
        presence = channel.startswith("presence-")
        channel_data = data.get("channel_data") if presence else None
        private = channel.startswith(("private-", "presence-"))
        if private and not self._signed(conn, channel, data.get("auth"), channel_data):
            await self._error(conn, 4009, UNAUTHORIZED)
            return
        if not presence:
            conn.channels[channel] = None
            await self._send(conn, "pusher_internal:subscription_succeeded", {}, channel)
            return
        try:
            member = orjson.loads(channel_data or "")
            user_id = str(member["user_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(conn, 4009, UNAUTHORIZED)
            return
        first = user_id not in self._members(channel)
        conn.channels[channel] = (user_id, member.get("user_info"))
        members = self._members(channel)
        presence_data = {"ids": list(members), "hash": members, "count": len(members)}
        await self._send(conn, "pusher_internal:subscription_succeeded", {"presence": presence_data}, channel)
        if first:
            added = {"user_id": user_id, "user_info": member.get("user_info")}
            for other in self._subscribers(channel, but=conn):
                await self._send(other, "pusher_internal:member_added", added, channel)

    def _members(self, channel: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for conn in list(self._conns):
            entry = conn.channels.get(channel)
            if entry is not None:
                out.setdefault(entry[0], entry[1])
        return out

    def _subscribers(self, channel: str, but: _Conn | None = None) -> Iterator[_Conn]:
        return (c for c in list(self._conns) if channel in c.channels and c is not but)

    async def _leave(self, conn: _Conn, channel: str) -> None:
        if channel not in conn.channels:
            return
        entry = conn.channels.pop(channel)
        if entry is not None and entry[0] not in self._members(channel):
            for other in self._subscribers(channel):
                await self._send(other, "pusher_internal:member_removed", {"user_id": entry[0]}, channel)

    async def _client_event(self, conn: _Conn, frame: dict[str, Any]) -> None:
        channel = frame["channel"]
        if channel not in conn.channels:
            await self._error(conn, 4009, "The client is not a member of the specified channel.")
            return
        out: dict[str, Any] = {"event": frame["event"], "channel": channel, "data": frame.get("data")}
        entry = conn.channels[channel]
        if entry is not None:
            out["user_id"] = entry[0]
        text = orjson.dumps(out).decode()
        for other in self._subscribers(channel, but=conn):
            await other.send(text)

    async def _send(self, conn: _Conn, event: str, data: Any, channel: str) -> None:
        await conn.send(
            orjson.dumps({"event": event, "channel": channel, "data": orjson.dumps(data).decode()}).decode()
        )

    # --- HTTP API ----------------------------------------------------------------------------------

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                fields = (h.partition(":") for h in lines[1:] if h)
                headers = {k.strip().lower(): v.strip() for k, _, v in fields}
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, payload = await self._api(method, target, body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _api(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        parts = urlsplit(target)
        path = parts.path.split("/")  # ['', 'apps', id, ...]
        if len(path) < 4 or path[1] != "apps" or path[2] != self.app_id:
            return 404, b'{"error":"not found"}'
        if method == "POST" and path[3] in ("events", "batch_events"):
            request = orjson.loads(body or b"{}")
            batch = request.get("batch", []) if path[3] == "batch_events" else [request]
            for item in batch:
                channels = item.get("channels") or [item.get("channel")]
                for channel in channels:
                    text = orjson.dumps({"event": item["name"], "channel": channel, "data": item["data"]})
                    except_id = item.get("socket_id")
                    for conn in self._subscribers(channel):
                        if conn.socket_id != except_id:
                            await conn.send(text.decode())
            return 200, b"{}"
        if method == "GET" and path[3] == "channels" and len(path) == 5:
            channel = path[4]
            count = sum(1 for _ in self._subscribers(channel))
            info: dict[str, Any] = {"occupied": count > 0, "subscription_count": count}
            if channel.startswith("presence-"):
                info["user_count"] = len(self._members(channel))
            return 200, orjson.dumps(info)
        if method == "GET" and path[3] == "channels":
            prefix = parse_qs(parts.query).get("filter_by_prefix", [""])[0]
            names = {n for c in self._conns for n in c.channels if n.startswith(prefix)}
            return 200, orjson.dumps({"channels": {n: {} for n in sorted(names)}})
        return 404, b'{"error":"not found"}'


__all__ = ["ReverbLikeServer", "error_frame"]
