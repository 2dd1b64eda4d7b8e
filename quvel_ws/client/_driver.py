"""The asyncio driver of the sans-I/O core: sockets, timers and authorisation requests around
:class:`quvel_ws.protocol.PusherProtocol`.

Every input reaches the core with ``now = loop.time()``; after each one the driver drains the core's
outputs in order, performs the actions (open, send, close, authorise) and passes the facts to the
service's ``dispatch``. One ``loop.call_at`` timer follows ``next_deadline()``. A received batch of
frames is fed to the core whole and drained once, so a burst costs no scheduling per event.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from quvel_ws.client._transport import WebSocketTransport, open_websocket
from quvel_ws.errors import (
    AuthorizationError,
    CertificateError,
    ProtocolError,
    SigninError,
    TransportError,
)
from quvel_ws.protocol import (
    AuthorizeChannel,
    AuthorizeUser,
    ChannelAuthData,
    ChannelEvent,
    CloseTransport,
    ConnectionState,
    ErrorRaised,
    OpenTransport,
    Output,
    ProtocolConfig,
    PusherProtocol,
    SendFrame,
    UserAuthData,
)

logger = logging.getLogger(__name__)


class AuthProvider(Protocol):
    """What the driver needs to answer ``AuthorizeChannel``/``AuthorizeUser``."""

    async def authorize_channel(self, channel: str, socket_id: str) -> ChannelAuthData: ...

    async def authenticate_user(self, socket_id: str) -> UserAuthData: ...


class ConnectionDriver:
    """Drives one :class:`PusherProtocol` on the running loop. Not thread-safe: call it from its loop."""

    def __init__(
        self,
        config: ProtocolConfig,
        *,
        authorizer: AuthProvider,
        dispatch: Callable[[Output], None],
        on_channel_event: Callable[[ChannelEvent], None] | None = None,
        loop: asyncio.AbstractEventLoop,
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        max_message_bytes: int = 1024 * 1024,
        rng: Any = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.core = PusherProtocol(config, rng=rng) if rng is not None else PusherProtocol(config)
        self._authorizer = authorizer
        self._dispatch = dispatch
        self._on_channel_event = on_channel_event or dispatch
        self._on_idle = on_idle
        self._loop = loop
        self._headers = dict(headers or {})
        self._origin = origin
        self._ssl = ssl
        self._connect_timeout = config.connect_timeout
        self._max_message_bytes = max_message_bytes
        self._transport: WebSocketTransport | None = None
        self._opening: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._pumping = False
        self._closed = False

    # --- user-side inputs (all synchronous; they only queue work) -----------------------------

    @property
    def state(self) -> ConnectionState:
        return self.core.state

    def connect(self) -> None:
        self.core.connect(self._loop.time())
        self.pump()

    def disconnect(self) -> None:
        self.core.disconnect(self._loop.time())
        self.pump()

    def subscribe(self, channel: str) -> None:
        self.core.subscribe(channel, self._loop.time())
        self.pump()

    def unsubscribe(self, channel: str) -> None:
        self.core.unsubscribe(channel, self._loop.time())
        self.pump()

    def signin(self) -> None:
        self.core.signin(self._loop.time())
        self.pump()

    def send_client_event(self, channel: str, event: str, data: Any) -> None:
        self.core.send_client_event(channel, event, data, self._loop.time())
        self.pump()

    def check_connection(self) -> None:
        self.core.check_connection(self._loop.time())
        self.pump()

    async def close(self) -> None:
        """Disconnect for good and release every task, timer and socket."""
        if self._closed:
            return
        if self.core.state not in (ConnectionState.DISCONNECTED, ConnectionState.INITIALIZED):
            self.disconnect()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [*self._tasks, *([self._opening] if self._opening else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    # --- the pump ------------------------------------------------------------------------------

    def pump(self) -> None:
        """Drain the core's outputs, in order, until it has nothing more to say; then re-arm the timer.

        Re-entrant calls (a callback that subscribes while events are dispatched) only make the outer
        loop drain again, so outputs are never handled out of order."""
        if self._pumping:
            return
        self._pumping = True
        try:
            core = self.core
            dispatch = self._dispatch
            on_event = self._on_channel_event
            while True:
                outputs = core.events_to_process()
                if not outputs:
                    break
                for output in outputs:
                    kind = type(output)
                    if kind is ChannelEvent:  # the hot path: first, and no action to take
                        try:
                            on_event(output)  # type: ignore[arg-type]
                        except Exception:  # a bug downstream must not kill the read loop
                            logger.exception("dispatching a ChannelEvent failed")
                    elif kind is SendFrame:
                        self._send(output)  # type: ignore[arg-type]
                    elif kind is OpenTransport:
                        self._open(output)  # type: ignore[arg-type]
                    elif kind is CloseTransport:
                        self._close_transport(output)  # type: ignore[arg-type]
                    elif kind is AuthorizeChannel:
                        self._spawn(self._authorize_channel(output))  # type: ignore[arg-type]
                    elif kind is AuthorizeUser:
                        self._spawn(self._authorize_user(output))  # type: ignore[arg-type]
                    else:
                        try:
                            dispatch(output)
                        except Exception:  # a bug downstream must not kill the read loop
                            logger.exception("dispatching %s failed", type(output).__name__)
        finally:
            self._pumping = False
        if self._on_idle is not None:
            self._on_idle()
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._closed:
            return
        deadline = self.core.next_deadline()
        if deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        self.core.tick(self._loop.time())
        self.pump()

    # --- actions -------------------------------------------------------------------------------

    def _send(self, output: SendFrame) -> None:
        transport = self._transport
        if transport is None or not transport.send_text(output.text):
            # Not the frame itself: a subscribe frame carries its auth signature.
            logger.debug("frame of %d characters not sent, the socket is not open", len(output.text))

    def _open(self, output: OpenTransport) -> None:
        if self._opening is not None:
            self._opening.cancel()
        if self._transport is not None:
            self._transport.abort()
            self._transport = None
        self._opening = self._loop.create_task(self._open_task(output))

    async def _open_task(self, output: OpenTransport) -> None:
        try:
            transport = await open_websocket(
                output.url,
                self,
                headers=self._headers,
                origin=self._origin,
                ssl=self._ssl,
                timeout=self._connect_timeout,
                max_message_bytes=self._max_message_bytes,
            )
        except asyncio.CancelledError:
            raise
        except TransportError as exc:
            if asyncio.current_task() is self._opening:
                self._opening = None
                logger.debug("connecting to %s failed: %s", output.url, exc)  # reported once, as an error
                # A certificate that does not verify will not verify on the next try either: stop.
                permanent = isinstance(exc, CertificateError)
                self.core.transport_failed(exc, self._loop.time(), permanent=permanent)
                self.pump()
            return
        except Exception as exc:  # a bad URL or TLS setup: same policy, with a clear type
            if asyncio.current_task() is self._opening:
                self._opening = None
                logger.debug("connecting to %s failed", output.url, exc_info=True)
                self.core.transport_failed(
                    TransportError(f"could not open {output.url}: {exc}"), self._loop.time()
                )
                self.pump()
            return
        if asyncio.current_task() is not self._opening or self._closed:
            transport.abort()
            return
        self._opening = None
        self._transport = transport
        self.core.transport_opened(self._loop.time())
        self.pump()
        transport.start()

    def _close_transport(self, output: CloseTransport) -> None:
        """Close now and tell the core at once: a dead network must not delay the reconnect."""
        transport, self._transport = self._transport, None
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.cancel()
        if transport is not None:
            transport.close(output.code, output.reason)
        self.core.transport_closed(output.code, output.reason, self._loop.time())

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _authorize_channel(self, request: AuthorizeChannel) -> None:
        try:
            auth = await self._authorizer.authorize_channel(request.channel, request.socket_id)
        except AuthorizationError as exc:
            self.core.channel_authorization_failed(request.channel, request.socket_id, exc, self._loop.time())
        except Exception as exc:  # an authoriser bug must not leave the channel pending forever
            logger.debug("the authorizer raised for %s", request.channel, exc_info=True)
            error = AuthorizationError(request.channel, f"the authorizer raised {type(exc).__name__}: {exc}")
            self.core.channel_authorization_failed(
                request.channel, request.socket_id, error, self._loop.time()
            )
        else:
            self.core.channel_authorized(request.channel, request.socket_id, auth, self._loop.time())
        self.pump()

    async def _authorize_user(self, request: AuthorizeUser) -> None:
        try:
            auth = await self._authorizer.authenticate_user(request.socket_id)
        except SigninError as exc:
            self.core.user_authorization_failed(request.socket_id, exc, self._loop.time())
        except Exception as exc:
            logger.debug("the user authenticator raised", exc_info=True)
            error = SigninError(f"the user authenticator raised {type(exc).__name__}: {exc}")
            self.core.user_authorization_failed(request.socket_id, error, self._loop.time())
        else:
            self.core.user_authorized(request.socket_id, auth, self._loop.time())
        self.pump()

    # --- TransportListener ---------------------------------------------------------------------

    def transport_messages(self, transport: WebSocketTransport, messages: list[bytes]) -> None:
        if transport is not self._transport:
            return
        self.core.receive_batch(messages, self._loop.time())
        self.pump()

    def transport_lost(self, transport: WebSocketTransport, code: int | None, reason: str) -> None:
        if transport is not self._transport:
            return
        self._transport = None
        self.core.transport_closed(code, reason, self._loop.time())
        self.pump()

    def transport_dropped(self, transport: WebSocketTransport, size: int) -> None:
        if transport is not self._transport:
            return
        error = ProtocolError(f"dropped a {size}-byte message: over the {self._max_message_bytes}-byte limit")
        self._dispatch(ErrorRaised(error))
