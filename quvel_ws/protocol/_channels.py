"""Per-channel subscription state, with pusher-js's three flags (subscribed / pending / cancelled).

The flags reproduce the seven subscribe/unsubscribe sequences of pusher-js's integration tests
(``sub-sub = sub``, ``sub-unsub = NOP``, ``sub-unsub-sub = sub`` ...). Two deliberate differences:
a cancelled channel is dropped on disconnect (pusher-js would resubscribe it), and a server
``pusher:subscription_error`` ends the attempt (pusher-js leaves it pending forever).
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any

from quvel_ws.errors import InvalidChannelName
from quvel_ws.protocol._events import ChannelState
from quvel_ws.protocol._presence import Presence

if TYPE_CHECKING:
    from nacl.secret import SecretBox

MAX_CHANNEL_NAME = 200
USER_CHANNEL_PREFIX = "#server-to-user-"
_NAME_RE = re.compile(r"[-a-zA-Z0-9_=@,.;]+")


class ChannelKind(enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    ENCRYPTED = "encrypted"
    USER = "user"  # the signed-in user's #server-to-user-{id}


def channel_kind(name: str) -> ChannelKind:
    """The channel type by prefix, in pusher-js's order (encrypted before private)."""
    if name.startswith("private-encrypted-"):
        return ChannelKind.ENCRYPTED
    if name.startswith("private-"):
        return ChannelKind.PRIVATE
    if name.startswith("presence-"):
        return ChannelKind.PRESENCE
    if name.startswith(USER_CHANNEL_PREFIX):
        return ChannelKind.USER
    return ChannelKind.PUBLIC


def validate_channel_name(name: object) -> str:
    """Return ``name`` when a user may subscribe to it; raise :class:`InvalidChannelName` otherwise."""
    if not isinstance(name, str):
        raise InvalidChannelName(repr(name), "a channel name must be a string")
    if not name:
        raise InvalidChannelName(name, "it is empty")
    if len(name) > MAX_CHANNEL_NAME:
        raise InvalidChannelName(name, f"it is {len(name)} characters long, the limit is {MAX_CHANNEL_NAME}")
    if name.startswith("#"):
        raise InvalidChannelName(name, "names starting with '#' are reserved for the server")
    if _NAME_RE.fullmatch(name) is None:
        raise InvalidChannelName(name, "only letters, digits and -_=@,.; are allowed")
    return name


class Channel:
    """One channel in the client's map. Plain slotted object: it is touched on every event."""

    __slots__ = (
        "auth_sent",
        "box",
        "cancelled",
        "deadline",
        "failed",
        "held",
        "key",
        "kind",
        "name",
        "pending",
        "presence",
        "refresh_deadline",
        "refreshing",
        "subscribed",
        "subscription_count",
    )

    def __init__(self, name: str, kind: ChannelKind) -> None:
        self.name = name
        self.kind = kind
        self.subscribed = False
        self.pending = False
        self.cancelled = False
        self.failed = False
        # True once pusher:subscribe went out for the current attempt (auth answered or not needed).
        self.auth_sent = False
        self.deadline: float | None = None  # subscription timeout of the pending attempt
        self.presence: Presence | None = Presence() if kind is ChannelKind.PRESENCE else None
        self.key: bytes | None = None  # encrypted channels: the shared secret
        self.box: SecretBox | None = None
        self.refreshing = False  # encrypted: a refresh_key authorisation is outstanding
        self.refresh_deadline: float | None = None
        self.held: list[tuple[str, Any, str | None]] = []  # events waiting for a refreshed key
        self.subscription_count: int | None = None

    @property
    def state(self) -> ChannelState:
        if self.cancelled:
            return ChannelState.CANCELLED
        if self.pending:
            return ChannelState.PENDING
        if self.subscribed:
            return ChannelState.SUBSCRIBED
        if self.failed:
            return ChannelState.FAILED
        return ChannelState.UNSUBSCRIBED

    def start(self, deadline: float) -> None:
        """A subscription attempt begins (authorising, then waiting for subscription_succeeded)."""
        self.pending = True
        self.cancelled = False
        self.failed = False
        self.subscribed = False
        self.auth_sent = False
        self.deadline = deadline

    def succeeded(self) -> None:
        self.pending = False
        self.subscribed = True
        self.failed = False
        self.deadline = None

    def fail(self) -> None:
        self.pending = False
        self.subscribed = False
        self.failed = True
        self.deadline = None

    def disconnect(self) -> None:
        """The connection dropped: nothing is subscribed or pending any more (pusher-js #223)."""
        self.subscribed = False
        self.pending = False
        self.failed = False
        self.auth_sent = False
        self.deadline = None
        self.refreshing = False
        self.refresh_deadline = None
        self.subscription_count = None
        if self.presence is not None:
            self.presence.reset()
