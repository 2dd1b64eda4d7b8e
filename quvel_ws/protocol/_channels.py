"""Per-channel subscription state, with pusher-js's three flags (subscribed / pending / cancelled).

The flags reproduce the seven subscribe/unsubscribe sequences of pusher-js's integration tests
(``sub-sub = sub``, ``sub-unsub = NOP``, ``sub-unsub-sub = sub`` ...). Two deliberate differences:
a cancelled channel is dropped on disconnect (pusher-js would resubscribe it), and a server
``pusher:subscription_error`` ends the attempt (pusher-js leaves it pending forever).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quvel_ws.protocol._events import ChannelState
from quvel_ws.protocol._names import ChannelKind
from quvel_ws.protocol._presence import Presence

if TYPE_CHECKING:
    from nacl.secret import SecretBox


class ChannelEntry:
    """One channel in the protocol core's map. Plain slotted object: it is touched on every event."""

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
        "sent_seq",
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
        self.sent_seq = 0  # order of the pusher:subscribe of the current attempt (answers come in order)
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
