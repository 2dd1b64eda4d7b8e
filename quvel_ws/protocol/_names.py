"""Pusher's naming rules, kept once for the client, the Echo layer and the server.

Channel names are 1-200 characters from ``[-a-zA-Z0-9_=@,.;]``; the prefix says the channel type
(``private-encrypted-`` before ``private-``); ``#server-to-user-{id}`` is the server's own channel for a
signed-in user and no client may subscribe to it by name.
"""

from __future__ import annotations

import enum
import re

from quvel_ws.errors import InvalidChannelName

MAX_CHANNEL_NAME = 200
MAX_EVENT_NAME = 200

PRIVATE_PREFIX = "private-"
PRESENCE_PREFIX = "presence-"
ENCRYPTED_PREFIX = "private-encrypted-"
USER_CHANNEL_PREFIX = "#server-to-user-"
CLIENT_EVENT_PREFIX = "client-"
CACHE_PREFIXES = ("cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-")

_NAME_RE = re.compile(r"[-a-zA-Z0-9_=@,.;]+")


class ChannelKind(enum.Enum):
    """A channel's type as its prefix says it (the wire's view; the Echo layer has its own six)."""

    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    ENCRYPTED = "encrypted"
    USER = "user"  # the signed-in user's #server-to-user-{id}


def channel_kind(name: str) -> ChannelKind:
    """The channel type by prefix, in pusher-js's order (encrypted before private)."""
    if name.startswith(ENCRYPTED_PREFIX):
        return ChannelKind.ENCRYPTED
    if name.startswith(PRIVATE_PREFIX):
        return ChannelKind.PRIVATE
    if name.startswith(PRESENCE_PREFIX):
        return ChannelKind.PRESENCE
    if name.startswith(USER_CHANNEL_PREFIX):
        return ChannelKind.USER
    return ChannelKind.PUBLIC


def is_private(name: str) -> bool:
    """Needs a signed ``auth`` to subscribe (private, encrypted and presence channels)."""
    return name.startswith((PRIVATE_PREFIX, PRESENCE_PREFIX))


def is_presence(name: str) -> bool:
    return name.startswith(PRESENCE_PREFIX)


def is_encrypted(name: str) -> bool:
    return name.startswith(ENCRYPTED_PREFIX)


def is_cache(name: str) -> bool:
    return name.startswith(CACHE_PREFIXES)


def channel_name_problem(
    name: object, max_length: int = MAX_CHANNEL_NAME, *, user_channel: bool = False
) -> str | None:
    """Why ``name`` is not a valid channel name, or ``None`` when it is.

    ``user_channel=True`` (the server's view) also accepts ``#server-to-user-{id}``; a client never
    subscribes to that name itself."""
    if not isinstance(name, str):
        return "a channel name must be a string"
    if not name:
        return "it is empty"
    if len(name) > max_length:
        return f"it is {len(name)} characters long, the limit is {max_length}"
    body = name
    if name.startswith("#"):
        if not (user_channel and name.startswith(USER_CHANNEL_PREFIX)):
            return "names starting with '#' are reserved for the server (#server-to-user-{id})"
        body = name[1:]
    if _NAME_RE.fullmatch(body) is None:
        return "only letters, digits and -_=@,.; are allowed"
    return None


def validate_channel_name(name: object) -> str:
    """Return ``name`` when a user may subscribe to it; raise :class:`InvalidChannelName` otherwise."""
    if not isinstance(name, str):
        raise InvalidChannelName(repr(name), "a channel name must be a string")
    problem = channel_name_problem(name)
    if problem is not None:
        raise InvalidChannelName(name, problem)
    return name
