"""What the server asks of a cluster: the adapter interface, and the answers nodes exchange.

A server without an adapter (``PusherServer(redis_url=None)``) is a cluster of one and takes today's
path: every branch on ``AppState.cluster is None`` is one attribute test, nothing is queued or awaited.
With an adapter (:class:`~quvel_ws.server._redis_adapter.RedisAdapter`) the server keeps delivering
to its own sockets at once and hands the adapter what the other nodes must know:

- events (HTTP API, client events, presence changes) to relay, each tagged with the sending node so
  a node never delivers its own publication twice, with ``socket_id`` exclusion carried along;
- presence joins and leaves (membership lives in the shared store, owned per node and socket), and
  channel occupancy (so ``channel_occupied/vacated`` and ``member_added/removed`` fire once per
  cluster, from the node whose change made the transition);
- HTTP API questions about channels and users, answered by gathering every node's local view with a
  timeout (as Reverb does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from quvel_ws.server._channels import PresenceMember
    from quvel_ws.server._state import AppState

#: One node's view of one channel: ``[subscription count, [presence member keys]]``.
ChannelView = list[Any]


class ClusterHost(Protocol):
    """What an adapter needs from the server it serves."""

    def app_state_by_id(self, app_id: str) -> AppState | None: ...

    def app_ids(self) -> list[str]: ...


class ClusterAdapter(Protocol):
    """The calls the server makes into its cluster. None of them blocks or raises on a store outage:
    local delivery goes on, and the adapter reconciles once the store is back."""

    node_id: str

    async def start(self, host: ClusterHost) -> None:
        """Connect and register this node; raise :class:`~quvel_ws.errors.ClusterError` if the store
        cannot be reached."""

    async def stop(self) -> None:
        """Withdraw this node's members and channels (telling the others), then disconnect."""

    def relay(
        self, app_id: str, channel: str, event: str, data: Any, *, exclude: str | None, user_id: Any
    ) -> None:
        """Deliver an event (already delivered here) on every other node."""

    def terminate_user(self, app_id: str, user_id: str) -> None:
        """Close ``user_id``'s connections on every other node."""

    def occupied(self, app_id: str, channel: str) -> None:
        """This node's first subscriber of ``channel`` joined."""

    def vacated(self, app_id: str, channel: str) -> None:
        """This node's last subscriber of ``channel`` left."""

    def presence_join(self, app_id: str, channel: str, socket_id: str, member: PresenceMember) -> None:
        """A socket joined a presence channel as ``member``."""

    def presence_leave(self, app_id: str, channel: str, socket_id: str, key: str) -> None:
        """A socket left a presence channel."""

    def presence_payload(self, app_id: str, channel: str, socket_id: str) -> asyncio.Future[dict[str, Any]]:
        """The cluster's members of ``channel`` as ``subscription_succeeded`` data for ``socket_id``,
        after every join and leave this node asked for before. Member events the snapshot already
        holds are never sent to that socket; newer ones are sent after the snapshot."""

    async def gather(
        self, app_id: str, prefix: str | None, names: Sequence[str] | None
    ) -> dict[str, MergedChannel]:
        """Every live node's :func:`local_view`, merged (sums and unions)."""


def local_view(state: AppState, prefix: str | None, names: Sequence[str] | None) -> dict[str, ChannelView]:
    """This node's channels (those in ``names``, or starting with ``prefix``) as :data:`ChannelView`."""
    if names is not None:
        found = (state.channels.get(name) for name in names)
        channels: Iterable[Any] = [ch for ch in found if ch is not None]
    else:
        channels = state.occupied(prefix or "")
    return {ch.name: [len(ch.subscribers), list(ch.members)] for ch in channels}


@dataclass
class MergedChannel:
    """A channel across the cluster: subscriptions summed, presence members united."""

    subscription_count: int = 0
    members: dict[str, None] = field(default_factory=dict)  # ordered set of member keys


def merge_views(views: Iterable[dict[str, ChannelView]]) -> dict[str, MergedChannel]:
    merged: dict[str, MergedChannel] = {}
    for view in views:
        for name, (count, keys) in view.items():
            entry = merged.setdefault(name, MergedChannel())
            entry.subscription_count += int(count)
            entry.members.update(dict.fromkeys(str(k) for k in keys))
    return {name: ch for name, ch in merged.items() if ch.subscription_count > 0}


def presence_payload(members: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """``subscription_succeeded`` data from ``(user_id, user_info)`` pairs (one per user)."""
    ids: list[Any] = []
    info: dict[str, Any] = {}
    for user_id, user_info in members:
        key = str(user_id)
        if key not in info:
            ids.append(user_id)
        info[key] = user_info
    return {"presence": {"ids": ids, "hash": info, "count": len(ids)}}
