"""laravel-echo's naming rules: channel types and prefixes, event-name formatting, whispers, notifications.

Kept apart from the connection so the rules can be read (and tested) on their own; they match
laravel-echo 2.x (``EventFormatter``, ``PusherConnector.private/join/encryptedPrivate/leave``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from quvel_ws.errors import InvalidArgument, InvalidChannelName, InvalidEventName
from quvel_ws.protocol import (
    CLIENT_EVENT_PREFIX,
    ENCRYPTED_PREFIX,
    MAX_EVENT_NAME,
    PRESENCE_PREFIX,
    PRIVATE_PREFIX,
    ChannelEvent,
    ConnectionState,
    validate_channel_name,
)

DEFAULT_NAMESPACE = "App.Events"
NOTIFICATION_EVENT = "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated"
"""The event Laravel broadcasts notifications as (``BroadcastNotificationCreated``), as it is on the wire."""


class ChannelType(enum.StrEnum):
    """The six channel kinds of QuVel Kit's ``subscribe`` (the two notification kinds listen to
    Laravel notifications on a public or private channel)."""

    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    ENCRYPTED = "encrypted"
    PUBLIC_NOTIFICATION = "publicNotification"
    PRIVATE_NOTIFICATION = "privateNotification"

    @property
    def is_notification(self) -> bool:
        return self in (ChannelType.PUBLIC_NOTIFICATION, ChannelType.PRIVATE_NOTIFICATION)

    @property
    def prefix(self) -> str:
        """The prefix the server-side name carries for this kind ('' for public)."""
        return _PREFIXES[self]

    @classmethod
    def parse(cls, value: ChannelType | str) -> ChannelType:
        """Accept the enum, its camelCase value, or a snake_case/kebab alias (``private_notification``)."""
        if isinstance(value, ChannelType):
            return value
        if not isinstance(value, str):
            raise InvalidArgument(f"channel type must be a string, not {type(value).__name__}")
        key = value.strip().replace("-", "_").replace(" ", "_").lower()
        found = _ALIASES.get(key)
        if found is None:
            choices = ", ".join(t.value for t in cls)
            raise InvalidArgument(f"unknown channel type {value!r}; expected one of: {choices}")
        return found

    @classmethod
    def of(cls, full_name: str) -> ChannelType:
        """The kind a full channel name implies by its prefix (what pusher-js does)."""
        if full_name.startswith(ENCRYPTED_PREFIX):
            return cls.ENCRYPTED
        if full_name.startswith(PRIVATE_PREFIX):
            return cls.PRIVATE
        if full_name.startswith(PRESENCE_PREFIX):
            return cls.PRESENCE
        return cls.PUBLIC


_PREFIXES: dict[ChannelType, str] = {
    ChannelType.PUBLIC: "",
    ChannelType.PRIVATE: PRIVATE_PREFIX,
    ChannelType.PRESENCE: PRESENCE_PREFIX,
    ChannelType.ENCRYPTED: ENCRYPTED_PREFIX,
    ChannelType.PUBLIC_NOTIFICATION: "",
    ChannelType.PRIVATE_NOTIFICATION: PRIVATE_PREFIX,
}

_ALIASES: dict[str, ChannelType] = {}
for _t in ChannelType:
    _ALIASES[_t.value.lower()] = _t
    _ALIASES[re.sub(r"(?<!^)(?=[A-Z])", "_", _t.value).lower()] = _t
_ALIASES["private_encrypted"] = ChannelType.ENCRYPTED
del _t


def full_channel_name(name: str, type: ChannelType | str | None = None) -> tuple[str, ChannelType]:
    """The server-side name and kind of a channel, adding the prefix the kind needs like Echo's
    ``private()``/``join()``/``encryptedPrivate()`` do, unless ``name`` already carries it.

    ``type=None`` infers the kind from the prefix. A name whose prefix contradicts ``type`` (e.g.
    ``presence-x`` as ``private``) is refused rather than silently turned into ``private-presence-x``.
    """
    if type is None or not isinstance(name, str):
        validate_channel_name(name)
        return name, ChannelType.of(name)
    kind = ChannelType.parse(type)
    prefix = kind.prefix
    implied = ChannelType.of(name)
    if prefix:
        if kind is ChannelType.ENCRYPTED:
            full = name if name.startswith(ENCRYPTED_PREFIX) else ENCRYPTED_PREFIX + name
        elif name.startswith(prefix) and implied is not ChannelType.ENCRYPTED:
            full = name
        elif implied is not ChannelType.PUBLIC:
            raise InvalidChannelName(name, f"its prefix says {implied.value}, but the type is {kind.value}")
        else:
            full = prefix + name
    else:
        if implied is not ChannelType.PUBLIC:
            raise InvalidChannelName(
                name, f"a {kind.value} channel cannot start with a private-/presence- prefix"
            )
        full = name
    validate_channel_name(full)
    return full, kind


def leave_names(name: str) -> tuple[str, str, str, str]:
    """The four channels Echo's ``leave(name)`` leaves: the public, private, encrypted and presence ones."""
    validate_channel_name(name)
    return name, PRIVATE_PREFIX + name, ENCRYPTED_PREFIX + name, PRESENCE_PREFIX + name


def format_event(event: str, namespace: str | None = DEFAULT_NAMESPACE) -> str:
    """laravel-echo's ``EventFormatter.format``: ``NewMessage`` → ``App\\Events\\NewMessage``.

    A leading ``.`` or ``\\`` means "verbatim" (use it for ``broadcastAs`` names): it is dropped and the
    rest is kept as is. Otherwise the namespace is prepended and every ``.`` becomes ``\\``.
    """
    if not isinstance(event, str) or not event:
        raise InvalidEventName(str(event), "an event name must be a non-empty string")
    if event[0] in ".\\":
        formatted = event[1:]
    else:
        if namespace:
            event = f"{namespace}.{event}"
        formatted = event.replace(".", "\\")
    if not formatted:
        raise InvalidEventName(event, "nothing is left after the leading '.'")
    if len(formatted) > MAX_EVENT_NAME:
        raise InvalidEventName(formatted, f"it is over {MAX_EVENT_NAME} characters")
    return formatted


def echo_event_name(wire_event: str, namespace: str | None = DEFAULT_NAMESPACE) -> str:
    """The name laravel-echo's ``listenToAll`` hands its callback for the wire name ``wire_event``.

    Inside the namespace the namespace is stripped (``App\\Events\\Chat\\Sent`` → ``Chat\\Sent``);
    anything else gets a leading ``.`` (``order.shipped`` → ``.order.shipped``), so
    ``format_event(echo_event_name(w, ns), ns) == w`` (as in Echo, except for a namespaced wire name
    with a ``.`` after the namespace, which no PHP class name has). Unlike Echo, the namespace must be
    followed by ``\\`` to be stripped (Echo turns ``App\\EventsLog`` into ``og``), and without a
    namespace every name gets the ``.`` (Echo with an empty namespace drops the first character).
    """
    if namespace:
        prefix = namespace.replace(".", "\\") + "\\"
        if wire_event.startswith(prefix) and len(wire_event) > len(prefix):
            return wire_event[len(prefix) :]
    return "." + wire_event


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoEvent(ChannelEvent):
    """A :class:`ChannelEvent` from ``listen_to_all()``, also carrying ``name``: the event as
    laravel-echo's ``listenToAll`` names it (namespace stripped, or ``.`` + the wire name), which
    ``listen(name)`` accepts. ``event`` stays the wire name."""

    name: str = field(default="")


class ConnectionStatus(enum.StrEnum):
    """laravel-echo's ``connectionStatus()`` for a Pusher connection: the state a UI shows. (Echo's type
    also names ``reconnecting``, which only its Socket.io connector reports.)"""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


_STATUSES: Mapping[ConnectionState, ConnectionStatus] = MappingProxyType(
    {
        ConnectionState.CONNECTED: ConnectionStatus.CONNECTED,
        ConnectionState.CONNECTING: ConnectionStatus.CONNECTING,
        ConnectionState.FAILED: ConnectionStatus.FAILED,
        ConnectionState.UNAVAILABLE: ConnectionStatus.FAILED,
        ConnectionState.INITIALIZED: ConnectionStatus.DISCONNECTED,
        ConnectionState.DISCONNECTED: ConnectionStatus.DISCONNECTED,
    }
)


def connection_status(state: ConnectionState) -> ConnectionStatus:
    """Echo's ``PusherConnector.connectionStatus`` mapping: ``unavailable`` and ``failed`` are
    ``failed``, ``initialized`` and ``disconnected`` are ``disconnected``."""
    return _STATUSES[state]


def wire_event(event: str) -> str:
    """``event`` unchanged if it can be a wire event name (a non-empty string of at most 200 characters)."""
    if not isinstance(event, str) or not event:
        raise InvalidEventName(str(event), "an event name must be a non-empty string")
    if len(event) > MAX_EVENT_NAME:
        raise InvalidEventName(event, f"it is over {MAX_EVENT_NAME} characters")
    return event


def whisper_event(event: str) -> str:
    """The wire name of a whisper: ``typing`` → ``client-typing`` (Echo's ``whisper``,
    ``listenForWhisper``); a name already starting with ``client-`` is kept."""
    if not isinstance(event, str) or not event:
        raise InvalidEventName(str(event), "a whisper name must be a non-empty string")
    name = event if event.startswith(CLIENT_EVENT_PREFIX) else CLIENT_EVENT_PREFIX + event
    if len(name) > MAX_EVENT_NAME:
        raise InvalidEventName(name, f"it is over {MAX_EVENT_NAME} characters")
    return name
