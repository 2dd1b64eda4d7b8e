"""``WebSocketService``: the public face of the client (QuVel Kit's ``container.ws``).

It owns the connection driver, the channel hubs and the service-wide streams (``state``, ``errors``,
``user_events``), and everything it delivers runs on the asyncio loop it is bound to (the loop of the
first coroutine that uses it). ``ws.threadsafe`` is the way in from other threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

import httpx
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable

from quvel_ws.client._channels import Channel, InertChannel, PresenceChannel
from quvel_ws.client._dispatch import Dispatcher
from quvel_ws.client._driver import ConnectionDriver
from quvel_ws.client._echo import (
    DEFAULT_NAMESPACE,
    ChannelType,
    ConnectionStatus,
    connection_status,
    full_channel_name,
    leave_names,
)
from quvel_ws.client._http_auth import (
    ChannelAuthorizer,
    CustomAuthorizer,
    HeadersProvider,
    HeaderValues,
    HttpAuthorizer,
    ParamsProvider,
    UserAuthenticator,
)
from quvel_ws.client._hubs import ChannelHubs, Hub, Sink, SinkGroup
from quvel_ws.client._loop import LoopBridge
from quvel_ws.client._retry import SubscriptionRetry
from quvel_ws.client._streams import Broadcast
from quvel_ws.client._subscription import Owner, PresenceHandlers, Subscription, subscription_parts
from quvel_ws.client._threadsafe import ThreadSafe
from quvel_ws.client._url import CLIENT_NAME, absolute_endpoint, build_ws_url, http_origin
from quvel_ws.errors import (
    CallbackError,
    InvalidArgument,
    NotConnected,
    ServiceShutDown,
    WsError,
)
from quvel_ws.protocol import (
    ConnectionState,
    GlobalEvent,
    ProtocolConfig,
    SubscriptionSucceeded,
    UserEvent,
    validate_channel_name,
)

Callback = Callable[[Any], Any]
D = TypeVar("D", bound=abc.DisposableBase)


class WebSocketService:
    """A Pusher-protocol-7 client with laravel-echo's API and channels as Observables.

    ``url`` is ``ws(s)://host:port/app/APP_KEY``; several (a sequence, or one string separated by
    commas) are the nodes of one cluster: the first is tried first, and each failed attempt or lost
    connection moves to the next, with the usual backoff and resubscription. Authorisation goes
    through ``http_client`` (the app's ``httpx.AsyncClient``; one is created from the first URL's
    origin when omitted) to ``auth_endpoint`` and ``user_auth_endpoint``. With
    ``server_rendering=True`` the service never opens a socket. Extra keyword options are
    :class:`~quvel_ws.protocol.ProtocolConfig` fields (``activity_timeout``, ``pong_timeout``,
    ``backoff_max``...).
    """

    def __init__(
        self,
        url: str | Sequence[str],
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
        if isinstance(url, str):
            url = [u.strip() for u in url.split(",")] if "," in url else [url]
        elif not isinstance(url, Sequence) or not url:
            raise InvalidArgument(f"url must be a WebSocket URL or a non-empty list of them, got {url!r}")
        #: Every node's URL, in the order they are tried; ``url`` is the first.
        self.urls = tuple(build_ws_url(u, client_name) for u in url)
        self.url = self.urls[0]
        self.server_rendering = server_rendering
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidArgument(f"namespace must be a string or None, not {type(namespace).__name__}")
        if type(max_message_bytes) is not int or max_message_bytes < 1:
            raise InvalidArgument(f"max_message_bytes must be a positive integer, got {max_message_bytes!r}")
        self.namespace = namespace or None
        known = {f.name for f in dataclasses.fields(ProtocolConfig)} - {"url", "fallback_urls"}
        unknown = set(protocol_options) - known
        if unknown:
            raise InvalidArgument(
                f"unknown option(s) {', '.join(sorted(unknown))}; "
                f"protocol options are: {', '.join(sorted(known))}"
            )
        try:
            self._config = ProtocolConfig(url=self.url, fallback_urls=self.urls[1:], **protocol_options)
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
                auth_endpoint = absolute_endpoint(auth_endpoint, origin_url)
                user_auth_endpoint = absolute_endpoint(user_auth_endpoint, origin_url)
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
        self._bridge = LoopBridge(loop)
        self._conn: ConnectionDriver | None = None  # created on the bound loop
        self._hubs = ChannelHubs(report=self._report, on_first=self._first_sink, on_last=self._last_sink)
        self._retry = SubscriptionRetry(
            initial=self._config.backoff_initial,
            ceiling=self._config.backoff_max,
            rng=rng,
            resubscribe=self._resubscribe,
        )
        self._dispatcher = Dispatcher(
            self._hubs,
            self._retry,
            (
                Broadcast(self._bridge, replay=True, initial=ConnectionState.INITIALIZED),
                Broadcast(self._bridge, replay=False),
                Broadcast(self._bridge, replay=False),
                Broadcast(self._bridge, replay=False),
            ),
            self._bridge.bind,
        )
        self._channel_host = _ServiceChannels(self)
        self._shut = False
        #: Set by the host application (quvel_store's container does): called whenever something is
        #: opened (a ``subscribe()`` handle, a channel Observable's subscription, an eager ``join()``),
        #: it returns who owns it now (``.add(disposable)``, e.g. the store whose action runs) or None.
        self.owner: Callable[[], Owner | None] | None = None
        self._owning = True  # False while subscribe() assembles the parts of the handle it owns
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

    # --- the connection driver ----------------------------------------------------------------

    def _connection(self) -> ConnectionDriver:
        if self._conn is None:
            loop = self._bridge.bind()
            assert self._authorizer is not None
            self._conn = ConnectionDriver(
                self._config,
                on_idle=self._hubs.flush_batches,
                authorizer=self._authorizer,
                dispatch=self._dispatcher.dispatch,
                on_channel_event=self._dispatcher.channel_event,
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
        return self._dispatcher.state.observable()

    @property
    def current_state(self) -> ConnectionState:
        return self._dispatcher.state.value  # type: ignore[no-any-return]

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
        return self._dispatcher.errors.observable()

    @property
    def user_events(self) -> Observable[UserEvent]:
        """Events sent to the signed-in user (``#server-to-user-{id}``), after :meth:`signin`."""
        return self._dispatcher.user_events.observable()

    @property
    def global_events(self) -> Observable[GlobalEvent]:
        """Events without a channel (e.g. watchlist ``online``/``offline``)."""
        return self._dispatcher.global_events.observable()

    @property
    def socket_id(self) -> str | None:
        """The socket id while connected (send it as ``X-Socket-ID`` so ``toOthers()`` excludes you)."""
        return self._conn.core.socket_id if self._conn is not None else None

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id (after :meth:`signin` succeeded on the current connection)."""
        return self._dispatcher.user_id

    def socket_headers(self) -> dict[str, str]:
        """``{"X-Socket-ID": id}`` while connected, for the app's own requests (Laravel ``toOthers()``)."""
        sid = self.socket_id
        return {"X-Socket-ID": sid} if sid else {}

    async def connect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Connect (if not already) and wait until connected. Raises ``ConnectionRefused`` when the server
        refuses (4001-4099), ``CertificateError`` when its TLS certificate does not verify,
        ``TimeoutError`` after ``timeout``. A no-op when server rendering."""
        if self.server_rendering:
            return
        self._bind()
        conn = self._connection()
        if conn.state in (ConnectionState.INITIALIZED, ConnectionState.DISCONNECTED, ConnectionState.FAILED):
            self._dispatcher.last_refusal = None
            conn.connect()
        await self._wait_connected(timeout)

    async def _wait_connected(self, timeout: float | None) -> None:  # noqa: ASYNC109
        while True:
            state = self._conn.state if self._conn is not None else ConnectionState.INITIALIZED
            if state is ConnectionState.CONNECTED:
                return
            if state in (ConnectionState.DISCONNECTED, ConnectionState.FAILED):
                raise self._dispatcher.last_refusal or NotConnected("the connection was closed")
            waiter = self._bind().create_future()
            waiters = self._dispatcher.state_waiters
            waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout)
            finally:
                if waiter in self._dispatcher.state_waiters:
                    self._dispatcher.state_waiters.remove(waiter)

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
        self._bridge.closed = True
        self._retry.cancel_all()
        self._hubs.close()
        dispatcher = self._dispatcher
        for broadcast in (
            dispatcher.state,
            dispatcher.errors,
            dispatcher.user_events,
            dispatcher.global_events,
        ):
            broadcast.complete()
        dispatcher.release_waiters(NotConnected("the service was shut down"))
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
            return InertChannel(self._channel_host, full, kind)
        if kind is ChannelType.PRESENCE:
            return PresenceChannel(self._channel_host, full, kind)
        return Channel(self._channel_host, full, kind)

    def private(self, name: str) -> Channel:
        """Echo's ``private``: subscribes ``private-{name}`` at once (see :meth:`join`)."""
        return self._eager(self.channel(name, ChannelType.PRIVATE))

    def encrypted_private(self, name: str) -> Channel:
        """Echo's ``encryptedPrivate``: subscribes ``private-encrypted-{name}`` at once (see :meth:`join`)."""
        return self._eager(self.channel(name, ChannelType.ENCRYPTED))

    def join(self, name: str) -> PresenceChannel:
        """Echo's ``join``: subscribes ``presence-{name}`` at once, as Echo does, so ``whisper`` works
        once ``subscribed`` fired. The channel stays until ``leave()``, or until its owner ends (a
        store's dispose, the end of an ``app.scope()``; see :attr:`owner`)."""
        ch = self.channel(name, "presence")
        self._eager(ch)
        return ch

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
        self._owning = False  # the parts belong to the handle; the handle goes to the owner
        try:
            parts = subscription_parts(
                ch, event, callback, presence_handlers, model=model, wrap=self._user_callback
            )
            if on_subscribed is not None:
                parts.append(
                    ch.subscribed.subscribe(on_next=self._user_callback(ch, "subscribed", on_subscribed))
                )
            if on_error is not None:
                parts.append(ch.errors.subscribe(on_next=self._user_callback(ch, "error", on_error)))
            if not parts:  # subscribe to the channel alone (e.g. to whisper on it)
                parts.append(ch.subscribed.subscribe(on_next=_ignore))
        finally:
            self._owning = True
        return self._adopt(Subscription(self, ch, CompositeDisposable(parts), self._bridge.call))

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
        if self.server_rendering or self._bridge.loop is None or self._shut:
            return  # never used (nothing subscribed) or already shut down
        if not self._bridge.on_loop_thread():
            self._bridge.call(lambda: self.leave_channel(name))
            return
        self._retry.forget(name)
        if self._hubs.remove(name) and self._conn is not None:
            self._conn.unsubscribe(name)

    def leave_all(self) -> None:
        """Leave every channel this service subscribed."""
        for name in list(self._hubs.hubs):
            self.leave_channel(name)

    def signin(self) -> None:
        """Authenticate the user (``pusher:signin`` through ``user_auth_endpoint``) now and after every
        reconnect; events for the user arrive on :attr:`user_events`. Connects if needed."""
        if self.server_rendering:
            return
        if not self._bridge.on_loop_thread():
            self._bridge.call(self.signin)
            return
        conn = self._connection()
        conn.signin()
        if conn.state is ConnectionState.INITIALIZED:
            conn.connect()

    @property
    def threadsafe(self) -> ThreadSafe:
        """Blocking wrappers for code running in other threads (``ws.threadsafe.subscribe(...)``)."""
        if self._threadsafe is None:
            self._threadsafe = ThreadSafe(self, self._bridge)
        return self._threadsafe

    # --- internals ----------------------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        return self._bridge.bind()

    def _report(self, error: WsError, hub: Hub | None, exc_info: BaseException | None = None) -> None:
        self._dispatcher.report(error, hub, exc_info)

    def _first_sink(self, name: str) -> None:
        """A channel got its first sink: subscribe it, connecting lazily on the first subscription."""
        conn = self._connection()
        conn.subscribe(name)
        if conn.state is ConnectionState.INITIALIZED:
            conn.connect()

    def _last_sink(self, name: str) -> None:
        self._retry.forget(name)
        if self._conn is not None:
            self._conn.unsubscribe(name)

    def _resubscribe(self, name: str) -> None:
        """A retry timer fired: subscribe again if the channel is still wanted and we are connected
        (otherwise the reconnect resubscribes it anyway)."""
        if self._shut or self._conn is None or self._hubs.get(name) is None:
            self._retry.forget(name)
        elif self._conn.state is ConnectionState.CONNECTED:
            self._conn.subscribe(name)

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
            self._report(error, self._hubs.get(ch.name), exc)

    def _whisper(self, name: str, event: str, data: Any) -> None:
        if not self._bridge.on_loop_thread():
            raise WsError("whisper() from another thread: use ws.threadsafe.whisper(...)")
        if self._conn is None:
            raise NotConnected(f"cannot whisper {event!r} on {name!r}: not connected")
        self._conn.send_client_event(name, event, data)

    def _attach(self, name: str, group: SinkGroup, sink: Sink) -> abc.DisposableBase:
        attached = self._bridge.attach(lambda: self._hubs.attach(name, group, sink))
        return self._adopt(attached) if self._owning else attached

    def _adopt(self, opened: D) -> D:
        """Hand what was just opened to the current owner, if the host application names one."""
        resolve = self.owner
        if resolve is not None:
            owner = resolve()
            if owner is not None:
                owner.add(opened)
        return opened

    def _eager(self, ch: Channel) -> Channel:
        """Subscribe ``ch`` now (Echo's private/join), held until left or until its owner ends."""
        if not self.server_rendering:
            ch.subscribed.subscribe(on_next=_ignore)
        return ch


class _ServiceChannels:
    """The :class:`~quvel_ws.client._channels.ChannelHost` a service hands its channels."""

    def __init__(self, service: WebSocketService) -> None:
        self._service = service

    @property
    def namespace(self) -> str | None:
        return self._service.namespace

    def attach(self, name: str, group: SinkGroup, sink: Sink) -> abc.DisposableBase:
        return self._service._attach(name, group, sink)

    def hub(self, name: str) -> Hub | None:
        return self._service._hubs.get(name)

    def whisper(self, name: str, event: str, data: Any) -> None:
        self._service._whisper(name, event, data)

    def leave(self, name: str) -> None:
        self._service.leave_channel(name)


def _ignore(_: object) -> None:
    return None


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
