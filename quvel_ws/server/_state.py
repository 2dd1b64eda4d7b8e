"""The live state of one app: its sockets, channels, presence members, signed-in users and cache.

Every change goes through here, so fan-out, presence bookkeeping and webhooks stay consistent. All
methods are synchronous: the server is single-threaded on its event loop and nothing here awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from quvel_ws.protocol import is_cache, is_presence
from quvel_ws.server._app import AppConfig
from quvel_ws.server._channels import PresenceMember, ServerChannel
from quvel_ws.server._frames import event_frame

if TYPE_CHECKING:
    from quvel_ws.server._cluster import ClusterAdapter
    from quvel_ws.server._webhooks import WebhookSender
    from quvel_ws.server._ws import Socket


class AppState:
    """Sockets, channels and users of one :class:`AppConfig`."""

    def __init__(
        self, config: AppConfig, webhooks: WebhookSender | None = None, cluster: ClusterAdapter | None = None
    ) -> None:
        self.config = config
        #: The other nodes (None: this server is alone, and every branch on it is one attribute test).
        self.cluster = cluster
        self.sockets: dict[str, Socket] = {}
        self.channels: dict[str, ServerChannel] = {}
        self.users: dict[str, set[Socket]] = {}
        self.watchers: dict[str, set[Socket]] = {}  # user id -> signed-in sockets watching that user
        self._cache: dict[str, tuple[str, Any, float]] = {}
        self.webhooks = webhooks
        self.quiet = False  # set while shutting down: no member_removed/webhooks for a dying server
        self._counts_dirty: set[str] = set()

    # --- publishing -------------------------------------------------------------------------------

    def publish(
        self, channel: str, event: str, data: Any, *, exclude: str | None = None, user_id: Any = None
    ) -> int:
        """Send one event to every subscriber of ``channel`` (but ``exclude``, a socket id).

        The frame is encoded once and the same bytes are written to every transport. Returns the
        number of sockets written to.
        """
        if is_cache(channel) and not event.startswith(("pusher:", "pusher_internal:", "client-")):
            self._cache[channel] = (event, data, time.monotonic() + self.config.cache_ttl)
        ch = self.channels.get(channel)
        if ch is None:
            return 0
        frame = event_frame(event, data, channel, user_id=user_id)
        subscribers = ch.subscribers
        if exclude is None:
            for write in subscribers.values():
                write(frame)
            return len(subscribers)
        sent = 0
        for sock, write in subscribers.items():
            if sock.id != exclude:
                write(frame)
                sent += 1
        return sent

    def broadcast(
        self, channel: str, event: str, data: Any, *, exclude: str | None = None, user_id: Any = None
    ) -> int:
        """:meth:`publish` here, and on every other node of the cluster."""
        sent = self.publish(channel, event, data, exclude=exclude, user_id=user_id)
        if self.cluster is not None:
            self.cluster.relay(self.config.id, channel, event, data, exclude=exclude, user_id=user_id)
        return sent

    def terminate_user(self, user_id: str) -> None:
        """Close this node's connections of ``user_id`` (4009, as Pusher's terminate_connections)."""
        for sock in self.user_sockets(user_id):
            sock.close(4009, "You got disconnected by the app.", error="You got disconnected by the app.")

    def cached(self, channel: str) -> tuple[str, Any] | None:
        entry = self._cache.get(channel)
        if entry is None:
            return None
        if entry[2] < time.monotonic():
            del self._cache[channel]
            return None
        return entry[0], entry[1]

    def prune_cache(self) -> None:
        now = time.monotonic()
        for name in [n for n, e in self._cache.items() if e[2] < now]:
            del self._cache[name]

    # --- membership -------------------------------------------------------------------------------

    def join(self, sock: Socket, name: str, member: PresenceMember | None) -> tuple[ServerChannel, bool]:
        """Add ``sock`` to channel ``name`` (and ``member`` to its presence set).

        Returns the channel and whether ``member`` is new to it (its first socket there), in which case
        the other subscribers have been told with ``member_added``.
        """
        ch = self.channels.get(name)
        if ch is None:
            ch = self.channels[name] = ServerChannel(name, presence=is_presence(name))
            if self.cluster is None:
                self._webhook({"name": "channel_occupied", "channel": name})
            else:
                self.cluster.occupied(self.config.id, name)
        ch.subscribers[sock] = sock.write
        self._count_changed(ch)
        sock.channels.add(name)
        new_member = False
        if member is not None:
            key = str(member.user_id)
            existing = ch.members.get(key)
            if existing is None:
                ch.members[key] = member
                member.sockets = 1
                new_member = True
            else:
                existing.sockets += 1
                existing.user_info = member.user_info
            sock.presence[name] = key
            if self.cluster is not None:  # the cluster decides whether the user is new everywhere
                self.cluster.presence_join(self.config.id, name, sock.id, member)
            elif new_member:
                self.publish(
                    name,
                    "pusher_internal:member_added",
                    _json_str({"user_id": member.user_id, "user_info": member.user_info}),
                    exclude=sock.id,
                )
                self._webhook({"name": "member_added", "channel": name, "user_id": key})
        return ch, new_member

    def leave(self, sock: Socket, name: str) -> None:
        """Remove ``sock`` from ``name``; ``member_removed`` goes out when a user's last socket leaves."""
        sock.channels.discard(name)
        ch = self.channels.get(name)
        if ch is None or ch.subscribers.pop(sock, None) is None:
            return
        key = sock.presence.pop(name, None)
        if key is not None:
            member = ch.members.get(key)
            if member is not None:
                member.sockets -= 1
                if self.cluster is not None and not self.quiet:  # a stopping node withdraws in one go
                    self.cluster.presence_leave(self.config.id, name, sock.id, key)
                if member.sockets <= 0:
                    del ch.members[key]
                    if not self.quiet and self.cluster is None:
                        self.publish(
                            name, "pusher_internal:member_removed", _json_str({"user_id": member.user_id})
                        )
                        self._webhook({"name": "member_removed", "channel": name, "user_id": key})
        self._count_changed(ch)
        if not ch.subscribers:
            del self.channels[name]
            if not self.quiet:
                if self.cluster is None:
                    self._webhook({"name": "channel_vacated", "channel": name})
                else:
                    self.cluster.vacated(self.config.id, name)

    def _count_changed(self, ch: ServerChannel) -> None:
        if not self.config.subscription_count_events or ch.presence or self.quiet:
            return
        if not self._counts_dirty:
            asyncio.get_running_loop().call_later(self.config.subscription_count_interval, self._send_counts)
        self._counts_dirty.add(ch.name)

    def _send_counts(self) -> None:
        dirty, self._counts_dirty = self._counts_dirty, set()
        for name in dirty:
            ch = self.channels.get(name)
            if ch is not None and not self.quiet:
                self.publish(
                    name,
                    "pusher_internal:subscription_count",
                    _json_str({"subscription_count": len(ch.subscribers)}),
                )

    def mute(self, sock: Socket) -> None:
        """Stop fan-out writes to ``sock`` without changing any subscriber set (safe mid-publish)."""
        for name in sock.channels:
            ch = self.channels.get(name)
            if ch is not None and sock in ch.subscribers:
                ch.subscribers[sock] = sock.write

    def add_socket(self, sock: Socket) -> None:
        self.sockets[sock.id] = sock

    def remove_socket(self, sock: Socket) -> None:
        """Forget a closed socket: leave its channels, drop its user sign-in."""
        if self.sockets.get(sock.id) is sock:
            del self.sockets[sock.id]
        for name in list(sock.channels):
            self.leave(sock, name)
        self.sign_out(sock)

    def sign_in(self, sock: Socket, user_id: str, watchlist: tuple[str, ...] = ()) -> None:
        """Register ``sock`` as ``user_id``; tell it which of its ``watchlist`` are online, and tell
        the watchers of ``user_id`` when this is the user's first connection."""
        self.sign_out(sock)
        first = user_id not in self.users
        sock.user_id = user_id
        self.users.setdefault(user_id, set()).add(sock)
        sock.watchlist = watchlist
        for watched in watchlist:
            self.watchers.setdefault(watched, set()).add(sock)
        online = [w for w in watchlist if w in self.users]
        if online:
            sock.send(_watchlist_frame("online", online))
        if first:
            self._watchlist_event(user_id, "online")

    def sign_out(self, sock: Socket) -> None:
        user_id = sock.user_id
        if user_id is None:
            return
        sock.user_id = None
        for watched in sock.watchlist:
            group = self.watchers.get(watched)
            if group is not None:
                group.discard(sock)
                if not group:
                    del self.watchers[watched]
        sock.watchlist = ()
        users = self.users.get(user_id)
        if users is not None:
            users.discard(sock)
            if not users:
                del self.users[user_id]
                if not self.quiet:
                    self._watchlist_event(user_id, "offline")

    def _watchlist_event(self, user_id: str, name: str) -> None:
        watchers = self.watchers.get(user_id)
        if watchers:
            frame = _watchlist_frame(name, [user_id])
            for sock in list(watchers):
                sock.send(frame)

    def user_sockets(self, user_id: str) -> list[Socket]:
        return list(self.users.get(user_id, ()))

    def client_event_webhook(self, channel: str, event: str, data: Any, socket_id: str, user_id: Any) -> None:
        if self.webhooks is None or self.quiet:
            return
        payload: dict[str, Any] = {
            "name": "client_event",
            "channel": channel,
            "event": event,
            "data": data if isinstance(data, str) else _json_str(data),
            "socket_id": socket_id,
        }
        if user_id is not None:
            payload["user_id"] = str(user_id)
        self._webhook(payload)

    def _webhook(self, event: dict[str, Any]) -> None:
        if self.webhooks is not None and not self.quiet:
            self.webhooks.enqueue(self.config, event)

    # --- queries for the HTTP API -----------------------------------------------------------------

    def occupied(self, prefix: str = "") -> Iterable[ServerChannel]:
        return (ch for name, ch in self.channels.items() if name.startswith(prefix))


def _watchlist_frame(name: str, user_ids: list[str]) -> bytes:
    return event_frame("pusher_internal:watchlist_events", {"events": [{"name": name, "user_ids": user_ids}]})


def _json_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()
