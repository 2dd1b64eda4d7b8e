"""Channels of one app: who is subscribed and the presence members (the name rules are the protocol's).

A channel exists while it has subscribers; its subscriber map is what a publish iterates, so it maps
each socket straight to its transport's ``write`` (no attribute lookups on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quvel_ws.server._ws import Socket


@dataclass
class PresenceMember:
    """A presence member: one user, possibly on several sockets (tabs)."""

    user_id: Any  # as the app sent it (str or int); keyed by str(user_id)
    user_info: Any
    sockets: int = 0


@dataclass
class ServerChannel:
    name: str
    subscribers: dict[Socket, Callable[[bytes], object]] = field(default_factory=dict)
    members: dict[str, PresenceMember] = field(default_factory=dict)
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
