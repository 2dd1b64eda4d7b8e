"""Inputs and outputs of the sans-I/O Pusher protocol core.

The driver (asyncio, or a test with a fake clock) feeds the core with method calls on
:class:`quvel_ws.protocol.PusherProtocol` and drains these output events with
``protocol.events_to_process()``. Nothing here does I/O or reads a clock: every input carries ``now``
(seconds, monotonic) and the core says when it next needs a ``tick`` through ``next_deadline()``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from quvel_ws.errors import SubscriptionError, WsError


class ConnectionState(enum.StrEnum):
    """pusher-js's connection states."""

    INITIALIZED = "initialized"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNAVAILABLE = "unavailable"  # not connected within unavailable_timeout; still retrying
    FAILED = "failed"  # cannot connect at all (e.g. TLS required but unavailable)
    DISCONNECTED = "disconnected"  # disconnect() or a refusal (4001-4099, 4300+); no automatic retry


class ChannelState(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"  # authorising or waiting for subscription_succeeded
    CANCELLED = "cancelled"  # unsubscribed while pending; removed once the server answers
    SUBSCRIBED = "subscribed"
    FAILED = "failed"  # last attempt failed; subscribe() again to retry


@dataclass(frozen=True, slots=True)
class Member:
    """A presence channel member. ``id`` is always a string (servers send ints or strings)."""

    id: str
    info: Any = None


@dataclass(frozen=True, slots=True)
class ChannelAuthData:
    """A successful channel authorisation, as the auth endpoint returned it.

    ``channel_data`` is kept byte for byte (the signature covers it). ``shared_secret`` is the decoded
    32-byte key of a ``private-encrypted-`` channel."""

    auth: str
    channel_data: str | None = None
    shared_secret: bytes | None = None


@dataclass(frozen=True, slots=True)
class UserAuthData:
    """A successful user authentication (``/broadcasting/user-auth``): ``user_data`` is a JSON string."""

    auth: str
    user_data: str


# --- outputs: what the driver must do -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenTransport:
    """Open a WebSocket to ``url`` now, then call ``transport_opened`` or ``transport_failed``."""

    url: str
    attempt: int


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Write this text frame."""

    text: str


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Close the socket with this code; then call ``transport_closed``."""

    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AuthorizeChannel:
    """Authorise ``channel`` for ``socket_id``; answer with ``channel_authorized`` or
    ``channel_authorization_failed`` (with the same socket_id). ``purpose`` is ``refresh_key`` when an
    encrypted channel's key must be fetched again after a decryption failure."""

    channel: str
    socket_id: str
    purpose: Literal["subscribe", "refresh_key"] = "subscribe"


@dataclass(frozen=True, slots=True)
class AuthorizeUser:
    """Fetch the user authentication for ``socket_id``; answer with ``user_authorized`` or
    ``user_authorization_failed``."""

    socket_id: str


# --- outputs: what happened ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    previous: ConnectionState
    current: ConnectionState


@dataclass(frozen=True, slots=True)
class Connected:
    """Handshake done. ``activity_timeout`` is the effective one in seconds."""

    socket_id: str
    activity_timeout: float


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """The core will emit ``OpenTransport`` after ``delay`` seconds (pusher-js's ``connecting_in``)."""

    delay: float
    attempt: int


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """An event for a channel. ``data`` is decoded as pusher-js does (a JSON string is parsed, a plain
    string stays a string, absent is ``None``) and decrypted on encrypted channels. ``user_id`` is the
    sender on presence channels (client events)."""

    channel: str
    event: str
    data: Any
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class GlobalEvent:
    """A non-internal event without a channel (including watchlist entries, by name)."""

    event: str
    data: Any


@dataclass(frozen=True, slots=True)
class SubscriptionSucceeded:
    """A channel is subscribed; emitted again after every re-subscription (the hook for fetching what
    was missed). ``members`` is the full member list on presence channels."""

    channel: str
    data: Any = None
    members: tuple[Member, ...] | None = None
    me: Member | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    channel: str
    error: SubscriptionError


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The channel left the server (``pusher:unsubscribe`` sent) or was cancelled while pending."""

    channel: str


@dataclass(frozen=True, slots=True)
class SubscriptionCount:
    channel: str
    count: int


@dataclass(frozen=True, slots=True)
class MemberAdded:
    """``updated`` is True when the id was already a member (its info was replaced, count unchanged)."""

    channel: str
    member: Member
    updated: bool = False


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    channel: str
    member: Member


@dataclass(frozen=True, slots=True)
class MembersCleared:
    """The connection dropped: presence members of ``channel`` are reset until re-subscription."""

    channel: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    """``pusher:signin_success``; the core then subscribes ``#server-to-user-{user_id}`` itself."""

    user_id: str
    user_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserEvent:
    """An event on the signed-in user's ``#server-to-user-{id}`` channel."""

    event: str
    data: Any


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    """A typed error for the ``errors`` stream (a bad frame, a server error message, a decryption
    failure, a failed sign-in...). The connection keeps going unless a ``StateChanged`` says otherwise."""

    error: WsError
    channel: str | None = None


Output: TypeAlias = (
    OpenTransport
    | SendFrame
    | CloseTransport
    | AuthorizeChannel
    | AuthorizeUser
    | StateChanged
    | Connected
    | RetryScheduled
    | ChannelEvent
    | GlobalEvent
    | SubscriptionSucceeded
    | SubscriptionFailed
    | Unsubscribed
    | SubscriptionCount
    | MemberAdded
    | MemberRemoved
    | MembersCleared
    | SignedIn
    | UserEvent
    | ErrorRaised
)
