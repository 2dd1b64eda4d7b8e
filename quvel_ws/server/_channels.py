"""Channels of one app: who is subscribed, presence members, and the name rules.

A channel exists while it has subscribers; its subscriber map is what a publish iterates, so it maps
each socket straight to its transport's ``write`` (no attribute lookups on the hot path).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quvel_ws.server._ws import Socket

CHANNEL_NAME_RE = re.compile(r"\A#?[-a-zA-Z0-9_=@,.;]+\Z")
SERVER_TO_USER_PREFIX = "#server-to-user-"
CACHE_PREFIXES = ("cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-")


def is_private(name: str) -> bool:
    """Needs a signed ``auth`` to subscribe (private, encrypted and presence channels)."""
    return name.startswith(("private-", "presence-"))


def is_presence(name: str) -> bool:
    return name.startswith("presence-")


def is_encrypted(name: str) -> bool:
    return name.startswith("private-encrypted-")


def is_cache(name: str) -> bool:
    return name.startswith(CACHE_PREFIXES)


def channel_name_problem(name: object, max_length: int) -> str | None:
    """Why ``name`` is not a valid channel name, or ``None`` when it is."""
    if not isinstance(name, str) or not name:
        return "the channel name must be a non-empty string"
    if len(name) > max_length:
        return f"The channel name is longer than the allowed {max_length} characters."
    if not CHANNEL_NAME_RE.match(name) or (
        name.startswith("#") and not name.startswith(SERVER_TO_USER_PREFIX)
    ):
        return (
            "The channel name is not allowed: use 1-200 characters from [-a-zA-Z0-9_=@,.;] "
            "('#' only in #server-to-user-{id})."
        )
    return None


@dataclass
class Member:
    """A presence member: one user, possibly on several sockets (tabs)."""

    user_id: Any  # as the app sent it (str or int); keyed by str(user_id)
    user_info: Any
    sockets: int = 0


@dataclass
class Channel:
    name: str
    subscribers: dict[Socket, Callable[[bytes], object]] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    presence: bool = False

    def presence_payload(self) -> dict[str, Any]:
        ids = [m.user_id for m in self.members.values()]
        return {
            "presence": {
                "ids": ids,
                "hash": {k: m.user_info for k, m in self.members.items()},
                "count": len(ids),
            }
        }
