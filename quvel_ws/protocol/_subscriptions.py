"""Subscribing, unsubscribing, authorisation answers, channel-level server messages and client events
(part of :class:`~quvel_ws.protocol.PusherProtocol`)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from quvel_ws.errors import (
    AuthorizationError,
    ClientEventError,
    InvalidArgument,
    InvalidChannelName,
    NotConnected,
    PayloadTooLarge,
    ProtocolError,
    SigninError,
    SubscriptionError,
    SubscriptionRefused,
    SubscriptionTimeout,
)
from quvel_ws.protocol._base import (
    KIND_ENCRYPTED,
    KIND_PRESENCE,
    KIND_PUBLIC,
    KIND_USER,
    PHASE_OPEN,
    STATE_CONNECTED,
)
from quvel_ws.protocol._channels import ChannelEntry
from quvel_ws.protocol._codec import encode_limited
from quvel_ws.protocol._crypto import make_box
from quvel_ws.protocol._encrypted import EncryptedChannelsPart
from quvel_ws.protocol._events import (
    AuthorizeChannel,
    ChannelAuthData,
    ErrorRaised,
    MemberAdded,
    MemberRemoved,
    SendFrame,
    SubscriptionCount,
    SubscriptionFailed,
    SubscriptionSucceeded,
    Unsubscribed,
)
from quvel_ws.protocol._names import MAX_EVENT_NAME, ChannelKind, channel_kind, validate_channel_name
from quvel_ws.protocol._presence import member_id

logger = logging.getLogger(__name__)


class SubscriptionsPart(EncryptedChannelsPart):
    """The per-channel state machine driven by the user, the auth answers and the server."""

    def subscribe(self, channel: str, now: float) -> None:
        """Subscribe (idempotent; reinstates a cancelled pending subscription). Raises
        :class:`InvalidChannelName` for a bad name. Sent once connected, never before."""
        name = validate_channel_name(channel)
        kind = channel_kind(name)
        if kind is KIND_ENCRYPTED and not self._config.encrypted_channels:
            raise InvalidArgument(f"encrypted channels are disabled in this client: {name!r}")
        ch = self._channels.get(name)
        if ch is None:
            ch = ChannelEntry(name, kind)
            self._channels[name] = ch
        elif ch.pending:
            ch.cancelled = False  # reinstate (pusher-js): the attempt in flight goes on
            return
        elif ch.subscribed:
            return
        if self._state is STATE_CONNECTED:
            self._begin_subscribe(ch, now)

    def unsubscribe(self, channel: str, now: float) -> None:
        """Leave a channel (idempotent). A pending subscription is cancelled: it is released when the
        server answers, and no event of it is delivered from now on."""
        if not isinstance(channel, str):
            raise InvalidChannelName(repr(channel), "a channel name must be a string")
        ch = self._channels.get(channel)
        if ch is None or ch.cancelled or ch.kind is KIND_USER:
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
        if ch.subscribed and self._phase == PHASE_OPEN:
            self._send_unsubscribe(channel)
        self._events.append(Unsubscribed(channel))

    def _begin_subscribe(self, ch: ChannelEntry, now: float) -> None:
        ch.start(now + self._config.subscription_timeout)
        self._time(ch)
        if ch.kind is KIND_PUBLIC or ch.kind is KIND_USER:
            self._send_subscribe(ch, "", None)
        else:
            assert self._socket_id is not None
            self._events.append(AuthorizeChannel(ch.name, self._socket_id))

    def _send_subscribe(self, ch: ChannelEntry, auth: str, channel_data: str | None) -> None:
        data: dict[str, Any] = {"channel": ch.name, "auth": auth}
        if channel_data is not None:
            data["channel_data"] = channel_data  # verbatim: the signature covers these exact bytes
        try:
            text = encode_limited("pusher:subscribe", data, None, self._config.max_frame_bytes)
        except (PayloadTooLarge, InvalidArgument) as exc:
            self._fail_subscription(ch, SubscriptionError(ch.name, str(exc), type="PayloadTooLarge"))
            return
        ch.auth_sent = True
        self._subscribe_seq += 1
        ch.sent_seq = self._subscribe_seq
        self._events.append(SendFrame(text))

    def _send_unsubscribe(self, channel: str) -> None:
        self._events.append(
            SendFrame(orjson.dumps({"event": "pusher:unsubscribe", "data": {"channel": channel}}).decode())
        )

    def _fail_subscription(self, ch: ChannelEntry, error: SubscriptionError) -> None:
        ch.fail()
        self._untime(ch)
        self._parked.pop(ch.name, None)
        if ch.kind is KIND_USER:
            self._channels.pop(ch.name, None)
            self._events.append(ErrorRaised(SigninError(f"server-to-user channel failed: {error.message}")))
            return
        self._events.append(SubscriptionFailed(ch.name, error))

    def _subscription_timed_out(self, ch: ChannelEntry) -> None:
        ch.deadline = None
        if not ch.pending:
            return
        if ch.cancelled:
            del self._channels[ch.name]
            self._parked.pop(ch.name, None)
            if ch.auth_sent and self._phase == PHASE_OPEN:
                self._send_unsubscribe(ch.name)  # in case the server subscribed us after all
            return
        self._fail_subscription(ch, SubscriptionTimeout(ch.name, self._config.subscription_timeout))

    def channel_authorized(self, channel: str, socket_id: str, auth: ChannelAuthData, now: float) -> None:
        """Answer to ``AuthorizeChannel``; ignored when ``socket_id`` is not the current one."""
        ch = self._channels.get(channel)
        if ch is None or socket_id != self._socket_id or self._phase != PHASE_OPEN:
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
        if ch.kind is KIND_ENCRYPTED:
            if auth.shared_secret is None:
                self._fail_subscription(
                    ch,
                    AuthorizationError(
                        channel,
                        f"No shared_secret key in auth payload for encrypted channel: {channel}",
                        status=200,
                    ),
                )
                return
            try:
                ch.box = make_box(auth.shared_secret)
            except ValueError as exc:
                self._fail_subscription(ch, AuthorizationError(channel, str(exc), status=200))
                return
            ch.key = auth.shared_secret
        elif ch.kind is KIND_PRESENCE:
            assert ch.presence is not None
            if auth.channel_data is None:
                if self._user_id is not None:
                    ch.presence.my_id = self._user_id
                elif self._signin_requested and self._signin_pending:
                    self._parked[channel] = auth  # pusher-js waits for sign-in to learn "me"
                    return
                else:
                    self._fail_subscription(
                        ch,
                        AuthorizationError(
                            channel,
                            "Invalid auth response: presence channels need channel_data "
                            "(or a signed-in user)",
                            status=200,
                        ),
                    )
                    return
            else:
                my_id = self._presence_user_id(auth.channel_data)
                if my_id is None:
                    self._fail_subscription(
                        ch,
                        AuthorizationError(
                            channel,
                            "channel_data is not a JSON object with a user_id",
                            status=200,
                            body=auth.channel_data,
                        ),
                    )
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

    def channel_authorization_failed(
        self, channel: str, socket_id: str, error: SubscriptionError, now: float
    ) -> None:
        """Answer to ``AuthorizeChannel`` when the auth endpoint failed (status carried by ``error``)."""
        ch = self._channels.get(channel)
        if ch is None or socket_id != self._socket_id or self._phase != PHASE_OPEN:
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

    def _internal_event(self, ch: ChannelEntry, event: str, data: Any, now: float) -> None:
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
                self._events.append(
                    ErrorRaised(ProtocolError("subscription_count without an integer count"), ch.name)
                )
                return
            ch.subscription_count = count
            if not ch.cancelled and ch.kind is not KIND_USER:
                self._events.append(SubscriptionCount(ch.name, count))
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("ignoring %s on %s", event, ch.name)

    def _subscription_succeeded(self, ch: ChannelEntry, data: Any) -> None:
        if ch.cancelled:
            # Unsubscribed while pending: now that the server has us, leave (pusher-js semantics).
            del self._channels[ch.name]
            self._timed.pop(ch.name, None)
            self._send_unsubscribe(ch.name)
            return
        ch.succeeded()
        self._untime(ch)
        if ch.kind is KIND_USER:
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

    def _server_subscription_error(self, ch: ChannelEntry, data: Any) -> None:
        """Soketi's ``pusher:subscription_error`` ``{type, error, status}``: the attempt is over."""
        if type(data) is dict:
            type_ = data.get("type")
            message = data.get("error")
            status = data.get("status")
        else:
            type_, message, status = None, data, None
        error = SubscriptionError(
            ch.name,
            message if type(message) is str else "the server refused the subscription",
            type=type_ if type(type_) is str else "SubscriptionError",
            status=status if type(status) is int else None,
        )
        if ch.cancelled:
            del self._channels[ch.name]
            self._timed.pop(ch.name, None)
            return
        if not ch.pending and not ch.subscribed:
            self._events.append(ErrorRaised(error, ch.name))
            return
        self._fail_subscription(ch, error)

    def _refused_by_server(self, code: int | None, message: str) -> bool:
        """A channel-less ``pusher:error`` that answers a pending private/presence subscribe (Reverb's
        4009, the Pusher cloud's "Invalid signature" without a code) fails that subscription; True
        if it did. Servers answer one socket's messages in order, so the error belongs to the oldest
        ``pusher:subscribe`` still waiting for its answer."""
        if code is not None and (code != 4009 or "member" in message.lower()):
            return False  # 4009 "not a member of the channel" answers a client event, not a subscribe
        waiting: ChannelEntry | None = None
        for ch in self._channels.values():
            if (
                ch.pending
                and ch.auth_sent
                and ch.kind is not KIND_PUBLIC
                and ch.kind is not KIND_USER
                and (waiting is None or ch.sent_seq < waiting.sent_seq)
            ):
                waiting = ch
        if waiting is None:
            return False
        if waiting.cancelled:  # left while pending: the refusal ends it, nobody is told
            del self._channels[waiting.name]
            self._timed.pop(waiting.name, None)
            return True
        self._fail_subscription(waiting, SubscriptionRefused(waiting.name, code, message))
        return True

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
        if kind is KIND_ENCRYPTED:
            raise ClientEventError(f"client events are not supported on encrypted channels ({channel!r})")
        if kind is not ChannelKind.PRIVATE and kind is not KIND_PRESENCE:
            raise ClientEventError(f"client events need a private or presence channel, not {channel!r}")
        if self._state is not STATE_CONNECTED:
            raise NotConnected(f"cannot send {event!r} on {channel!r}: the connection is {self._state}")
        if ch is None or not ch.subscribed or ch.cancelled:
            raise ClientEventError(f"cannot send {event!r}: {channel!r} is not subscribed")
        self._events.append(SendFrame(encode_limited(event, data, channel, self._config.max_frame_bytes)))
