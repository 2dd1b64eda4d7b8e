"""``WebSocketService``: the public face of the client (QuVel Kit's ``container.ws``).

It owns the connection driver, the channel hubs and the service-wide streams (``state``, ``errors``,
``user_events``), and everything it delivers runs on the asyncio loop it is bound to (the loop of the
first coroutine that uses it). ``ws.threadsafe`` is the way in from other threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
import ssl as ssl_module
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar, overload
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import reactivex
from pydantic import ValidationError
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable

from quvel._version import __version__
from quvel_ws._auth import (
    ChannelAuthorizer,
    CustomAuthorizer,
    HeadersProvider,
    HeaderValues,
    HttpAuthorizer,
    ParamsProvider,
    UserAuthenticator,
)
from quvel_ws._channel import Channel, Hub, InertChannel, PresenceChannel, Sink, deliver
from quvel_ws._echo import (
    DEFAULT_NAMESPACE,
    ChannelType,
    ConnectionStatus,
    connection_status,
    full_channel_name,
    leave_names,
)
from quvel_ws.errors import (
    AuthorizationError,
    CallbackError,
    ConnectionRefused,
    InvalidArgument,
    NotConnected,
    PayloadValidationError,
    ServiceShutDown,
    SubscriptionTimeout,
    WsError,
)
from quvel_ws.protocol import ProtocolConfig
from quvel_ws.protocol._channels import validate_channel_name
from quvel_ws.protocol._events import (
    ChannelEvent,
    ConnectionState,
    ErrorRaised,
    GlobalEvent,
    Member,
    MemberAdded,
    MemberRemoved,
    MembersCleared,
    Output,
    SignedIn,
    StateChanged,
    SubscriptionCount,
    SubscriptionFailed,
    SubscriptionSucceeded,
    UserEvent,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Callback = Callable[[Any], Any]

CLIENT_NAME = "python-quvel"


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceHandlers:
    """Echo's ``here``/``joining``/``leaving`` for ``subscribe``: ``on_here`` gets the member list on
    every (re-)subscription, the others one :class:`Member` (``.id`` a string, ``.info`` the user_info)."""

    on_here: Callable[[list[Member]], Any] | None = None
    on_joining: Callable[[Member], Any] | None = None
    on_leaving: Callable[[Member], Any] | None = None


class Subscription:
    """What ``await ws.subscribe(...)`` returns: ``unsubscribe()`` releases everything it registered."""

    def __init__(
        self, service: WebSocketService, channel: Channel, disposable: abc.DisposableBase | None
    ) -> None:
        self.service = service
        self.channel = channel
        self._disposable = disposable

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def active(self) -> bool:
        return self._disposable is not None

    def unsubscribe(self) -> None:
        """Idempotent. The channel leaves the server when nothing else uses it."""
        disposable, self._disposable = self._disposable, None
        if disposable is not None:
            self.service._on_loop(disposable.dispose)

    def __repr__(self) -> str:
        return f"<Subscription {self.name!r}{'' if self.active else ' (inactive)'}>"


class _Broadcast:
    """A service-wide stream whose observers are isolated from each other (one raising does not stop
    the rest) and which can replay its latest value."""

    def __init__(self, service: WebSocketService, replay: bool, initial: Any = None) -> None:
        self._service = service
        self._sinks: tuple[Sink, ...] = ()
        self._replay = replay
        self.value = initial
        self.completed = False

    def observable(self) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return self._service._marshal(lambda: self._add(observer))

        return reactivex.create(subscribe)

    def _add(self, observer: abc.ObserverBase[Any]) -> abc.DisposableBase:
        if self.completed:
            if self._replay:
                observer.on_next(self.value)
            observer.on_completed()
            return Disposable()
        sink = Sink(observer, None, None)
        self._sinks = (*self._sinks, sink)
        if self._replay:
            observer.on_next(self.value)

        def dispose() -> None:
            sink.active = False
            self._sinks = tuple(s for s in self._sinks if s is not sink)

        return Disposable(dispose)

    def emit(self, value: Any) -> None:
        self.value = value
        for sink in self._sinks:
            if sink.active:
                try:
                    sink.observer.on_next(value)
                except Exception:
                    logger.exception("an observer of a WebSocketService stream raised")

    def complete(self) -> None:
        self.completed = True
        sinks, self._sinks = self._sinks, ()
        for sink in sinks:
            try:
                sink.observer.on_completed()
            except Exception:
                logger.exception("an observer of a WebSocketService stream raised on completion")


def build_ws_url(url: str, client_name: str = CLIENT_NAME) -> str:
    """Validate ``ws(s)://host[:port][/prefix]/app/KEY``; add ``protocol=7``, ``client`` and ``version``."""
    if not isinstance(url, str):
        raise InvalidArgument(f"the WebSocket URL must be a string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidArgument(f"the WebSocket URL must start with ws:// or wss://, got {url!r}")
    if not parts.hostname:
        raise InvalidArgument(f"the WebSocket URL has no host: {url!r}")
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 3 or segments[-2] != "app" or not segments[-1]:
        raise InvalidArgument(f"the WebSocket URL must end in /app/APP_KEY, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidArgument(f"bad port in {url!r}: {exc}") from None
    query = dict(parse_qsl(parts.query))
    query.setdefault("protocol", "7")
    query.setdefault("client", client_name)
    query.setdefault("version", __version__)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), urlencode(query), ""))


def http_origin(ws_url: str) -> str:
    """``ws://h:p/app/k`` → ``http://h:p`` (where a relative auth endpoint is resolved without a client)."""
    parts = urlsplit(ws_url)
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


class WebSocketService:
    """A Pusher-protocol-7 client with laravel-echo's API and channels as Observables.

    ``url`` is ``ws(s)://host:port/app/APP_KEY``. Authorisation goes through ``http_client`` (the app's
    ``httpx.AsyncClient``; one is created from the URL's origin when omitted) to ``auth_endpoint`` and
    ``user_auth_endpoint``. With ``server_rendering=True`` the service never opens a socket.
    Extra keyword options are :class:`~quvel_ws.protocol.ProtocolConfig` fields (``activity_timeout``,
    ``pong_timeout``, ``backoff_max``...).
    """

    def __init__(
        self,
        url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        auth_endpoint: str = "/broadcasting/auth",
        user_auth_endpoint: str = "/broadcasting/user-auth",
        server_rendering: bool = False,
        authorizer: ChannelAuthorizer | None = None,
        user_authenticator: UserAuthenticator | None = None,
        auth_headers: HeaderValues | HeadersProvider | None = None,
        auth_params: Mapping[str, str] | ParamsProvider | None = None,
        auth_timeout: float = 10.0,
        auth_concurrency: int = 8,
        batch_auth: bool = False,
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        ca_file: str | None = None,
        namespace: str | None = DEFAULT_NAMESPACE,
        max_message_bytes: int = 1024 * 1024,
        client_name: str = CLIENT_NAME,
        loop: asyncio.AbstractEventLoop | None = None,
        rng: random.Random | None = None,
        **protocol_options: Any,
    ) -> None:
        self.url = build_ws_url(url, client_name)
        self.server_rendering = server_rendering
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidArgument(f"namespace must be a string or None, not {type(namespace).__name__}")
        if type(max_message_bytes) is not int or max_message_bytes < 1:
            raise InvalidArgument(f"max_message_bytes must be a positive integer, got {max_message_bytes!r}")
        self.namespace = namespace or None
        known = {f.name for f in dataclasses.fields(ProtocolConfig)} - {"url"}
        unknown = set(protocol_options) - known
        if unknown:
            raise InvalidArgument(
                f"unknown option(s) {', '.join(sorted(unknown))}; "
                f"protocol options are: {', '.join(sorted(known))}"
            )
        try:
            self._config = ProtocolConfig(url=self.url, **protocol_options)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"bad protocol option: {exc}") from None
        if ssl is None and ca_file is not None:
            ssl = ssl_module.create_default_context(cafile=ca_file)
        self._ssl = ssl
        self._headers = dict(headers or {})
        self._origin = origin
        self._max_message_bytes = max_message_bytes
        self._rng = rng
        self._owns_client = False
        self._authorizer: HttpAuthorizer | CustomAuthorizer | None = None
        if not server_rendering:
            if http_client is None:
                http_client = httpx.AsyncClient(base_url=http_origin(self.url), timeout=auth_timeout)
                self._owns_client = True
            if not http_client.base_url.host:
                origin_url = http_origin(self.url)
                auth_endpoint = _absolute(auth_endpoint, origin_url)
                user_auth_endpoint = _absolute(user_auth_endpoint, origin_url)
            http = HttpAuthorizer(
                http_client,
                auth_endpoint,
                user_auth_endpoint,
                headers=auth_headers,
                params=auth_params,
                timeout=auth_timeout,
                max_concurrency=auth_concurrency,
                batch=batch_auth,
            )
            self._authorizer = (
                CustomAuthorizer(authorizer, user_authenticator, http)
                if authorizer is not None or user_authenticator is not None
                else http
            )
        self.http_client = http_client
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._thread_id: int | None = None
        self._conn: Any = None  # quvel_ws._connection.Connection, created on the bound loop
        self._hubs: dict[str, Hub] = {}
        self._batched: list[tuple[Hub, Sink]] = []
        self._retry_attempts: dict[str, int] = {}
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self._state = _Broadcast(self, replay=True, initial=ConnectionState.INITIALIZED)
        self._errors = _Broadcast(self, replay=False)
        self._user_events = _Broadcast(self, replay=False)
        self._global_events = _Broadcast(self, replay=False)
        self._state_waiters: list[asyncio.Future[None]] = []
        self._last_refusal: WsError | None = None
        self._user_id: str | None = None
        self._shut = False
        self._threadsafe: ThreadSafe | None = None

    # --- construction helpers ------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> WebSocketService:
        return cls(url, **options)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | Any, **options: Any) -> WebSocketService:
        """From a mapping or object with ``ws_url`` (or ``url``), or with ``key``, ``host``, ``port`` and
        ``scheme`` (``ws``/``wss``/``http``/``https``, as Reverb's env has it) and an optional ``path``."""

        def get(name: str) -> Any:
            return settings.get(name) if isinstance(settings, Mapping) else getattr(settings, name, None)

        url = get("ws_url") or get("url")
        if not url:
            key, host = get("key") or get("app_key"), get("host")
            if not key or not host:
                raise InvalidArgument("settings need ws_url, or key and host")
            scheme = str(get("scheme") or "wss").lower()
            secure = scheme in ("wss", "https")
            port = get("port") or (443 if secure else 80)
            path = str(get("path") or "").rstrip("/")
            url = f"{'wss' if secure else 'ws'}://{host}:{port}{path}/app/{key}"
        return cls(str(url), **options)

    # --- loop binding and thread marshalling ---------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        if self._shut:
            raise ServiceShutDown()
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                raise WsError(
                    "WebSocketService is used first outside its asyncio loop: make the first call "
                    "(connect, subscribe, channel(...).subscribe) inside a coroutine, or pass loop="
                ) from None
        if self._thread_id is None and self._loop.is_running():
            try:
                if asyncio.get_running_loop() is self._loop:
                    self._thread_id = threading.get_ident()
            except RuntimeError:
                pass
        return self._loop

    def _on_loop_thread(self) -> bool:
        loop = self._bind()
        if self._thread_id is None:
            try:
                return asyncio.get_running_loop() is loop
            except RuntimeError:
                return False
        return threading.get_ident() == self._thread_id

    def _marshal(self, attach: Callable[[], abc.DisposableBase]) -> abc.DisposableBase:
        """Run ``attach`` on the loop (now if already there) and return a disposable usable from anywhere."""
        if self._shut or self._on_loop_thread():
            return attach()
        loop = self._bind()
        holder = SingleAssignmentDisposable()

        def run() -> None:
            if not holder.is_disposed:
                holder.disposable = attach()

        loop.call_soon_threadsafe(run)

        def dispose() -> None:
            loop.call_soon_threadsafe(holder.dispose)

        return Disposable(dispose)

    def _on_loop(self, fn: Callable[[], Any]) -> None:
        if self._loop is None or self._shut or self._on_loop_thread():
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _connection(self) -> Any:
        if self._conn is None:
            from quvel_ws._connection import Connection

            loop = self._bind()
            assert self._authorizer is not None
            self._conn = Connection(
                self._config,
                on_idle=self._flush_batches,
                authorizer=self._authorizer,
                dispatch=self._dispatch,
                loop=loop,
                headers=self._headers,
                origin=self._origin,
                ssl=self._ssl,
                max_message_bytes=self._max_message_bytes,
                rng=self._rng,
            )
        return self._conn

    # --- connection ----------------------------------------------------------------------------

    @property
    def state(self) -> Observable[ConnectionState]:
        """The connection state now and on every change (replayed to late subscribers)."""
        return self._state.observable()

    @property
    def current_state(self) -> ConnectionState:
        return self._state.value  # type: ignore[no-any-return]

    def connection_status(self) -> ConnectionStatus:
        """laravel-echo's ``connectionStatus()``: ``connected``, ``connecting``, ``disconnected`` or
        ``failed`` (``unavailable`` counts as ``failed``, as in Echo)."""
        return connection_status(self.current_state)

    @property
    def connection_statuses(self) -> Observable[ConnectionStatus]:
        """Echo's ``onConnectionChange`` as an Observable: the status now (replayed) and on every change."""
        return self.state.pipe(ops.map(connection_status), ops.distinct_until_changed())

    @property
    def errors(self) -> Observable[WsError]:
        """Every typed error of the service and its channels (each is also logged once)."""
        return self._errors.observable()

    @property
    def user_events(self) -> Observable[UserEvent]:
        """Events sent to the signed-in user (``#server-to-user-{id}``), after :meth:`signin`."""
        return self._user_events.observable()

    @property
    def global_events(self) -> Observable[GlobalEvent]:
        """Events without a channel (e.g. watchlist ``online``/``offline``)."""
        return self._global_events.observable()

    @property
    def socket_id(self) -> str | None:
        """The socket id while connected (send it as ``X-Socket-ID`` so ``toOthers()`` excludes you)."""
        return self._conn.core.socket_id if self._conn is not None else None

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id (after :meth:`signin` succeeded on the current connection)."""
        return self._user_id

    def socket_headers(self) -> dict[str, str]:
        """``{"X-Socket-ID": id}`` while connected, for the app's own requests (Laravel ``toOthers()``)."""
        sid = self.socket_id
        return {"X-Socket-ID": sid} if sid else {}

    async def connect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Connect (if not already) and wait until connected. Raises ``ConnectionRefused`` when the server
        refuses (4001-4099), ``TimeoutError`` after ``timeout``. A no-op when server rendering."""
        if self.server_rendering:
            return
        self._bind()
        conn = self._connection()
        if conn.state in (ConnectionState.INITIALIZED, ConnectionState.DISCONNECTED):
            self._last_refusal = None
            conn.connect()
        await self._wait_connected(timeout)

    async def _wait_connected(self, timeout: float | None) -> None:  # noqa: ASYNC109
        while True:
            state = self._conn.state if self._conn is not None else ConnectionState.INITIALIZED
            if state is ConnectionState.CONNECTED:
                return
            if state is ConnectionState.DISCONNECTED:
                raise self._last_refusal or NotConnected("the connection was closed")
            waiter = self._bind().create_future()
            self._state_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout)
            finally:
                if waiter in self._state_waiters:
                    self._state_waiters.remove(waiter)

    async def disconnect(self) -> None:
        """Close the connection for good: nothing reconnects until :meth:`connect`. Channels are kept and
        resubscribed by a later ``connect()``."""
        if self.server_rendering or self._conn is None:
            return
        self._conn.disconnect()

    async def shutdown(self) -> None:
        """Disconnect, complete every Observable, cancel every timer and task, close an owned HTTP client.
        Called by the service container on application shutdown. Idempotent."""
        if self._shut:
            return
        if self._conn is not None:
            await self._conn.close()
        self._shut = True
        for name in list(self._retry_timers):
            self._cancel_retry(name)
        for hub in list(self._hubs.values()):
            self._complete_hub(hub)
        self._hubs.clear()
        for broadcast in (self._state, self._errors, self._user_events, self._global_events):
            broadcast.complete()
        for waiter in self._state_waiters:
            if not waiter.done():
                waiter.set_exception(NotConnected("the service was shut down"))
        if self._owns_client and self.http_client is not None:
            await self.http_client.aclose()

    def check_connection(self) -> None:
        """Ping now and reconnect if nothing answers within ``pong_timeout`` (call it after an OS resume
        or a network change)."""
        if self._conn is not None and not self.server_rendering:
            self._conn.check_connection()

    # --- channels ------------------------------------------------------------------------------

    @overload
    def channel(self, name: str, type: Literal["presence"]) -> PresenceChannel: ...
    @overload
    def channel(self, name: str, type: ChannelType | str | None = None) -> Channel: ...

    def channel(self, name: str, type: ChannelType | str | None = None) -> Channel:
        """The channel ``name`` as Observables. ``type`` adds the prefix Echo's ``private``/``join``/
        ``encryptedPrivate`` add when ``name`` lacks it; without ``type`` the prefix decides."""
        if self._shut:
            raise ServiceShutDown()
        full, kind = full_channel_name(name, type)
        if self.server_rendering:
            return InertChannel(self, full, kind)
        if kind is ChannelType.PRESENCE:
            return PresenceChannel(self, full, kind)
        return Channel(self, full, kind)

    def private(self, name: str) -> Channel:
        return self.channel(name, ChannelType.PRIVATE)

    def encrypted_private(self, name: str) -> Channel:
        return self.channel(name, ChannelType.ENCRYPTED)

    def join(self, name: str) -> PresenceChannel:
        return self.channel(name, "presence")

    async def subscribe(
        self,
        channel_name: str,
        type: ChannelType | str = ChannelType.PUBLIC,
        event: str | None = None,
        callback: Callback | None = None,
        presence_handlers: PresenceHandlers | None = None,
        *,
        model: Any = None,
        on_error: Callable[[WsError], Any] | None = None,
        on_subscribed: Callable[[SubscriptionSucceeded], Any] | None = None,
    ) -> Subscription:
        """QuVel Kit's ``subscribe``: listen to ``event`` on a channel with a plain callback (sync or async).

        For the notification types, ``event`` defaults to Laravel's notification event. Returns at once
        (the server confirms later; pass ``on_subscribed`` to know when). Server rendering: an inert
        handle, nothing is sent."""
        ch = self.channel(channel_name, type)
        kind = ch.type
        if presence_handlers is not None and kind is not ChannelType.PRESENCE:
            raise InvalidArgument(f"presence_handlers need a presence channel, not {kind.value}")
        if callback is not None and not callable(callback):
            raise InvalidArgument("callback must be callable")
        if event is not None and callback is None:
            raise InvalidArgument("an event needs a callback")
        if callback is not None and event is None and not kind.is_notification:
            raise InvalidArgument(f"a {kind.value} subscription with a callback needs an event name")
        if self.server_rendering:
            return Subscription(self, ch, None)
        self._bind()
        parts: list[abc.DisposableBase] = []
        if callback is not None:
            source = ch.notifications(model) if event is None else ch.listen(event, model)
            parts.append(source.subscribe(on_next=self._user_callback(ch, event, callback)))
        if presence_handlers is not None:
            assert isinstance(ch, PresenceChannel)
            if presence_handlers.on_here is not None:
                here = presence_handlers.on_here
                parts.append(
                    ch.subscribed.subscribe(
                        on_next=self._user_callback(ch, "here", lambda s: here(list(s.members or ())))
                    )
                )
            if presence_handlers.on_joining is not None:
                parts.append(
                    ch.joining.subscribe(
                        on_next=self._user_callback(ch, "joining", presence_handlers.on_joining)
                    )
                )
            if presence_handlers.on_leaving is not None:
                parts.append(
                    ch.leaving.subscribe(
                        on_next=self._user_callback(ch, "leaving", presence_handlers.on_leaving)
                    )
                )
        if on_subscribed is not None:
            parts.append(
                ch.subscribed.subscribe(on_next=self._user_callback(ch, "subscribed", on_subscribed))
            )
        if on_error is not None:
            parts.append(ch.errors.subscribe(on_next=self._user_callback(ch, "error", on_error)))
        if not parts:  # subscribe to the channel alone (e.g. to whisper on it)
            parts.append(ch.subscribed.subscribe(on_next=lambda _: None))
        return Subscription(self, ch, CompositeDisposable(parts))

    def unsubscribe(self, subscription: Subscription) -> None:
        """Same as ``subscription.unsubscribe()``."""
        subscription.unsubscribe()

    def leave(self, name: str) -> None:
        """Echo's ``leave``: leaves ``name``, ``private-name``, ``private-encrypted-name`` and
        ``presence-name``."""
        for full in leave_names(name):
            self.leave_channel(full)

    def leave_channel(self, name: str) -> None:
        """Leave one channel by its full name: its Observables complete, the server is told."""
        validate_channel_name(name)
        if self.server_rendering or self._loop is None or self._shut:
            return  # never used (nothing subscribed) or already shut down
        if not self._on_loop_thread():
            self._on_loop(lambda: self.leave_channel(name))
            return
        hub = self._hubs.pop(name, None)
        self._cancel_retry(name)
        if hub is not None:
            self._complete_hub(hub)
            if self._conn is not None:
                self._conn.unsubscribe(name)

    def leave_all(self) -> None:
        """Leave every channel this service subscribed."""
        for name in list(self._hubs):
            self.leave_channel(name)

    def signin(self) -> None:
        """Authenticate the user (``pusher:signin`` through ``user_auth_endpoint``) now and after every
        reconnect; events for the user arrive on :attr:`user_events`. Connects if needed."""
        if self.server_rendering:
            return
        if not self._on_loop_thread():
            self._on_loop(self.signin)
            return
        conn = self._connection()
        conn.signin()
        if conn.state is ConnectionState.INITIALIZED:
            conn.connect()

    @property
    def threadsafe(self) -> ThreadSafe:
        """Blocking wrappers for code running in other threads (``ws.threadsafe.subscribe(...)``)."""
        if self._threadsafe is None:
            self._threadsafe = ThreadSafe(self)
        return self._threadsafe

    # --- internals: attaching sinks ------------------------------------------------------------

    def _attach(self, name: str, kind: ChannelType, group: str, sink: Sink) -> abc.DisposableBase:
        return self._marshal(lambda: self._attach_here(name, kind, group, sink))

    def _attach_here(self, name: str, kind: ChannelType, group: str, sink: Sink) -> abc.DisposableBase:
        if self._shut:
            sink.observer.on_completed()
            return Disposable()
        hub = self._hubs.get(name)
        if hub is None:
            hub = self._hubs[name] = Hub(name, kind)
        if group == "listen":
            assert sink.event is not None
            hub.listeners[sink.event] = (*hub.listeners.get(sink.event, ()), sink)
        elif group == "wildcard":
            hub.wildcard = (*hub.wildcard, sink)
        elif group == "subscribed":
            hub.subscribed_sinks = (*hub.subscribed_sinks, sink)
        elif group == "errors":
            hub.errors = (*hub.errors, sink)
        elif group == "members":
            hub.members_sinks = (*hub.members_sinks, sink)
        elif group == "joining":
            hub.joining = (*hub.joining, sink)
        elif group == "leaving":
            hub.leaving = (*hub.leaving, sink)
        elif group == "count":
            hub.count_sinks = (*hub.count_sinks, sink)
        else:  # pragma: no cover - internal misuse
            raise AssertionError(group)
        hub.refs += 1
        if hub.refs == 1:
            conn = self._connection()
            conn.subscribe(name)
            if conn.state is ConnectionState.INITIALIZED:
                conn.connect()  # lazy connect on the first subscription
        elif group == "subscribed" and hub.subscribed is not None:
            deliver(self, hub, (sink,), hub.subscribed, "subscribed")
        elif group == "members" and hub.members is not None:
            deliver(self, hub, (sink,), tuple(hub.members.values()), "members")
        elif group == "count" and hub.count is not None:
            deliver(self, hub, (sink,), hub.count, "subscription_count")
        return Disposable(lambda: self._detach(hub, group, sink))

    def _detach(self, hub: Hub, group: str, sink: Sink) -> None:
        if not sink.active:
            return
        sink.active = False
        if group == "listen":
            assert sink.event is not None
            rest = tuple(s for s in hub.listeners.get(sink.event, ()) if s is not sink)
            if rest:
                hub.listeners[sink.event] = rest
            else:
                hub.listeners.pop(sink.event, None)
        else:
            attr = {
                "wildcard": "wildcard",
                "subscribed": "subscribed_sinks",
                "errors": "errors",
                "members": "members_sinks",
                "joining": "joining",
                "leaving": "leaving",
                "count": "count_sinks",
            }[group]
            setattr(hub, attr, tuple(s for s in getattr(hub, attr) if s is not sink))
        hub.refs -= 1
        if hub.refs == 0 and self._hubs.get(hub.name) is hub:
            del self._hubs[hub.name]
            self._cancel_retry(hub.name)
            if self._conn is not None and not self._shut:
                self._conn.unsubscribe(hub.name)

    def _complete_hub(self, hub: Hub) -> None:
        sinks = hub.all_sinks()
        for sink in sinks:
            sink.active = False
        hub.listeners.clear()
        hub.wildcard = hub.subscribed_sinks = hub.errors = hub.members_sinks = hub.joining = hub.leaving = ()
        hub.count_sinks = ()
        hub.refs = 0
        for sink in sinks:
            try:
                sink.observer.on_completed()
            except Exception:
                logger.exception("an observer of %s raised on completion", hub.name)

    def _user_callback(
        self, ch: Channel, what: str | None, fn: Callable[[Any], Any]
    ) -> Callable[[Any], None]:
        """Wrap a plain callback: awaitables it returns run as tasks; what they raise is reported."""

        def call(value: Any) -> None:
            result = fn(value)
            if inspect.isawaitable(result):
                task = self._bind().create_task(_await(result))
                task.add_done_callback(lambda t: self._task_done(t, ch, what))

        return call

    def _task_done(self, task: asyncio.Task[Any], ch: Channel, what: str | None) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            error = CallbackError(ch.name, what, exc)
            error.__cause__ = exc
            self._report(error, self._hubs.get(ch.name), exc_info=exc)

    def _whisper(self, channel: Channel, event: str, data: Any) -> None:
        if not self._on_loop_thread():
            raise WsError("whisper() from another thread: use ws.threadsafe.whisper(...)")
        if self._conn is None:
            raise NotConnected(f"cannot whisper {event!r} on {channel.name!r}: not connected")
        self._conn.send_client_event(channel.name, event, data)

    # --- internals: what the core says ---------------------------------------------------------

    def _report(self, error: WsError, hub: Hub | None, *, exc_info: BaseException | None = None) -> None:
        """Log an error once and put it on the channel's and the service's ``errors``."""
        if exc_info is not None:
            logger.error("%s", error, exc_info=exc_info)
        else:
            logger.warning("%s", error)
        if hub is not None:
            for sink in hub.errors:
                if sink.active:
                    try:
                        sink.observer.on_next(error)
                    except Exception:
                        logger.exception("an errors observer of %s raised", hub.name)
        self._errors.emit(error)

    def _dispatch(self, output: Output) -> None:
        kind = type(output)
        if kind is ChannelEvent:
            event: ChannelEvent = output  # type: ignore[assignment]
            hub = self._hubs.get(event.channel)
            if hub is None:
                return
            sinks = hub.listeners.get(event.event)
            if sinks is not None:
                data = event.data
                for sink in sinks:
                    if sink.validate is None and sink.batch is None and sink.active:
                        try:
                            sink.observer.on_next(data)
                        except Exception as exc:
                            error = CallbackError(hub.name, event.event, exc)
                            error.__cause__ = exc
                            self._report(error, hub, exc_info=exc)
                    elif sink.batch is not None:
                        self._add_to_batch(hub, sink, data, event.event)
                    else:
                        deliver(self, hub, (sink,), data, event.event)
            if hub.wildcard and not event.event.startswith("pusher:"):  # Echo's listenToAll skips them
                deliver(self, hub, hub.wildcard, event, event.event)
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, output)

    def _add_to_batch(self, hub: Hub, sink: Sink, data: Any, event: str) -> None:
        if not sink.active or sink.batch is None:
            return
        if sink.validate is not None:
            try:
                data = sink.validate(data)
            except ValidationError as exc:
                self._report(PayloadValidationError(hub.name, event, data, exc.errors()), hub)
                return
            except Exception as exc:  # a model's own validator raising something pydantic does not wrap
                error = PayloadValidationError(hub.name, event, data, f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
                self._report(error, hub, exc_info=exc)
                return
        if not sink.batch:
            self._batched.append((hub, sink))
        sink.batch.append(data)

    def _flush_batches(self) -> None:
        """End of one received batch: hand each batched sink the list it collected."""
        if not self._batched:
            return
        pending, self._batched = self._batched, []
        for hub, sink in pending:
            items, sink.batch = sink.batch, []
            if not sink.active or not items:
                continue
            try:
                sink.observer.on_next(items)
            except Exception as exc:
                error = CallbackError(hub.name, sink.event, exc)
                error.__cause__ = exc
                self._report(error, hub, exc_info=exc)

    def _on_state(self, output: StateChanged) -> None:
        current = output.current
        if current is not ConnectionState.CONNECTED:
            self._user_id = None  # signed in again after the reconnect
            for hub in self._hubs.values():
                hub.subscribed = None
        self._state.emit(current)
        if current in (ConnectionState.CONNECTED, ConnectionState.DISCONNECTED):
            waiters, self._state_waiters = self._state_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _on_error(self, output: ErrorRaised) -> None:
        if isinstance(output.error, ConnectionRefused):
            self._last_refusal = output.error
        self._report(output.error, self._hubs.get(output.channel) if output.channel else None)

    def _on_succeeded(self, output: SubscriptionSucceeded) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None:
            return
        hub.subscribed = output
        self._cancel_retry(output.channel)
        if output.members is not None:
            hub.members = {m.id: m for m in output.members}
            if hub.members_sinks:
                deliver(self, hub, hub.members_sinks, tuple(hub.members.values()), "members")
        if hub.subscribed_sinks:
            deliver(self, hub, hub.subscribed_sinks, output, "subscribed")

    def _on_failed(self, output: SubscriptionFailed) -> None:
        hub = self._hubs.get(output.channel)
        if hub is not None:
            hub.subscribed = None
        self._report(output.error, hub)
        if hub is not None and _transient(output.error):
            self._schedule_retry(hub.name)

    def _schedule_retry(self, name: str) -> None:
        """Retry a subscription whose authorisation failed for a passing reason (network, 5xx, 429,
        timeout) with capped, jittered exponential backoff, until it succeeds or nobody wants it."""
        attempt = self._retry_attempts.get(name, 0) + 1
        self._retry_attempts[name] = attempt
        timer = self._retry_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        config = self._config
        ceiling = min(config.backoff_max, config.backoff_initial * 2 ** (attempt - 1))
        delay = (self._rng or random).uniform(ceiling / 2, ceiling)
        self._retry_timers[name] = self._bind().call_later(delay, self._retry_subscribe, name)
        logger.info("retrying the subscription to %s in %.2fs (attempt %d)", name, delay, attempt)

    def _retry_subscribe(self, name: str) -> None:
        self._retry_timers.pop(name, None)
        if self._shut or self._conn is None or name not in self._hubs:
            self._retry_attempts.pop(name, None)
            return
        if self._conn.state is ConnectionState.CONNECTED:
            self._conn.subscribe(name)  # otherwise the reconnect resubscribes it anyway

    def _cancel_retry(self, name: str) -> None:
        self._retry_attempts.pop(name, None)
        timer = self._retry_timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _on_member_added(self, output: MemberAdded) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None:
            return
        if hub.members is None:
            hub.members = {}
        hub.members[output.member.id] = output.member
        if not output.updated and hub.joining:
            deliver(self, hub, hub.joining, output.member, "joining")
        if hub.members_sinks:
            deliver(self, hub, hub.members_sinks, tuple(hub.members.values()), "members")

    def _on_member_removed(self, output: MemberRemoved) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None or hub.members is None:
            return
        member = hub.members.pop(output.member.id, output.member)
        if hub.leaving:
            deliver(self, hub, hub.leaving, member, "leaving")
        if hub.members_sinks:
            deliver(self, hub, hub.members_sinks, tuple(hub.members.values()), "members")

    def _on_members_cleared(self, output: MembersCleared) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None or hub.members is None:
            return
        hub.members = None
        if hub.members_sinks:
            deliver(self, hub, hub.members_sinks, (), "members")

    def _on_count(self, output: SubscriptionCount) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None:
            return
        hub.count = output.count
        if hub.count_sinks:
            deliver(self, hub, hub.count_sinks, output.count, "subscription_count")

    def _on_signed_in(self, output: SignedIn) -> None:
        self._user_id = output.user_id

    def _on_user_event(self, output: UserEvent) -> None:
        self._user_events.emit(output)

    def _on_global_event(self, output: GlobalEvent) -> None:
        self._global_events.emit(output)


_HANDLERS: dict[type, Callable[[WebSocketService, Any], None]] = {
    StateChanged: WebSocketService._on_state,
    ErrorRaised: WebSocketService._on_error,
    SubscriptionSucceeded: WebSocketService._on_succeeded,
    SubscriptionFailed: WebSocketService._on_failed,
    MemberAdded: WebSocketService._on_member_added,
    MemberRemoved: WebSocketService._on_member_removed,
    MembersCleared: WebSocketService._on_members_cleared,
    SignedIn: WebSocketService._on_signed_in,
    SubscriptionCount: WebSocketService._on_count,
    UserEvent: WebSocketService._on_user_event,
    GlobalEvent: WebSocketService._on_global_event,
}


def _transient(error: WsError) -> bool:
    """A failure worth retrying on its own: the auth endpoint unreachable, overloaded or failing, or
    the server never answering. 401/403 and bad responses wait for a reconnect or a new subscribe."""
    if isinstance(error, SubscriptionTimeout):
        return True
    if isinstance(error, AuthorizationError):
        status = error.status
        return status is not None and (status in (0, 408, 425, 429) or status >= 500)
    return False


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _absolute(endpoint: str, origin: str) -> str:
    return endpoint if "://" in endpoint else origin + ("" if endpoint.startswith("/") else "/") + endpoint


class ThreadSafe:
    """Blocking calls into a :class:`WebSocketService` from threads other than its loop's.

    Each call runs on the service's loop (``asyncio.run_coroutine_threadsafe``) and waits for the result.
    Observables may also be subscribed from any thread (the registration is marshalled to the loop), but
    items still arrive on the loop thread: add ``observe_on(scheduler)`` to receive them elsewhere.
    """

    def __init__(self, service: WebSocketService, timeout: float | None = 30.0) -> None:
        self._service = service
        self.timeout = timeout

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self._service._loop
        if loop is None:
            raise WsError(
                "the service is not bound to a loop yet: create it with loop=, or use it once "
                "from a coroutine on that loop"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise WsError(
                "ws.threadsafe called from the service's own loop (it would deadlock); await the "
                "async API instead"
            )
        return loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the service's loop and return its result."""
        try:
            loop = self._loop()
        except WsError:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result(timeout if timeout is not None else self.timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Call ``fn(*args)`` on the service's loop and return its result."""
        self._loop()

        async def run() -> T:
            return fn(*args)

        return self.run(run(), timeout)

    def subscribe(
        self,
        channel_name: str,
        type: ChannelType | str = ChannelType.PUBLIC,
        event: str | None = None,
        callback: Callback | None = None,
        presence_handlers: PresenceHandlers | None = None,
        **options: Any,
    ) -> Subscription:
        """``ws.subscribe`` from another thread; the callback runs on the loop thread."""
        return self.run(
            self._service.subscribe(channel_name, type, event, callback, presence_handlers, **options)
        )

    def unsubscribe(self, subscription: Subscription) -> None:
        self.call(subscription.unsubscribe)

    def connect(self, timeout: float | None = None) -> None:
        self.run(self._service.connect(timeout), None if timeout is None else timeout + 1)

    def disconnect(self) -> None:
        self.run(self._service.disconnect())

    def whisper(self, channel: str, event: str, data: Any = None) -> None:
        self.call(lambda: self._service.channel(channel).whisper(event, data))

    def leave(self, name: str) -> None:
        self.call(self._service.leave, name)

    def leave_channel(self, name: str) -> None:
        self.call(self._service.leave_channel, name)

    def leave_all(self) -> None:
        self.call(self._service.leave_all)

    def signin(self) -> None:
        self.call(self._service.signin)
