"""The sans-I/O Pusher protocol 7 client: frames and clock ticks in, actions and facts out.

No sockets, no asyncio, no clock: every input carries ``now`` (monotonic seconds) and
:meth:`PusherProtocol.next_deadline` says when the core next needs a :meth:`~PusherProtocol.tick`.
The driver acts on :meth:`~PusherProtocol.events_to_process` in order. See
``docs/internals/protocol-core.md`` for the contract.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Final

import orjson

from quvel_ws.errors import (
    AuthorizationError,
    ClientEventError,
    ConnectionClosed,
    ConnectionRefused,
    DecryptionError,
    HandshakeError,
    InvalidArgument,
    InvalidChannelName,
    NotConnected,
    PayloadTooLarge,
    ProtocolError,
    ServerError,
    SigninError,
    SubscriptionError,
    SubscriptionTimeout,
    TransportError,
    WsError,
)
from quvel_ws.protocol._backoff import Backoff, RetryKind
from quvel_ws.protocol._channels import (
    USER_CHANNEL_PREFIX,
    Channel,
    ChannelKind,
    channel_kind,
    validate_channel_name,
)
from quvel_ws.protocol._codec import (
    _JSON_START,
    PING,
    PONG,
    _JSONDecodeError,
    _loads,
    channel_event,
    decode_data,
    decode_frame,
    encode_limited,
    user_id_str,
)
from quvel_ws.protocol._config import ProtocolConfig
from quvel_ws.protocol._crypto import DecryptFailed, decrypt, make_box
from quvel_ws.protocol._events import (
    AuthorizeChannel,
    AuthorizeUser,
    ChannelAuthData,
    ChannelState,
    CloseTransport,
    Connected,
    ConnectionState,
    ErrorRaised,
    GlobalEvent,
    Member,
    MemberAdded,
    MemberRemoved,
    MembersCleared,
    OpenTransport,
    Output,
    RetryScheduled,
    SendFrame,
    SignedIn,
    StateChanged,
    SubscriptionCount,
    SubscriptionFailed,
    SubscriptionSucceeded,
    Unsubscribed,
    UserAuthData,
    UserEvent,
)
from quvel_ws.protocol._policy import ABNORMAL_CLOSURE, CloseAction, close_action, handshake_error_action
from quvel_ws.protocol._presence import member_id

logger = logging.getLogger(__name__)

# Transport phases (internal; finer than ConnectionState). Plain ints: compared on every frame.
_IDLE: Final = 0  # no socket, nothing scheduled
_OPENING: Final = 1  # OpenTransport emitted, waiting for transport_opened / transport_failed
_HANDSHAKE: Final = 2  # socket open, waiting for pusher:connection_established
_OPEN: Final = 3  # connected
_CLOSING: Final = 4  # CloseTransport emitted, waiting for transport_closed
_WAITING: Final = 5  # waiting for the retry time

_PUBLIC = ChannelKind.PUBLIC
_PRESENCE = ChannelKind.PRESENCE
_ENCRYPTED = ChannelKind.ENCRYPTED
_USER = ChannelKind.USER

_CONNECTED = ConnectionState.CONNECTED
_CONNECTING = ConnectionState.CONNECTING

MAX_EVENT_NAME = 200
_PONG_TIMEOUT_CODE = 4201  # "Pong reply not received", the protocol's own name for it
_HANDSHAKE_FAILED_CODE = 1002


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


class PusherProtocol:
    """The whole Pusher protocol 7 client logic as a state machine with no I/O.

    Feed it with the input methods (each takes ``now``), then drain :meth:`events_to_process` and act
    on every item in order. Errors about what the server sent never raise: they come out as
    :class:`~quvel_ws.protocol.ErrorRaised`. Only the user-facing calls (``subscribe``,
    ``send_client_event``...) raise, for bad arguments.
    """

    def __init__(self, config: ProtocolConfig, *, rng: random.Random | None = None) -> None:
        self._config = config
        self._url = config.url
        self._backoff = Backoff(config.backoff_initial, config.backoff_max, config.immediate_retry_jitter,
                                rng if rng is not None else random.Random())
        self._events: list[Output] = []
        self._state = ConnectionState.INITIALIZED
        self._phase = _IDLE
        self._socket_id: str | None = None
        self._activity_timeout = config.activity_timeout
        self._channels: dict[str, Channel] = {}
        # Channels with a subscription or key-refresh deadline, in the order the deadlines were set. Every
        # deadline is `now + subscription_timeout`, so the first entry is the earliest: next_deadline()
        # stays O(1) while a thousand channels resubscribe after a reconnect.
        self._timed: dict[str, None] = {}
        self._last_rx = 0.0
        self._ping_at: float | None = None
        self._retry_at: float | None = None
        self._phase_deadline: float | None = None  # connect or handshake timeout
        self._unavailable_at: float | None = None
        self._attempt = 0
        self._signin_requested = False
        self._signin_pending = False
        self._user_id: str | None = None
        self._user_data: dict[str, Any] | None = None
        self._parked: dict[str, ChannelAuthData] = {}  # presence auths waiting for sign-in (no channel_data)

    # --- read-only views -------------------------------------------------------------------------

    @property
    def config(self) -> ProtocolConfig:
        return self._config

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def socket_id(self) -> str | None:
        return self._socket_id

    @property
    def activity_timeout(self) -> float:
        """The effective activity timeout: min(config, server's ``activity_timeout``)."""
        return self._activity_timeout

    @property
    def url(self) -> str:
        """The URL the next ``OpenTransport`` uses (``wss://`` after a 4000 close)."""
        return self._url

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id (after ``pusher:signin_success``), else None."""
        return self._user_id

    @property
    def user_data(self) -> dict[str, Any] | None:
        """The signed-in user's decoded ``user_data``, else None."""
        return self._user_data

    def channel_state(self, name: str) -> ChannelState:
        ch = self._channels.get(name)
        return ChannelState.UNSUBSCRIBED if ch is None else ch.state

    def channels(self) -> list[str]:
        """Names in the channel map (what a reconnect resubscribes, plus cancelled ones in flight)."""
        return [name for name, ch in self._channels.items() if ch.kind is not _USER]

    def members(self, name: str) -> tuple[Member, ...] | None:
        ch = self._channels.get(name)
        if ch is None or ch.presence is None:
            return None
        return ch.presence.members

    def me(self, name: str) -> Member | None:
        ch = self._channels.get(name)
        if ch is None or ch.presence is None:
            return None
        return ch.presence.me

    def subscription_count(self, name: str) -> int | None:
        """The last ``pusher_internal:subscription_count`` of a channel, if the server sent one."""
        ch = self._channels.get(name)
        return None if ch is None else ch.subscription_count

    def events_to_process(self) -> list[Output]:
        """Take the outputs produced so far, oldest first."""
        events = self._events
        self._events = []
        return events

    # --- connection ------------------------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Start connecting (no-op while connecting or connected)."""
        if self._state in (_CONNECTING, _CONNECTED, ConnectionState.UNAVAILABLE):
            return
        self._set_state(_CONNECTING)
        self._unavailable_at = now + self._config.unavailable_timeout
        self._backoff.reset()
        self._attempt = 0
        self._retry_at = now
        if self._phase != _CLOSING:  # else: open once the old socket reports closed
            self._open(now)

    def disconnect(self, now: float) -> None:
        """Close for good: no reconnect until ``connect``. Channels stay in the map."""
        phase = self._phase
        if phase in (_OPENING, _HANDSHAKE, _OPEN):
            self._events.append(CloseTransport(1000, "client disconnect"))
            self._phase = _CLOSING
        elif phase == _WAITING:
            self._phase = _IDLE
        self._retry_at = None
        self._phase_deadline = None
        self._unavailable_at = None
        self._ping_at = None
        self._drop_connection(now)
        self._set_state(ConnectionState.DISCONNECTED)

    def transport_opened(self, now: float) -> None:
        """The WebSocket is open; the core now waits for ``pusher:connection_established``."""
        if self._phase != _OPENING:
            if self._phase == _CLOSING:
                # disconnect() or a timeout raced the open: make sure that socket gets closed.
                self._events.append(CloseTransport(1000, "client disconnect"))
            elif logger.isEnabledFor(logging.DEBUG):
                logger.debug("transport_opened ignored in phase %d", self._phase)
            return
        self._phase = _HANDSHAKE
        self._phase_deadline = now + self._config.handshake_timeout
        self._last_rx = now

    def transport_failed(self, error: BaseException, now: float, *, permanent: bool = False) -> None:
        """The connect attempt failed. ``permanent=True`` (e.g. TLS unsupported) → state ``failed``."""
        phase = self._phase
        if phase == _CLOSING:
            self._after_close(now)
            return
        if phase not in (_OPENING, _HANDSHAKE, _OPEN):
            return
        err = error if isinstance(error, TransportError) else TransportError(
            f"could not connect to {self._url}: {type(error).__name__}: {error}")
        if err is not error:
            err.__cause__ = error
        self._events.append(ErrorRaised(err))
        self._phase = _IDLE
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
        if phase == _CLOSING:
            self._after_close(now)
            return
        if phase not in (_OPENING, _HANDSHAKE, _OPEN):
            return
        effective = ABNORMAL_CLOSURE if code is None else code
        action = close_action(code)
        if phase != _OPEN and action == "reconnect":
            action = "backoff"  # closed before the handshake finished: pusher-js backs off
        self._phase = _IDLE
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
        if self._phase == _OPEN and self._ping_at is None:
            self._events.append(SendFrame(PING))
            self._ping_at = now

    # --- timers ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time the core needs a ``tick`` (None: nothing scheduled)."""
        phase = self._phase
        best: float | None = None
        if phase == _OPEN:
            ping_at = self._ping_at
            best = (self._last_rx + self._activity_timeout) if ping_at is None else (
                ping_at + self._config.pong_timeout)
        elif phase == _WAITING:
            best = self._retry_at
        elif phase in (_OPENING, _HANDSHAKE):
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
        if phase == _OPEN:
            if self._ping_at is None:
                if now >= self._last_rx + self._activity_timeout:
                    self._events.append(SendFrame(PING))
                    self._ping_at = now
            elif now >= self._ping_at + self._config.pong_timeout:
                self._abort(_PONG_TIMEOUT_CODE, "pong not received", "retry", now)
        elif phase == _WAITING:
            if self._retry_at is not None and now >= self._retry_at:
                self._open(now)
        elif phase == _OPENING:
            if self._phase_deadline is not None and now >= self._phase_deadline:
                self._events.append(ErrorRaised(TransportError(
                    f"could not connect to {self._url} within {self._config.connect_timeout:g}s")))
                self._abort(1000, "connect timeout", "reconnect", now)
        elif phase == _HANDSHAKE and self._phase_deadline is not None and now >= self._phase_deadline:
            self._events.append(ErrorRaised(HandshakeError(
                f"no pusher:connection_established within {self._config.handshake_timeout:g}s")))
            self._abort(_HANDSHAKE_FAILED_CODE, "handshake timeout", "backoff", now)
        if self._unavailable_at is not None and now >= self._unavailable_at:
            self._unavailable_at = None
            if self._state is _CONNECTING:
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

    # --- inbound frames --------------------------------------------------------------------------

    def receive(self, text: str | bytes, now: float) -> None:
        """One inbound text frame. Never raises: a bad frame becomes ``ErrorRaised(ProtocolError)``."""
        self._last_rx = now
        self._ping_at = None  # any frame at all proves the connection is alive
        if self._phase != _OPEN:
            if self._phase == _OPENING:  # a driver may see the first frame before reporting the open
                self.transport_opened(now)
            if self._phase == _HANDSHAKE:
                self._handshake(text, now)
            return
        # Hot path: decode_frame's logic inlined (no call, no tuple), one dict lookup for the channel.
        try:
            msg = _loads(text)
        except _JSONDecodeError:
            self._bad_frame("frame is not valid JSON", text)
            return
        if type(msg) is not dict:
            self._bad_frame("frame is not a JSON object", text)
            return
        event = msg.get("event")
        if type(event) is not str:
            self._bad_frame("frame has no string 'event'", text)
            return
        data = msg.get("data")
        if type(data) is str and data and data[0] in _JSON_START:
            try:  # noqa: SIM105 (contextlib.suppress costs more on the hot path)
                data = _loads(data)
            except _JSONDecodeError:
                pass  # a plain string stays a string
        channel = msg.get("channel")
        if channel is None:
            self._global_frame(event, data, now)
            return
        if type(channel) is not str:
            self._bad_frame("frame 'channel' is not a string", text)
            return
        ch = self._channels.get(channel)
        if ch is None:
            if event == "pusher_internal:subscription_succeeded":
                # The server holds a subscription we no longer want (e.g. it answered after a timeout
                # and the user left): release it.
                self._send_unsubscribe(channel)
            return
        if event.startswith("pusher"):
            if event.startswith("pusher_internal:"):
                self._internal_event(ch, event, data, now)
                return
            if event.startswith("pusher:"):
                if event == "pusher:subscription_error":
                    self._server_subscription_error(ch, data)
                elif not ch.cancelled and ch.kind is not _USER:
                    # pusher:cache_miss and friends: never encrypted, passed on as they are.
                    self._events.append(channel_event(channel, event, data, user_id_str(msg.get("user_id"))))
                return
        if ch.cancelled:
            return
        kind = ch.kind
        if kind is _ENCRYPTED:
            self._encrypted_event(ch, event, data, user_id_str(msg.get("user_id")), now)
        elif kind is _USER:
            self._events.append(UserEvent(event, data))
        else:
            user_id = msg.get("user_id")
            if user_id is not None and type(user_id) is not str:
                user_id = user_id_str(user_id)
            self._events.append(channel_event(channel, event, data, user_id))

    def _bad_frame(self, reason: str, text: str | bytes) -> None:
        self._events.append(ErrorRaised(ProtocolError(reason, text)))

    def _global_frame(self, event: str, data: Any, now: float) -> None:
        if event == "pusher:ping":
            self._events.append(SendFrame(PONG))
        elif event == "pusher:pong":
            pass
        elif event == "pusher:error":
            code, message = _error_fields(data)
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
            event, _channel, data, _user_id = decode_frame(text)
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
                self._phase = _CLOSING
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
        self._abort(_HANDSHAKE_FAILED_CODE, "invalid handshake", "backoff", now)

    def _connected(self, socket_id: str, server_timeout: float, now: float) -> None:
        self._phase = _OPEN
        self._phase_deadline = None
        self._unavailable_at = None
        self._retry_at = None
        self._backoff.reset()
        self._attempt = 0
        self._socket_id = socket_id
        self._activity_timeout = min(self._config.activity_timeout, server_timeout)
        self._last_rx = now
        self._ping_at = None
        self._set_state(_CONNECTED)
        self._events.append(Connected(socket_id, self._activity_timeout))
        if self._signin_requested:
            self._request_signin()
        for ch in list(self._channels.values()):
            self._begin_subscribe(ch, now)

    # --- connection helpers ----------------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        previous = self._state
        if previous is not state:
            self._state = state
            self._events.append(StateChanged(previous, state))

    def _open(self, now: float) -> None:
        self._attempt += 1
        self._phase = _OPENING
        self._phase_deadline = now + self._config.connect_timeout
        self._retry_at = None
        self._events.append(OpenTransport(self._url, self._attempt))

    def _plan_retry(self, kind: RetryKind, now: float, delay: float | None = None) -> None:
        if delay is None:
            delay = self._backoff.next_delay(kind)
        self._retry_at = now + delay
        self._events.append(RetryScheduled(delay, self._attempt + 1))

    def _plan_retry_for(self, action: CloseAction, now: float) -> None:
        if action == "tls_only":
            if self._url.startswith("ws://"):
                self._url = "wss://" + self._url[len("ws://"):]
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
        if self._phase == _CLOSING:
            return
        if self._retry_at is None:
            self._phase = _IDLE
        elif now >= self._retry_at:
            self._open(now)
        else:
            self._phase = _WAITING

    def _after_close(self, now: float) -> None:
        self._phase = _IDLE
        self._resume(now)

    def _abort(self, code: int, reason: str, action: CloseAction, now: float) -> None:
        """Close the socket ourselves, then continue with ``action`` once it reports closed."""
        self._events.append(CloseTransport(code, reason))
        self._phase = _CLOSING
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
        if self._state is _CONNECTED:
            self._set_state(_CONNECTING)
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
            if ch.cancelled or ch.kind is _USER:
                del self._channels[name]
                self._timed.pop(name, None)
                continue
            was_subscribed = ch.subscribed
            ch.disconnect()
            self._timed.pop(name, None)
            if ch.presence is not None and was_subscribed:
                self._events.append(MembersCleared(name))

    # --- channels --------------------------------------------------------------------------------

    def subscribe(self, channel: str, now: float) -> None:
        """Subscribe (idempotent; reinstates a cancelled pending subscription). Raises
        :class:`InvalidChannelName` for a bad name. Sent once connected, never before."""
        name = validate_channel_name(channel)
        kind = channel_kind(name)
        if kind is _ENCRYPTED and not self._config.encrypted_channels:
            raise InvalidArgument(f"encrypted channels are disabled in this client: {name!r}")
        ch = self._channels.get(name)
        if ch is None:
            ch = Channel(name, kind)
            self._channels[name] = ch
        elif ch.pending:
            ch.cancelled = False  # reinstate (pusher-js): the attempt in flight goes on
            return
        elif ch.subscribed:
            return
        if self._state is _CONNECTED:
            self._begin_subscribe(ch, now)

    def unsubscribe(self, channel: str, now: float) -> None:
        """Leave a channel (idempotent). A pending subscription is cancelled: it is released when the
        server answers, and no event of it is delivered from now on."""
        if not isinstance(channel, str):
            raise InvalidChannelName(repr(channel), "a channel name must be a string")
        ch = self._channels.get(channel)
        if ch is None or ch.cancelled or ch.kind is _USER:
            return
        ch.held.clear()
        ch.refreshing = False
        ch.refresh_deadline = None
        if ch.pending:
            ch.cancelled = True
            self._events.append(Unsubscribed(channel))
            return
        del self._channels[channel]
        self._timed.pop(channel, None)
        if ch.subscribed and self._phase == _OPEN:
            self._send_unsubscribe(channel)
        self._events.append(Unsubscribed(channel))

    def _begin_subscribe(self, ch: Channel, now: float) -> None:
        ch.start(now + self._config.subscription_timeout)
        self._time(ch)
        if ch.kind is _PUBLIC or ch.kind is _USER:
            self._send_subscribe(ch, "", None)
        else:
            assert self._socket_id is not None
            self._events.append(AuthorizeChannel(ch.name, self._socket_id))

    def _send_subscribe(self, ch: Channel, auth: str, channel_data: str | None) -> None:
        data: dict[str, Any] = {"channel": ch.name, "auth": auth}
        if channel_data is not None:
            data["channel_data"] = channel_data  # verbatim: the signature covers these exact bytes
        try:
            text = encode_limited("pusher:subscribe", data, None, self._config.max_frame_bytes)
        except (PayloadTooLarge, InvalidArgument) as exc:
            self._fail_subscription(ch, SubscriptionError(ch.name, str(exc), type="PayloadTooLarge"))
            return
        ch.auth_sent = True
        self._events.append(SendFrame(text))

    def _send_unsubscribe(self, channel: str) -> None:
        self._events.append(SendFrame(orjson.dumps(
            {"event": "pusher:unsubscribe", "data": {"channel": channel}}).decode()))

    def _time(self, ch: Channel) -> None:
        """``ch`` just got a deadline: (re)queue it last, where the latest deadline belongs."""
        self._timed.pop(ch.name, None)
        self._timed[ch.name] = None

    def _untime(self, ch: Channel) -> None:
        if ch.deadline is None and ch.refresh_deadline is None:
            self._timed.pop(ch.name, None)

    def _fail_subscription(self, ch: Channel, error: SubscriptionError) -> None:
        ch.fail()
        self._untime(ch)
        self._parked.pop(ch.name, None)
        if ch.kind is _USER:
            self._channels.pop(ch.name, None)
            self._events.append(ErrorRaised(SigninError(f"server-to-user channel failed: {error.message}")))
            return
        self._events.append(SubscriptionFailed(ch.name, error))

    def _subscription_timed_out(self, ch: Channel) -> None:
        ch.deadline = None
        if not ch.pending:
            return
        if ch.cancelled:
            del self._channels[ch.name]
            self._parked.pop(ch.name, None)
            if ch.auth_sent and self._phase == _OPEN:
                self._send_unsubscribe(ch.name)  # in case the server subscribed us after all
            return
        self._fail_subscription(ch, SubscriptionTimeout(ch.name, self._config.subscription_timeout))

    def channel_authorized(self, channel: str, socket_id: str, auth: ChannelAuthData, now: float) -> None:
        """Answer to ``AuthorizeChannel``; ignored when ``socket_id`` is not the current one."""
        ch = self._channels.get(channel)
        if ch is None or socket_id != self._socket_id or self._phase != _OPEN:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("stale authorisation for %s (socket %s) ignored", channel, socket_id)
            return
        if ch.refreshing and not ch.pending:
            self._key_refreshed(ch, auth)
            return
        if not ch.pending or ch.auth_sent:
            return
        if ch.cancelled:
            del self._channels[channel]
            self._timed.pop(channel, None)
            return
        if ch.kind is _ENCRYPTED:
            if auth.shared_secret is None:
                self._fail_subscription(ch, AuthorizationError(
                    channel, f"No shared_secret key in auth payload for encrypted channel: {channel}",
                    status=200))
                return
            try:
                ch.box = make_box(auth.shared_secret)
            except ValueError as exc:
                self._fail_subscription(ch, AuthorizationError(channel, str(exc), status=200))
                return
            ch.key = auth.shared_secret
        elif ch.kind is _PRESENCE:
            assert ch.presence is not None
            if auth.channel_data is None:
                if self._user_id is not None:
                    ch.presence.my_id = self._user_id
                elif self._signin_requested and self._signin_pending:
                    self._parked[channel] = auth  # pusher-js waits for sign-in to learn "me"
                    return
                else:
                    self._fail_subscription(ch, AuthorizationError(
                        channel, "Invalid auth response: presence channels need channel_data "
                        "(or a signed-in user)", status=200))
                    return
            else:
                my_id = self._presence_user_id(auth.channel_data)
                if my_id is None:
                    self._fail_subscription(ch, AuthorizationError(
                        channel, "channel_data is not a JSON object with a user_id", status=200,
                        body=auth.channel_data))
                    return
                ch.presence.my_id = my_id
        self._send_subscribe(ch, auth.auth, auth.channel_data)

    @staticmethod
    def _presence_user_id(channel_data: str) -> str | None:
        try:
            parsed = orjson.loads(channel_data)
        except orjson.JSONDecodeError:
            return None
        return member_id(parsed.get("user_id")) if type(parsed) is dict else None

    def channel_authorization_failed(self, channel: str, socket_id: str, error: SubscriptionError,
                                     now: float) -> None:
        """Answer to ``AuthorizeChannel`` when the auth endpoint failed (status carried by ``error``)."""
        ch = self._channels.get(channel)
        if ch is None or socket_id != self._socket_id or self._phase != _OPEN:
            return
        if ch.refreshing and not ch.pending:
            self._flush_held(ch, f"could not fetch a new key: {error.message}")
            self._untime(ch)
            return
        if not ch.pending or ch.auth_sent:
            return
        if ch.cancelled:
            del self._channels[channel]
            self._timed.pop(channel, None)
            return
        self._fail_subscription(ch, error)

    def _internal_event(self, ch: Channel, event: str, data: Any, now: float) -> None:
        if event == "pusher_internal:subscription_succeeded":
            self._subscription_succeeded(ch, data)
        elif event == "pusher_internal:member_added":
            if ch.presence is None or ch.cancelled:
                return
            try:
                member, updated = ch.presence.add(data)
            except ProtocolError as exc:
                self._events.append(ErrorRaised(exc, ch.name))
                return
            self._events.append(MemberAdded(ch.name, member, updated))
        elif event == "pusher_internal:member_removed":
            if ch.presence is None or ch.cancelled:
                return
            try:
                removed = ch.presence.remove(data)
            except ProtocolError as exc:
                self._events.append(ErrorRaised(exc, ch.name))
                return
            if removed is not None:
                self._events.append(MemberRemoved(ch.name, removed))
        elif event == "pusher_internal:subscription_count":
            count = data.get("subscription_count") if type(data) is dict else None
            if type(count) is not int:
                self._events.append(ErrorRaised(ProtocolError("subscription_count without an integer count"),
                                                ch.name))
                return
            ch.subscription_count = count
            if not ch.cancelled and ch.kind is not _USER:
                self._events.append(SubscriptionCount(ch.name, count))
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("ignoring %s on %s", event, ch.name)

    def _subscription_succeeded(self, ch: Channel, data: Any) -> None:
        if ch.cancelled:
            # Unsubscribed while pending: now that the server has us, leave (pusher-js semantics).
            del self._channels[ch.name]
            self._timed.pop(ch.name, None)
            self._send_unsubscribe(ch.name)
            return
        ch.succeeded()
        self._untime(ch)
        if ch.kind is _USER:
            return
        presence = ch.presence
        if presence is None:
            self._events.append(SubscriptionSucceeded(ch.name, data))
            return
        try:
            presence.load(data)
        except ProtocolError as exc:
            self._events.append(ErrorRaised(exc, ch.name))
        if presence.my_id is None and self._user_id is not None:
            presence.my_id = self._user_id
        self._events.append(SubscriptionSucceeded(ch.name, data, presence.members, presence.me))

    def _server_subscription_error(self, ch: Channel, data: Any) -> None:
        """Soketi's ``pusher:subscription_error`` ``{type, error, status}``: the attempt is over."""
        if type(data) is dict:
            type_ = data.get("type")
            message = data.get("error")
            status = data.get("status")
        else:
            type_, message, status = None, data, None
        error = SubscriptionError(
            ch.name, message if type(message) is str else "the server refused the subscription",
            type=type_ if type(type_) is str else "SubscriptionError",
            status=status if type(status) is int else None)
        if ch.cancelled:
            del self._channels[ch.name]
            self._timed.pop(ch.name, None)
            return
        if not ch.pending and not ch.subscribed:
            self._events.append(ErrorRaised(error, ch.name))
            return
        self._fail_subscription(ch, error)

    # --- encrypted channels ----------------------------------------------------------------------

    def _encrypted_event(self, ch: Channel, event: str, data: Any, user_id: str | None, now: float) -> None:
        box = ch.box
        if box is None:
            self._events.append(ErrorRaised(DecryptionError(
                ch.name, event, "the event arrived before the channel's key"), ch.name))
            return
        if ch.refreshing:
            self._hold(ch, event, data, user_id)
            return
        try:
            plain = decrypt(box, data)
        except DecryptFailed as exc:
            if not exc.wrong_key:
                self._events.append(ErrorRaised(DecryptionError(ch.name, event, exc.reason), ch.name))
                return
            if self._socket_id is None:
                self._events.append(ErrorRaised(DecryptionError(ch.name, event, exc.reason), ch.name))
                return
            # The key may have been rotated: fetch it again once, hold events until it comes.
            self._hold(ch, event, data, user_id)
            ch.refreshing = True
            ch.refresh_deadline = now + self._config.subscription_timeout
            self._time(ch)
            self._events.append(AuthorizeChannel(ch.name, self._socket_id, "refresh_key"))
            return
        self._events.append(channel_event(ch.name, event, plain, user_id))

    def _hold(self, ch: Channel, event: str, data: Any, user_id: str | None) -> None:
        if len(ch.held) >= self._config.max_held_events:
            self._events.append(ErrorRaised(DecryptionError(
                ch.name, event, f"over {self._config.max_held_events} events wait for a new key"), ch.name))
            return
        ch.held.append((event, data, user_id))

    def _key_refreshed(self, ch: Channel, auth: ChannelAuthData) -> None:
        if auth.shared_secret is None:
            self._flush_held(ch, "the new auth response has no shared_secret")
            self._untime(ch)
            return
        try:
            box = make_box(auth.shared_secret)
        except ValueError as exc:
            self._flush_held(ch, str(exc))
            self._untime(ch)
            return
        ch.box = box
        ch.key = auth.shared_secret
        held = ch.held
        ch.held = []
        ch.refreshing = False
        ch.refresh_deadline = None
        self._untime(ch)
        for event, data, user_id in held:
            try:
                plain = decrypt(box, data)
            except DecryptFailed as exc:
                self._events.append(ErrorRaised(DecryptionError(
                    ch.name, event, f"{exc.reason} (also with the refreshed key)"), ch.name))
                continue
            self._events.append(channel_event(ch.name, event, plain, user_id))

    def _flush_held(self, ch: Channel, reason: str) -> None:
        """Report every held encrypted event as undecryptable (never drop them silently)."""
        held = ch.held
        ch.held = []
        ch.refreshing = False
        ch.refresh_deadline = None
        for event, _data, _user_id in held:
            self._events.append(ErrorRaised(DecryptionError(ch.name, event, reason), ch.name))

    # --- client events ---------------------------------------------------------------------------

    def send_client_event(self, channel: str, event: str, data: Any, now: float) -> None:
        """Send a client event (whisper). Raises :class:`ClientEventError`, :class:`NotConnected` or
        :class:`PayloadTooLarge`; nothing is sent or queued then."""
        if not isinstance(event, str) or not event.startswith("client-"):
            raise ClientEventError(f"client event names must start with 'client-', got {event!r}")
        if len(event) > MAX_EVENT_NAME:
            raise ClientEventError(f"client event name is over {MAX_EVENT_NAME} characters: {event[:40]!r}")
        if not isinstance(channel, str):
            raise ClientEventError(f"channel must be a string, got {channel!r}")
        ch = self._channels.get(channel)
        kind = ch.kind if ch is not None else channel_kind(channel)
        if kind is _ENCRYPTED:
            raise ClientEventError(f"client events are not supported on encrypted channels ({channel!r})")
        if kind is not ChannelKind.PRIVATE and kind is not _PRESENCE:
            raise ClientEventError(f"client events need a private or presence channel, not {channel!r}")
        if self._state is not _CONNECTED:
            raise NotConnected(f"cannot send {event!r} on {channel!r}: the connection is {self._state}")
        if ch is None or not ch.subscribed or ch.cancelled:
            raise ClientEventError(f"cannot send {event!r}: {channel!r} is not subscribed")
        self._events.append(SendFrame(encode_limited(event, data, channel, self._config.max_frame_bytes)))

    # --- user authentication ---------------------------------------------------------------------

    def signin(self, now: float) -> None:
        """Request user authentication, now if connected, and again after every reconnect."""
        self._signin_requested = True
        if self._state is _CONNECTED and self._user_id is None and not self._signin_pending:
            self._request_signin()

    def _request_signin(self) -> None:
        assert self._socket_id is not None
        self._signin_pending = True
        self._events.append(AuthorizeUser(self._socket_id))

    def user_authorized(self, socket_id: str, auth: UserAuthData, now: float) -> None:
        """Answer to ``AuthorizeUser``: sends ``pusher:signin``."""
        if socket_id != self._socket_id or self._phase != _OPEN or not self._signin_pending:
            return
        try:
            text = encode_limited("pusher:signin", {"auth": auth.auth, "user_data": auth.user_data}, None,
                                  self._config.max_frame_bytes)
        except (PayloadTooLarge, InvalidArgument) as exc:
            self._signin_failed(SigninError(str(exc)))
            return
        self._events.append(SendFrame(text))

    def user_authorization_failed(self, socket_id: str, error: SigninError, now: float) -> None:
        """Answer to ``AuthorizeUser`` when the user-auth endpoint failed."""
        if socket_id != self._socket_id or self._phase != _OPEN or not self._signin_pending:
            return
        self._signin_failed(error)

    def _signin_failed(self, error: WsError) -> None:
        self._signin_pending = False
        self._events.append(ErrorRaised(error))
        for name in list(self._parked):
            del self._parked[name]
            ch = self._channels.get(name)
            if ch is not None and ch.pending:
                self._fail_subscription(ch, AuthorizationError(
                    name, "Invalid auth response: no channel_data and the user sign-in failed", status=200))

    def _signin_success(self, data: Any, now: float) -> None:
        raw = data.get("user_data") if type(data) is dict else None
        user_data = decode_data(raw) if type(raw) is str else raw
        uid = member_id(user_data.get("id")) if type(user_data) is dict else None
        if uid is None or type(user_data) is not dict:
            self._signin_failed(SigninError("signin_success carries no user_data with a non-empty 'id'"))
            return
        self._signin_pending = False
        self._user_id = uid
        self._user_data = user_data
        self._events.append(SignedIn(uid, user_data))
        name = USER_CHANNEL_PREFIX + uid
        ch = self._channels.get(name)
        if ch is None:
            ch = Channel(name, _USER)
            self._channels[name] = ch
        if not ch.pending and not ch.subscribed:
            self._begin_subscribe(ch, now)
        for parked_name in list(self._parked):
            auth = self._parked.pop(parked_name)
            self.channel_authorized(parked_name, self._socket_id or "", auth, now)

    def _watchlist(self, data: Any) -> None:
        events = data.get("events") if type(data) is dict else None
        if type(events) is not list:
            self._events.append(ErrorRaised(ProtocolError("watchlist_events without an 'events' list")))
            return
        for entry in events:
            name = entry.get("name") if type(entry) is dict else None
            if type(name) is not str:
                self._events.append(ErrorRaised(ProtocolError("watchlist entry without a 'name'")))
                continue
            self._events.append(GlobalEvent(name, entry))
