"""The sans-I/O Pusher protocol 7 client: frames and clock ticks in, actions and facts out.

No sockets, no asyncio, no clock: every input carries ``now`` (monotonic seconds) and
:meth:`PusherProtocol.next_deadline` says when the core next needs a :meth:`~PusherProtocol.tick`.
The driver acts on :meth:`~PusherProtocol.events_to_process` in order. See
``docs/internals/protocol-core.md`` for the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from quvel_ws.errors import (
    ConnectionClosed,
    ConnectionRefused,
    HandshakeError,
    ProtocolError,
    ServerError,
    TransportError,
)
from quvel_ws.protocol._backoff import RetryKind
from quvel_ws.protocol._base import (
    HANDSHAKE_FAILED_CODE,
    KIND_ENCRYPTED,
    KIND_USER,
    PHASE_CLOSING,
    PHASE_HANDSHAKE,
    PHASE_IDLE,
    PHASE_OPEN,
    PHASE_OPENING,
    PHASE_WAITING,
    PONG_TIMEOUT_CODE,
    STATE_CONNECTED,
    STATE_CONNECTING,
)
from quvel_ws.protocol._codec import (
    PING,
    PONG,
    channel_event,
    decode_frame,
    user_id_str,
)
from quvel_ws.protocol._events import (
    CloseTransport,
    Connected,
    ConnectionState,
    ErrorRaised,
    GlobalEvent,
    MembersCleared,
    OpenTransport,
    RetryScheduled,
    SendFrame,
    UserEvent,
)
from quvel_ws.protocol._policy import ABNORMAL_CLOSURE, CloseAction, close_action, handshake_error_action
from quvel_ws.protocol._user import UserAuthPart

logger = logging.getLogger(__name__)


#: The lowest ``activity_timeout`` a server may impose (seconds).
MIN_SERVER_ACTIVITY_TIMEOUT = 1.0


def _error_fields(data: Any) -> tuple[int | None, str]:
    """``(code, message)`` of a ``pusher:error`` (object on Pusher/Soketi, JSON string on Reverb)."""
    if type(data) is dict:
        raw = data.get("code")
        code: int | None
        if type(raw) is int:
            code = raw
        elif type(raw) is str and raw.isdigit():
            code = int(raw)
        else:
            code = None
        message = data.get("message")
        return code, message if type(message) is str else ("" if message is None else str(message))
    if type(data) is str:
        return None, data
    return None, "" if data is None else str(data)


class PusherProtocol(UserAuthPart):
    """The whole Pusher protocol 7 client logic as a state machine with no I/O.

    Feed it with the input methods (each takes ``now``), then drain :meth:`events_to_process` and act
    on every item in order. Errors about what the server sent never raise: they come out as
    :class:`~quvel_ws.protocol.ErrorRaised`. Only the user-facing calls (``subscribe``,
    ``send_client_event``...) raise, for bad arguments.

    This module holds the connection (handshake, heartbeat, close codes, retries) and frame dispatch;
    the rest is inherited, one concern per module: ``_user`` (sign-in) ← ``_subscriptions`` (channels)
    ← ``_encrypted`` (decryption) ← ``_base`` (fields and read-only views).
    """

    def connect(self, now: float) -> None:
        """Start connecting (no-op while connecting or connected)."""
        if self._state in (STATE_CONNECTING, STATE_CONNECTED, ConnectionState.UNAVAILABLE):
            return
        self._set_state(STATE_CONNECTING)
        self._unavailable_at = now + self._config.unavailable_timeout
        self._backoff.reset()
        self._attempt = 0
        self._retry_at = now
        if self._phase != PHASE_CLOSING:  # else: open once the old socket reports closed
            self._open(now)

    def disconnect(self, now: float) -> None:
        """Close for good: no reconnect until ``connect``. Channels stay in the map."""
        phase = self._phase
        if phase in (PHASE_OPENING, PHASE_HANDSHAKE, PHASE_OPEN):
            self._events.append(CloseTransport(1000, "client disconnect"))
            self._phase = PHASE_CLOSING
        elif phase == PHASE_WAITING:
            self._phase = PHASE_IDLE
        self._retry_at = None
        self._phase_deadline = None
        self._unavailable_at = None
        self._ping_at = None
        self._drop_connection(now)
        self._set_state(ConnectionState.DISCONNECTED)

    def transport_opened(self, now: float) -> None:
        """The WebSocket is open; the core now waits for ``pusher:connection_established``."""
        if self._phase != PHASE_OPENING:
            if self._phase == PHASE_CLOSING:
                # disconnect() or a timeout raced the open: make sure that socket gets closed.
                self._events.append(CloseTransport(1000, "client disconnect"))
            elif logger.isEnabledFor(logging.DEBUG):
                logger.debug("transport_opened ignored in phase %d", self._phase)
            return
        self._phase = PHASE_HANDSHAKE
        self._phase_deadline = now + self._config.handshake_timeout
        self._last_rx = now

    def transport_failed(self, error: BaseException, now: float, *, permanent: bool = False) -> None:
        """The connect attempt failed. ``permanent=True`` (e.g. TLS unsupported) → state ``failed``."""
        phase = self._phase
        if phase == PHASE_CLOSING:
            self._after_close(now)
            return
        if phase not in (PHASE_OPENING, PHASE_HANDSHAKE, PHASE_OPEN):
            return
        err = (
            error
            if isinstance(error, TransportError)
            else TransportError(f"could not connect to {self._url}: {type(error).__name__}: {error}")
        )
        if err is not error:
            err.__cause__ = error
        self._events.append(ErrorRaised(err))
        self._phase = PHASE_IDLE
        self._phase_deadline = None
        if permanent:
            self._retry_at = None
            self._unavailable_at = None
            self._drop_connection(now)
            self._set_state(ConnectionState.FAILED)
            return
        self._lose_connection(now)
        self._plan_retry("reconnect", now)
        self._resume(now)

    def transport_closed(self, code: int | None, reason: str, now: float) -> None:
        """The socket closed (``code=None``: no close frame, i.e. 1006)."""
        phase = self._phase
        if phase == PHASE_CLOSING:
            self._after_close(now)
            return
        if phase not in (PHASE_OPENING, PHASE_HANDSHAKE, PHASE_OPEN):
            return
        effective = ABNORMAL_CLOSURE if code is None else code
        action = close_action(code)
        if phase != PHASE_OPEN and action == "reconnect":
            action = "backoff"  # closed before the handshake finished: pusher-js backs off
        self._phase = PHASE_IDLE
        self._phase_deadline = None
        if action == "refused":
            self._refuse(effective, reason, now)
            return
        if effective not in (1000, 1001):
            self._events.append(ErrorRaised(ConnectionClosed(effective, reason, action)))
        self._lose_connection(now)
        self._plan_retry_for(action, now)
        self._resume(now)

    def check_connection(self, now: float) -> None:
        """Ping now and expect any frame within ``pong_timeout`` (OS resume / network change hook)."""
        if self._phase == PHASE_OPEN and self._ping_at is None:
            self._events.append(SendFrame(PING))
            self._ping_at = now

    def next_deadline(self) -> float | None:
        """The earliest time the core needs a ``tick`` (None: nothing scheduled)."""
        phase = self._phase
        best: float | None = None
        if phase == PHASE_OPEN:
            ping_at = self._ping_at
            best = (
                (self._last_rx + self._activity_timeout)
                if ping_at is None
                else (ping_at + self._config.pong_timeout)
            )
        elif phase == PHASE_WAITING:
            best = self._retry_at
        elif phase in (PHASE_OPENING, PHASE_HANDSHAKE):
            best = self._phase_deadline
        if self._unavailable_at is not None and (best is None or self._unavailable_at < best):
            best = self._unavailable_at
        if self._timed:
            d = self._first_channel_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def _first_channel_deadline(self) -> float | None:
        timed = self._timed
        while timed:
            name = next(iter(timed))
            ch = self._channels.get(name)
            if ch is not None:
                d, r = ch.deadline, ch.refresh_deadline
                if d is not None or r is not None:
                    return d if r is None else r if d is None else min(d, r)
            del timed[name]  # stale entry
        return None

    def tick(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        phase = self._phase
        if phase == PHASE_OPEN:
            if self._ping_at is None:
                if now >= self._last_rx + self._activity_timeout:
                    self._events.append(SendFrame(PING))
                    self._ping_at = now
            elif now >= self._ping_at + self._config.pong_timeout:
                self._abort(PONG_TIMEOUT_CODE, "pong not received", "retry", now)
        elif phase == PHASE_WAITING:
            if self._retry_at is not None and now >= self._retry_at:
                self._open(now)
        elif phase == PHASE_OPENING:
            if self._phase_deadline is not None and now >= self._phase_deadline:
                self._events.append(
                    ErrorRaised(
                        TransportError(
                            f"could not connect to {self._url} within {self._config.connect_timeout:g}s"
                        )
                    )
                )
                self._abort(1000, "connect timeout", "reconnect", now)
        elif phase == PHASE_HANDSHAKE and self._phase_deadline is not None and now >= self._phase_deadline:
            self._events.append(
                ErrorRaised(
                    HandshakeError(
                        f"no pusher:connection_established within {self._config.handshake_timeout:g}s"
                    )
                )
            )
            self._abort(HANDSHAKE_FAILED_CODE, "handshake timeout", "backoff", now)
        if self._unavailable_at is not None and now >= self._unavailable_at:
            self._unavailable_at = None
            if self._state is STATE_CONNECTING:
                self._set_state(ConnectionState.UNAVAILABLE)
        if self._timed:
            self._tick_channels(now)

    def _tick_channels(self, now: float) -> None:
        while True:
            first = self._first_channel_deadline()
            if first is None or first > now:
                return
            ch = self._channels[next(iter(self._timed))]
            if ch.deadline is not None and now >= ch.deadline:
                self._subscription_timed_out(ch)
            if ch.refresh_deadline is not None and now >= ch.refresh_deadline:
                self._flush_held(ch, f"no new key within {self._config.subscription_timeout:g}s")
            self._untime(ch)

    def receive(self, text: str | bytes, now: float) -> None:
        """One inbound text frame. Never raises: a bad frame becomes ``ErrorRaised(ProtocolError)``."""
        self.receive_batch((text,), now)

    def receive_batch(self, texts: Iterable[str | bytes], now: float) -> None:
        """The text frames of one socket read, in order (the driver's ingest path: one call per read,
        not per frame). Never raises: a bad frame becomes ``ErrorRaised(ProtocolError)``."""
        self._last_rx = now
        self._ping_at = None  # any frame at all proves the connection is alive
        channels = self._channels
        append = self._events.append  # the queue is only swapped by events_to_process()
        for text in texts:
            if self._phase != PHASE_OPEN:
                if self._phase == PHASE_OPENING:  # a driver may see the first frame before the open
                    self.transport_opened(now)
                if self._phase == PHASE_HANDSHAKE:
                    self._handshake(text, now)
                continue
            try:
                event, channel, data, msg = decode_frame(text)
            except ProtocolError as exc:
                append(ErrorRaised(exc))
                continue
            if channel is None:
                self._global_frame(event, data, now)
                continue
            if type(channel) is not str:
                append(ErrorRaised(ProtocolError("frame 'channel' is not a string", text)))
                continue
            ch = channels.get(channel)
            if ch is None:
                if event == "pusher_internal:subscription_succeeded":
                    # The server holds a subscription we no longer want (e.g. it answered after a
                    # timeout and the user left): release it.
                    self._send_unsubscribe(channel)
                continue
            if event.startswith("pusher"):
                if event.startswith("pusher_internal:"):
                    self._internal_event(ch, event, data, now)
                    continue
                if event.startswith("pusher:"):
                    if event == "pusher:subscription_error":
                        self._server_subscription_error(ch, data)
                    elif not ch.cancelled and ch.kind is not KIND_USER:
                        # pusher:cache_miss and friends: never encrypted, passed on as they are.
                        append(channel_event(channel, event, data, user_id_str(msg.get("user_id"))))
                    continue
            if ch.cancelled:
                continue
            kind = ch.kind
            if kind is KIND_ENCRYPTED:
                self._encrypted_event(ch, event, data, user_id_str(msg.get("user_id")), now)
            elif kind is KIND_USER:
                append(UserEvent(event, data))
            else:
                user_id = msg.get("user_id")
                if user_id is not None and type(user_id) is not str:
                    user_id = user_id_str(user_id)
                append(channel_event(channel, event, data, user_id))

    def _global_frame(self, event: str, data: Any, now: float) -> None:
        if event == "pusher:ping":
            self._events.append(SendFrame(PONG))
        elif event == "pusher:pong":
            pass
        elif event == "pusher:error":
            code, message = _error_fields(data)
            # Errors of one message (4200 invalid format, 4301 rate limit...) are reported and the
            # socket is kept; one answering a pending subscribe fails that subscription.
            if not self._refused_by_server(code, message):
                self._events.append(ErrorRaised(ServerError(code, message)))
        elif event == "pusher:signin_success":
            self._signin_success(data, now)
        elif event == "pusher_internal:watchlist_events":
            self._watchlist(data)
        elif event == "pusher:connection_established":
            self._events.append(ErrorRaised(ProtocolError("connection_established on a connected socket")))
        elif event.startswith("pusher_internal:"):
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("ignoring channel-less %s", event)
        else:
            self._events.append(GlobalEvent(event, data))

    def _handshake(self, text: str | bytes, now: float) -> None:
        try:
            event, _channel, data, _msg = decode_frame(text)
        except ProtocolError as exc:
            self._handshake_failed(f"invalid first frame: {exc}", now)
            return
        if event == "pusher:connection_established":
            socket_id = data.get("socket_id") if type(data) is dict else None
            timeout = data.get("activity_timeout") if type(data) is dict else None
            if type(socket_id) is not str or not socket_id:
                self._handshake_failed("connection_established without a socket_id", now)
            elif not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
                self._handshake_failed("No activity timeout specified in handshake", now)
            else:
                self._connected(socket_id, float(timeout), now)
        elif event == "pusher:error":
            code, message = _error_fields(data)
            action = handshake_error_action(code)
            if action == "refused":
                self._events.append(CloseTransport(1000, "connection refused"))
                self._phase = PHASE_CLOSING
                self._phase_deadline = None
                self._refuse(code, message, now)
                return
            self._events.append(ErrorRaised(ServerError(code, message)))
            self._abort(1000, message[:100], action, now)
        elif event == "pusher:ping":
            self._events.append(SendFrame(PONG))  # odd before the handshake, but harmless to answer
        else:
            self._handshake_failed(f"Invalid handshake: first message was {event!r}", now)

    def _handshake_failed(self, message: str, now: float) -> None:
        self._events.append(ErrorRaised(HandshakeError(message)))
        self._abort(HANDSHAKE_FAILED_CODE, "invalid handshake", "backoff", now)

    def _connected(self, socket_id: str, server_timeout: float, now: float) -> None:
        self._phase = PHASE_OPEN
        self._phase_deadline = None
        self._unavailable_at = None
        self._retry_at = None
        # The backoff exponent is kept until the connection proves stable (see _lose_connection): a
        # server that accepts and drops every connection at once must not be hammered.
        self._connected_at = now
        self._attempt = 0
        self._socket_id = socket_id
        # A floor on what the server asks for: 1e-6 would make the client ping thousands of times a second.
        self._activity_timeout = min(
            self._config.activity_timeout, max(MIN_SERVER_ACTIVITY_TIMEOUT, server_timeout)
        )
        self._last_rx = now
        self._ping_at = None
        self._set_state(STATE_CONNECTED)
        self._events.append(Connected(socket_id, self._activity_timeout))
        if self._signin_requested:
            self._request_signin()
        for ch in list(self._channels.values()):
            self._begin_subscribe(ch, now)

    def _open(self, now: float) -> None:
        self._attempt += 1
        self._phase = PHASE_OPENING
        self._phase_deadline = now + self._config.connect_timeout
        self._retry_at = None
        self._events.append(OpenTransport(self._url, self._attempt))

    def _plan_retry(self, kind: RetryKind, now: float, delay: float | None = None) -> None:
        if len(self._urls) > 1:  # fail over: the next attempt goes to the next node
            self._url_index = (self._url_index + 1) % len(self._urls)
            self._url = self._urls[self._url_index]
        if delay is None:
            delay = self._backoff.next_delay(kind)
        self._retry_at = now + delay
        self._events.append(RetryScheduled(delay, self._attempt + 1))

    def _plan_retry_for(self, action: CloseAction, now: float) -> None:
        if action == "tls_only":
            if self._url.startswith("ws://"):
                self._urls = ["wss://" + u.removeprefix("ws://") for u in self._urls]
                self._url = self._urls[self._url_index]
                self._plan_retry("immediate", now, 0.0)
            else:  # already TLS: do not loop at full speed on a confused server
                self._plan_retry("backoff", now)
        elif action == "retry":
            self._plan_retry("immediate", now)
        elif action == "backoff":
            self._plan_retry("backoff", now)
        else:
            self._plan_retry("reconnect", now)

    def _resume(self, now: float) -> None:
        """After a close: open now if the retry is due, else wait for it."""
        if self._phase == PHASE_CLOSING:
            return
        if self._retry_at is None:
            self._phase = PHASE_IDLE
        elif now >= self._retry_at:
            self._open(now)
        else:
            self._phase = PHASE_WAITING

    def _after_close(self, now: float) -> None:
        self._phase = PHASE_IDLE
        self._resume(now)

    def _abort(self, code: int, reason: str, action: CloseAction, now: float) -> None:
        """Close the socket ourselves, then continue with ``action`` once it reports closed."""
        self._events.append(CloseTransport(code, reason))
        self._phase = PHASE_CLOSING
        self._phase_deadline = None
        self._ping_at = None
        if action == "refused":
            self._refuse(code, reason, now)
            return
        self._lose_connection(now)
        self._plan_retry_for(action, now)

    def _refuse(self, code: int | None, message: str, now: float) -> None:
        self._events.append(ErrorRaised(ConnectionRefused(code, message)))
        self._retry_at = None
        self._unavailable_at = None
        self._ping_at = None
        self._drop_connection(now)
        self._set_state(ConnectionState.DISCONNECTED)

    def _lose_connection(self, now: float) -> None:
        """The socket is gone but we will retry: back to ``connecting`` (state kept if not connected)."""
        self._ping_at = None
        if self._state is STATE_CONNECTED and now - self._connected_at >= self._config.backoff_reset_after:
            self._backoff.reset()
        if self._state is STATE_CONNECTED:
            self._set_state(STATE_CONNECTING)
            self._unavailable_at = now + self._config.unavailable_timeout
        self._drop_connection(now)

    def _drop_connection(self, now: float) -> None:
        """Forget everything tied to the socket: socket id, subscriptions, members, sign-in."""
        self._socket_id = None
        self._signin_pending = False
        self._user_id = None
        self._user_data = None
        self._parked.clear()
        for name, ch in list(self._channels.items()):
            if ch.held:
                self._flush_held(ch, "the connection dropped before a new key arrived")
            if ch.cancelled or ch.kind is KIND_USER:
                del self._channels[name]
                self._timed.pop(name, None)
                continue
            was_subscribed = ch.subscribed
            ch.disconnect()
            self._timed.pop(name, None)
            if ch.presence is not None and was_subscribed:
                self._events.append(MembersCleared(name))
