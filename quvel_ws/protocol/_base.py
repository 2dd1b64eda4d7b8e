"""State and read-only views shared by the parts of :class:`~quvel_ws.protocol.PusherProtocol`.

The core is one state machine split by concern into a linear chain of classes: this base, encrypted
channels, subscriptions, user authentication, and the connection itself (``_protocol.py``). Each part
only calls what is defined before it in the chain."""

from __future__ import annotations

import random
from typing import Any, Final

from quvel_ws.protocol._backoff import Backoff
from quvel_ws.protocol._channels import ChannelEntry
from quvel_ws.protocol._config import ProtocolConfig
from quvel_ws.protocol._events import (
    ChannelAuthData,
    ChannelState,
    ConnectionState,
    Member,
    Output,
    StateChanged,
)
from quvel_ws.protocol._names import ChannelKind

# Transport phases (internal; finer than ConnectionState). Plain ints: compared on every frame.
PHASE_IDLE: Final = 0  # no socket, nothing scheduled
PHASE_OPENING: Final = 1  # OpenTransport emitted, waiting for transport_opened / transport_failed
PHASE_HANDSHAKE: Final = 2  # socket open, waiting for pusher:connection_established
PHASE_OPEN: Final = 3  # connected
PHASE_CLOSING: Final = 4  # CloseTransport emitted, waiting for transport_closed
PHASE_WAITING: Final = 5  # waiting for the retry time

KIND_PUBLIC = ChannelKind.PUBLIC
KIND_PRESENCE = ChannelKind.PRESENCE
KIND_ENCRYPTED = ChannelKind.ENCRYPTED
KIND_USER = ChannelKind.USER

STATE_CONNECTED = ConnectionState.CONNECTED
STATE_CONNECTING = ConnectionState.CONNECTING

PONG_TIMEOUT_CODE = 4201  # "Pong reply not received", the protocol's own name for it
HANDSHAKE_FAILED_CODE = 1002


class CoreBase:
    """Every field of the core, the output queue, and the read-only views."""

    def __init__(self, config: ProtocolConfig, *, rng: random.Random | None = None) -> None:
        self._config = config
        self._url = config.url
        self._urls = [config.url, *config.fallback_urls]  # the cluster's nodes, tried in turn
        self._url_index = 0
        self._backoff = Backoff(
            config.backoff_initial,
            config.backoff_max,
            config.immediate_retry_jitter,
            rng if rng is not None else random.Random(),
        )
        self._events: list[Output] = []
        self._state = ConnectionState.INITIALIZED
        self._phase = PHASE_IDLE
        self._socket_id: str | None = None
        self._activity_timeout = config.activity_timeout
        self._channels: dict[str, ChannelEntry] = {}
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
        self._connected_at = 0.0
        self._signin_requested = False
        self._signin_pending = False
        self._user_id: str | None = None
        self._user_data: dict[str, Any] | None = None
        self._subscribe_seq = 0  # counts pusher:subscribe frames sent (ChannelEntry.sent_seq)
        self._parked: dict[str, ChannelAuthData] = {}  # presence auths waiting for sign-in (no channel_data)

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
        return [name for name, ch in self._channels.items() if ch.kind is not KIND_USER]

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

    def _set_state(self, state: ConnectionState) -> None:
        previous = self._state
        if previous is not state:
            self._state = state
            self._events.append(StateChanged(previous, state))

    def _time(self, ch: ChannelEntry) -> None:
        """``ch`` just got a deadline: (re)queue it last, where the latest deadline belongs."""
        self._timed.pop(ch.name, None)
        self._timed[ch.name] = None

    def _untime(self, ch: ChannelEntry) -> None:
        if ch.deadline is None and ch.refresh_deadline is None:
            self._timed.pop(ch.name, None)
