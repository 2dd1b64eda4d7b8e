"""``PusherServer``: the embedded Pusher-protocol-7 server, and ``ServerThread`` to run it from sync code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import orjson

from quvel_ws._logs import RepeatLimiter, suppressed_note
from quvel_ws.errors import HttpApiError, InvalidArgument
from quvel_ws.server._app import (
    DEFAULT_SECRET,
    AppConfig,
    Limits,
    check_apps,
    default_secret_apps,
    is_loopback,
)
from quvel_ws.server._conn import ServerConnection
from quvel_ws.server._frames import event_frame, text_frame
from quvel_ws.server._http import EventToPublish, HttpApi, Route, channel_attributes, validate_event
from quvel_ws.server._listen import Admission, Listener
from quvel_ws.server._state import AppState
from quvel_ws.server._thread import LoopThread
from quvel_ws.server._webhooks import WebhookSender
from quvel_ws.server._ws import PING_FRAME, Socket, new_socket_id

if TYPE_CHECKING:
    from quvel_ws.server._cluster import ClusterAdapter

logger = logging.getLogger(__name__)
SHUTDOWN_MESSAGE = "Server closed. Please reconnect shortly."
#: Lowest ``activity_timeout``: below it clients would ping in a tight loop.
MIN_ACTIVITY_TIMEOUT = 1.0
#: ``?protocol=`` versions served (Pusher accepts 4-7: pysher sends 6, old mobile SDKs 5).
PROTOCOL_VERSIONS = frozenset({"4", "5", "6", "7"})


class PusherServer:
    """A Pusher-compatible server: WebSocket protocol 7 on ``/app/{key}`` and the HTTP API on the same port.

    ``async with PusherServer(apps=[AppConfig(...)], port=0) as server:`` starts it in milliseconds;
    ``server.ws_url`` / ``server.http_url`` say where. ``stop()`` closes every client with 4200 (so
    they reconnect) and ``start()`` listens again on the same port. ``routes`` maps extra HTTP paths
    to handlers answered before the HTTP API (``quvel serve --dev-auth`` adds Laravel's auth paths).

    A ``host`` beyond loopback is refused while an app uses the well-known default secret
    (``app-secret``): set a secret of your own.
    """

    def __init__(
        self,
        apps: AppConfig | Iterable[AppConfig] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        activity_timeout: float = 30,
        pong_timeout: float = 30,
        close_timeout: float = 2.0,
        limits: Limits | None = None,
        ssl: SSLContext | None = None,
        redis_url: str | None = None,
        redis_transport: Literal["stream", "pubsub"] = "stream",
        cluster: ClusterAdapter | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        if apps is None:
            apps = [AppConfig()]
        elif isinstance(apps, AppConfig):
            apps = [apps]
        self.apps: list[AppConfig] = check_apps(apps)
        if not all(
            isinstance(t, int | float) and not isinstance(t, bool) and t > 0
            for t in (activity_timeout, pong_timeout, close_timeout)
        ):
            raise InvalidArgument("activity_timeout, pong_timeout and close_timeout must be positive seconds")
        if activity_timeout < MIN_ACTIVITY_TIMEOUT:
            raise InvalidArgument(
                f"activity_timeout must be at least {MIN_ACTIVITY_TIMEOUT:g} s (clients ping after it), "
                f"got {activity_timeout!r}"
            )
        if type(port) is not int or not 0 <= port <= 65535:
            raise InvalidArgument(f"port must be an integer from 0 to 65535 (0: any free port), got {port!r}")
        if not isinstance(host, str):
            raise InvalidArgument(f"host must be a string, not {type(host).__name__}")
        if not is_loopback(host) and default_secret_apps(self.apps):
            ids = ", ".join(repr(a.id) for a in default_secret_apps(self.apps))
            raise InvalidArgument(
                f"refusing to listen on {host or 'every interface'!r} with the default secret "
                f"{DEFAULT_SECRET!r} (app {ids}): anyone could sign private channels and publish. Set a "
                'secret of your own (AppConfig(secret=...), --app-secret or QUVEL_APP_SECRET, "secret" '
                "in the apps file), or bind to 127.0.0.1"
            )
        self.host = host
        self._port = port
        self.activity_timeout = activity_timeout
        self.pong_timeout = pong_timeout
        self.close_timeout = close_timeout
        self.limits = limits or Limits()
        self.ssl = ssl
        if redis_url is not None and cluster is None:
            from quvel_ws.server._redis_adapter import RedisAdapter

            cluster = RedisAdapter(redis_url, transport=redis_transport)
        #: The other nodes (``redis_url``: a :class:`RedisAdapter`); None: this server is alone.
        self.cluster = cluster
        self.http_api = HttpApi(self)
        #: Extra HTTP paths answered on the server's port before the Pusher HTTP API (e.g. dev auth).
        self.routes: Mapping[str, Route] = dict(routes or {})
        self.connections: set[ServerConnection] = set()
        self.admission = Admission(self.limits)
        self._log_limit = RepeatLimiter()
        self.closing = False
        self._states: dict[str, AppState] = {}
        self._by_key: dict[str, AppState] = {}
        self._server: Listener | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._webhooks: WebhookSender | None = None
        self._drained: asyncio.Event | None = None

    # --- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the server has not started yet: its port is chosen on start()")
        return self._port

    @property
    def _url_host(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        return f"[{host}]" if ":" in host else host

    @property
    def ws_url(self) -> str:
        """``ws://host:port/app/{key}`` of the first app."""
        return self.ws_url_for(self.apps[0].key)

    def ws_url_for(self, key: str) -> str:
        scheme = "wss" if self.ssl else "ws"
        return f"{scheme}://{self._url_host}:{self.port}/app/{quote(key, safe='')}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP API (``{http_url}/apps/{id}/events``)."""
        return f"{'https' if self.ssl else 'http'}://{self._url_host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on the same port as before after a ``stop()``)."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self.closing = False
        if any(app.webhooks for app in self.apps):
            self._webhooks = WebhookSender(max_pending=self.limits.max_pending_webhooks)
            self._webhooks.start()
        self._states = {app.id: AppState(app, self._webhooks, self.cluster) for app in self.apps}
        self._by_key = {s.config.key: s for s in self._states.values()}
        if self.cluster is not None:
            try:
                await self.cluster.start(self)  # before listening: no client may see a half-joined node
            except BaseException:
                if self._webhooks is not None:
                    await self._webhooks.close()
                    self._webhooks = None
                raise
        listener = Listener(lambda: ServerConnection(self), self.limits, ssl=self.ssl)
        self._port = await listener.open(self.host, self._port)
        self._server = listener
        self._heartbeat_task = loop.create_task(self._heartbeat(), name="quvel-server-heartbeat")
        logger.info("Pusher server listening on %s (HTTP API %s)", self.ws_url, self.http_url)

    async def stop(self, code: int = 4200, message: str = SHUTDOWN_MESSAGE, *, abort: bool = False) -> None:
        """Close every client with ``code`` (4200: reconnect now) and stop listening.

        ``abort=True`` drops every TCP connection without a close frame instead, as a crash or a
        network failure would (clients see 1006): for testing reconnection.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self.closing = True
        server.close()
        for state in self._states.values():
            state.quiet = True
            for sock in list(state.sockets.values()):
                if abort:
                    sock.abort()
                else:
                    sock.close(code, message, error=message)
        for conn in list(self.connections):
            conn.close_idle()
        self._drained = asyncio.Event()
        if self.connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self.close_timeout)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)  # let the aborted transports call connection_lost
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), self.close_timeout)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        if self.cluster is not None:
            await self.cluster.stop()  # the others learn this node's members left, webhooks included
        if self._webhooks is not None:
            await self._webhooks.close()
            self._webhooks = None
        logger.info("Pusher server on port %s stopped", self._port)

    async def restart(self, *, abort: bool = False) -> None:
        """``stop()`` (clients get 4200, or a dropped connection with ``abort``) then ``start()`` on the
        same port."""
        await self.stop(abort=abort)
        await self.start()

    def close_socket(
        self,
        socket_id: str,
        code: int = 4200,
        message: str = "Closed by the server",
        *,
        app_id: str | None = None,
    ) -> bool:
        """Close one connection (with a ``pusher:error`` carrying ``code``); ``False`` if there is none."""
        sock = self._state(app_id).sockets.get(socket_id)
        if sock is None:
            return False
        sock.close(code, message, error=message)
        return True

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> PusherServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> ServerThread:
        """Run the server on its own event loop in a daemon thread (for sync tests, scripts, demos)."""
        thread = ServerThread(self)
        thread.start()
        return thread

    # --- publishing ---------------------------------------------------------------------------------

    async def trigger(
        self,
        channels: str | Sequence[str],
        event: str,
        data: Any,
        *,
        socket_id: str | None = None,
        app_id: str | None = None,
    ) -> int:
        """Publish ``event`` in-process (no HTTP); ``data`` that is not a ``str`` is JSON-encoded, as the
        SDKs do. Validated like the HTTP API (:class:`~quvel_ws.errors.InvalidArgument` on bad input).
        Returns the number of sockets the event was written to."""
        state = self._state(app_id)
        if not isinstance(channels, str) and not (
            isinstance(channels, Sequence) and all(isinstance(ch, str) for ch in channels)
        ):
            raise InvalidArgument(f"channels must be a name or a sequence of names, not {channels!r}")
        try:
            text = data if isinstance(data, str) else orjson.dumps(data).decode()
        except TypeError as exc:
            raise InvalidArgument(f"the event data cannot be JSON-encoded: {exc}") from None
        body: dict[str, Any] = {
            "name": event,
            "channels": [channels] if isinstance(channels, str) else list(channels),
            "data": text,
        }
        if socket_id is not None:
            body["socket_id"] = socket_id
        try:
            ev = validate_event(state.config, body)
        except HttpApiError as exc:
            raise InvalidArgument(exc.message) from None
        return sum(state.broadcast(ch, ev.name, ev.data, exclude=ev.socket_id) for ch in ev.channels)

    def publish_event(self, state: AppState, ev: EventToPublish) -> dict[str, Any]:
        """Publish a validated HTTP API event; the result body of ``POST /apps/{id}/events``."""
        for ch in ev.channels:
            state.broadcast(ch, ev.name, ev.data, exclude=ev.socket_id)
        result: dict[str, Any] = {"ok": True}
        if ev.info and self.cluster is None:
            result["channels"] = {ch: channel_attributes(state, ch, ev.info) for ch in ev.channels}
        return result

    def send_raw(self, socket_id: str, payload: str | bytes, *, app_id: str | None = None) -> bool:
        """Send ``payload`` as one text frame to one connection, unchecked: lets a test play a server
        that misbehaves (bad JSON, Reverb's string-encoded errors...). ``False``: no such socket."""
        sock = self._state(app_id).sockets.get(socket_id)
        if sock is None:
            return False
        sock.send(text_frame(payload.encode() if isinstance(payload, str) else payload))
        return True

    # --- introspection (tests, the demo, the CLI) ----------------------------------------------------

    def connection_count(self, app_id: str | None = None) -> int:
        return len(self._state(app_id).sockets) if self._states else 0

    def channels(self, app_id: str | None = None) -> dict[str, int]:
        """Occupied channels and their subscription counts."""
        if not self._states:
            return {}
        return {name: len(ch.subscribers) for name, ch in self._state(app_id).channels.items()}

    def presence_members(self, channel: str, app_id: str | None = None) -> dict[str, Any]:
        """``{user_id: user_info}`` of a presence channel (empty when nobody is there)."""
        ch = self._state(app_id).channels.get(channel) if self._states else None
        return {key: m.user_info for key, m in ch.members.items()} if ch else {}

    def app_of_socket(self, socket_id: str) -> AppConfig | None:
        """The app whose key the socket ``socket_id`` connected with (``None``: not on this node)."""
        for state in self._states.values():
            if socket_id in state.sockets:
                return state.config
        return None

    def socket_ids(self, app_id: str | None = None) -> list[str]:
        return list(self._state(app_id).sockets) if self._states else []

    def stats(self) -> dict[str, int]:
        """Counters for monitoring: open connections, those not upgraded yet, the ones refused or
        closed by the caps, accept pauses (out of file descriptors), webhook events dropped."""
        listener = self._server
        return {
            "connections": len(self.connections),
            "websockets": sum(len(s.sockets) for s in self._states.values()),
            "pending": len(self.admission),
            "pending_refused": self.admission.refused,
            "pending_evicted": self.admission.evicted,
            "accept_pauses": listener.pauses if listener is not None else 0,
            "webhooks_dropped": self._webhooks.dropped if self._webhooks is not None else 0,
        }

    # --- used by connections -------------------------------------------------------------------------

    def app_state_by_id(self, app_id: str) -> AppState | None:
        return self._states.get(app_id)

    def app_ids(self) -> list[str]:
        return list(self._states)

    def app_state_by_key(self, key: str) -> AppState | None:
        return self._by_key.get(key)

    def _state(self, app_id: str | None) -> AppState:
        if not self._states:
            raise RuntimeError("the server is not running")
        state = self._states.get(app_id if app_id is not None else self.apps[0].id)
        if state is None:
            raise InvalidArgument(f"no app with id {app_id!r}")
        return state

    def open_socket(
        self, transport: asyncio.Transport, key: str, query: Mapping[str, str], origin: str | None = None
    ) -> Socket | tuple[int, str]:
        """A new WebSocket on ``/app/{key}``: a :class:`Socket`, or ``(code, message)`` to refuse it."""
        if self.closing:
            return 4200, "Server is closing. Please reconnect shortly."
        state = self._by_key.get(key)
        if state is None:
            return 4001, f"App key {key[:200]} does not exist."
        if not state.config.enabled:
            return 4003, "The app is not enabled."
        if not state.config.origin_allowed(origin):
            return 4009, "Origin not allowed."
        protocol = query.get("protocol")
        if protocol is not None and protocol not in PROTOCOL_VERSIONS:
            return 4007, f"Unsupported protocol version {protocol[:20]!r}: this server accepts 4 to 7."
        cfg = state.config
        if cfg.max_connections is not None and len(state.sockets) >= cfg.max_connections:
            return 4004, "Application is over connection quota."
        socket_id = new_socket_id()
        while socket_id in state.sockets:
            socket_id = new_socket_id()
        sock = Socket(self, state, transport, socket_id)
        state.add_socket(sock)
        sock.send(_established(socket_id, self.activity_timeout))
        return sock

    def socket_closed(self, sock: Socket) -> None:
        sock.app.remove_socket(sock)

    def slow_consumer(self, sock: Socket) -> None:
        """Drop a socket whose unsent output passed the limit (logged at most a few times a minute)."""
        suppressed = self._log_limit.check("slow consumer")
        if suppressed is not None:
            logger.warning(
                "socket %s is not reading fast enough (over %d bytes queued): closing it%s",
                sock.id,
                self.limits.max_write_buffer_bytes,
                suppressed_note(suppressed),
            )
        sock.abort()

    def connection_gone(self) -> None:
        if self._drained is not None and not self.connections:
            self._drained.set()

    async def _heartbeat(self) -> None:
        """Ping sockets idle for ``activity_timeout``; close with 4201 those silent ``pong_timeout`` after."""
        timeouts = [self.activity_timeout, self.pong_timeout]
        timeouts += [a.user_authentication_timeout for a in self.apps if a.user_authentication_timeout]
        tick = min(5.0, max(0.05, min(timeouts) / 4))
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for state in self._states.values():
                auth_timeout = state.config.user_authentication_timeout
                for sock in list(state.sockets.values()):
                    if sock.closing:
                        continue
                    if sock.ping_sent_at is not None:
                        if now - sock.ping_sent_at >= self.pong_timeout:
                            sock.close(
                                4201,
                                "Pong reply not received in time",
                                error="Pong reply not received in time",
                            )
                            continue
                    elif now - sock.last_seen >= self.activity_timeout:
                        sock.send(PING_FRAME)
                        sock.ping_sent_at = now
                    if auth_timeout and not sock.authorized and now - sock.connected_at >= auth_timeout:
                        sock.close(
                            4009,
                            "Connection not authorized within timeout.",
                            error="Connection not authorized within timeout.",
                        )
                if now - last_prune > 60:
                    state.prune_cache()
            if now - last_prune > 60:
                last_prune = now


def _established(socket_id: str, activity_timeout: float) -> bytes:
    timeout = int(activity_timeout) if float(activity_timeout).is_integer() else activity_timeout
    data = orjson.dumps({"socket_id": socket_id, "activity_timeout": timeout}).decode()
    return event_frame("pusher:connection_established", data)


class ServerThread(LoopThread["PusherServer"]):
    """A :class:`PusherServer` on its own event loop in a daemon thread, driven by blocking calls.

    ``with PusherServer(...).start_in_thread() as server:`` gives ``ws_url``, ``http_url``, ``port``,
    ``trigger()``, ``stop()``, ``start()`` and ``restart()`` that block until done.
    """

    @property
    def server(self) -> PusherServer:
        return self.target

    def stop(self, *, abort: bool = False) -> None:
        """Stop the server (clients get 4200, or dropped connections with ``abort``); ``start()`` brings
        it back on the same port."""
        self._call(self.server.stop(abort=abort))

    def restart(self, *, abort: bool = False) -> None:
        self._call(self.server.restart(abort=abort))

    def close_socket(
        self,
        socket_id: str,
        code: int = 4200,
        message: str = "Closed by the server",
        *,
        app_id: str | None = None,
    ) -> bool:
        return self._on_loop(lambda: self.server.close_socket(socket_id, code, message, app_id=app_id))

    def trigger(
        self,
        channels: str | Sequence[str],
        event: str,
        data: Any,
        *,
        socket_id: str | None = None,
        app_id: str | None = None,
    ) -> int:
        return self._call(self.server.trigger(channels, event, data, socket_id=socket_id, app_id=app_id))

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def http_url(self) -> str:
        return self.server.http_url

    @property
    def port(self) -> int:
        return self.server.port

    def send_raw(self, socket_id: str, payload: str | bytes, *, app_id: str | None = None) -> bool:
        return self._on_loop(lambda: self.server.send_raw(socket_id, payload, app_id=app_id))

    def connection_count(self, app_id: str | None = None) -> int:
        return self._on_loop(lambda: self.server.connection_count(app_id))

    def channels(self, app_id: str | None = None) -> dict[str, int]:
        return self._on_loop(lambda: self.server.channels(app_id))

    def presence_members(self, channel: str, app_id: str | None = None) -> dict[str, Any]:
        return self._on_loop(lambda: self.server.presence_members(channel, app_id))

    def app_of_socket(self, socket_id: str) -> AppConfig | None:
        """The app whose key the socket ``socket_id`` connected with (``None``: not on this node)."""
        return self._on_loop(lambda: self.server.app_of_socket(socket_id))

    def socket_ids(self, app_id: str | None = None) -> list[str]:
        return self._on_loop(lambda: self.server.socket_ids(app_id))
