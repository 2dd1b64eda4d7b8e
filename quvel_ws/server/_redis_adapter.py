"""The Redis cluster adapter: ``quvel serve --redis redis://HOST:PORT/DB`` (Reverb's and Soketi's model).

- **Bus** (:mod:`._redis_bus`): relayed events, user terminations and the HTTP API's gather questions
  and answers go through one Redis Stream (resumed from the last id after a reconnect, resent and
  deduplicated after a failed write), or, with ``transport="pubsub"``, one pub/sub channel (at most
  once). A node skips its own messages; a queue and a writer task pipeline whatever piled up.
- **Presence and occupancy** live in Redis hashes and sets keyed by app and channel, each entry owned
  by ``node`` + ``socket``; Lua scripts make each change and report the transition (first socket of a
  user, last node of a channel) atomically, so the node that made it sends ``member_added`` /
  ``member_removed`` and the webhooks, once per cluster. Changes run in order on one worker task.
- **Liveness**: each node refreshes ``{prefix}:node:{id}`` (expiring after ``node_ttl``) every
  ``heartbeat`` seconds; a node that sees another's key gone takes a lock and removes that node's
  members and channels, with the events and webhooks a leave would have caused.
- **Redis restarts**: the bus reader reconnects with backoff (logged once per outage) and then
  reconciles this node's entries with its live state; local delivery never waits for Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from quvel_ws.errors import ClusterError
from quvel_ws.server._cluster import ChannelView, ClusterHost, local_view, merge_views, presence_payload
from quvel_ws.server._frames import event_frame
from quvel_ws.server._redis_bus import RedisBus, Transport

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from quvel_ws.server._channels import PresenceMember
    from quvel_ws.server._cluster import MergedChannel
    from quvel_ws.server._state import AppState

logger = logging.getLogger(__name__)
_SEP = "\x1f"

# Every presence change bumps the channel's version (KEYS[4]); member events carry it and a
# subscription_succeeded snapshot records it, so a socket is never told of a change its snapshot already
# holds. A missing version starts at the server clock in microseconds, so it keeps growing across a
# Redis restart that lost it (and may expire when the channel has been idle for a day).
_BUMP = """
local function bump(key)
  if redis.call('EXISTS', key) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', key, t[1] * 1000000 + t[2])
  end
  local v = redis.call('INCR', key)
  redis.call('PEXPIRE', key, 86400000)
  return v
end
"""
# KEYS: members hash, users hash, node index, version. ARGV: node|socket, member json, user key, index
# field. Returns {sockets the user now has (0: already joined), version}.
_JOIN = (
    _BUMP
    + """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return {0, 0} end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[3])
local n = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return {n, bump(KEYS[4])}
"""
)
# Same KEYS. ARGV: node|socket, user key, index field. Returns {sockets the user has left, member json,
# version}.
_LEAVE = (
    _BUMP
    + """
redis.call('HDEL', KEYS[3], ARGV[3])
local member = redis.call('HGET', KEYS[1], ARGV[1])
if not member then return {-1, '', 0} end
redis.call('HDEL', KEYS[1], ARGV[1])
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
if n <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return {n, member, bump(KEYS[4])}
"""
)
# KEYS: members hash, version. Returns {version, member jsons}: one consistent snapshot.
_MEMBERS = """
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HVALS', KEYS[1])}
"""
# KEYS: channel's node set, node index. ARGV: node, index field. 1: the channel became occupied/vacant.
_OCCUPY = """
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0
"""
_VACATE = """
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""


class RedisAdapter:
    """Joins a :class:`~quvel_ws.server.PusherServer` to the other nodes on the same Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "quvel",
        node_ttl: float = 5.0,
        heartbeat: float = 1.0,
        gather_timeout: float = 1.0,
        max_queued: int = 10_000,
        transport: Transport = "stream",
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ClusterError(f"the Redis URL must start with redis://, rediss:// or unix://, got {url!r}")
        if not 0 < heartbeat < node_ttl:
            raise ClusterError(
                f"heartbeat ({heartbeat}) must be positive and shorter than node_ttl ({node_ttl})"
            )
        self.url = url
        self.node_id = secrets.token_hex(6)
        self.prefix = prefix
        self.node_ttl = node_ttl
        self.heartbeat = heartbeat
        self.gather_timeout = gather_timeout
        self.max_queued = max_queued
        if transport not in ("stream", "pubsub"):
            raise ClusterError(f'the cluster transport must be "stream" or "pubsub", got {transport!r}')
        self.transport: Transport = transport
        self.bus: RedisBus | None = None
        self._host: ClusterHost | None = None
        self._redis: Redis | None = None
        self._ops: deque[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any] | None]] = deque()
        self._wake_ops = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._replies: dict[str, tuple[list[dict[str, ChannelView]], int, asyncio.Future[None]]] = {}
        self._scripts: dict[str, Any] = {}
        # Per local presence subscription (app, channel, socket id): the channel version its
        # subscription_succeeded snapshot holds, or, until that snapshot is sent, the member events held
        # back for it (version, frame, write).
        self._floors: dict[tuple[str, str, str], int] = {}
        self._held: dict[tuple[str, str, str], list[tuple[int, bytes, Callable[[bytes], Any]]]] = {}

    # --- keys ----------------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _channel_keys(self, app_id: str, channel: str) -> tuple[str, str, str]:
        base = self._k("app", app_id)
        return f"{base}:members:{channel}", f"{base}:users:{channel}", f"{base}:nodes:{channel}"

    def _version_key(self, app_id: str, channel: str) -> str:
        return self._k("app", app_id, "version", channel)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self, host: ClusterHost) -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError:
            raise ClusterError("--redis needs the Redis client: pip install 'quvel[redis]'") from None

        self._host = host
        self._redis = Redis.from_url(self.url, socket_connect_timeout=3, health_check_interval=5)
        try:
            await asyncio.wait_for(self._redis.ping(), 5)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._redis.aclose()
            self._redis = None
            raise ClusterError(f"cannot reach Redis at {self.url}: {exc or type(exc).__name__}") from None
        self._scripts = {
            name: self._redis.register_script(src)
            for name, src in (
                ("join", _JOIN),
                ("leave", _LEAVE),
                ("members", _MEMBERS),
                ("occupy", _OCCUPY),
                ("vacate", _VACATE),
            )
        }
        await self._register()
        self.bus = RedisBus(
            self._redis,
            f"{self.prefix}#bus",
            self.node_id,
            transport=self.transport,
            deliver=self._received,
            on_lost=self._lost,
            on_back=self._back,
            max_queued=self.max_queued,
        )
        await self.bus.open()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.bus.read_loop(), name="quvel-cluster-reader"),
            loop.create_task(self.bus.write_loop(), name="quvel-cluster-writer"),
            loop.create_task(self._run_ops(), name="quvel-cluster-ops"),
            loop.create_task(self._beat(), name="quvel-cluster-heartbeat"),
        ]
        logger.info("node %s joined the cluster on %s", self.node_id, self.url)

    async def stop(self) -> None:
        """Remove this node's members and channels (others get member_removed), flush, disconnect."""
        if self._redis is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain_ops(), 2)
            await asyncio.wait_for(self._reap(self.node_id), 2)
            if self.bus is not None:
                await asyncio.wait_for(self.bus.flush(), 2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self._redis.aclose()
        self._redis = None
        if self.bus is not None:
            await self.bus.close()

    @property
    def connected(self) -> bool:
        """Is the bus to the other nodes up (else this node delivers to its own sockets only)?"""
        return self.bus is not None and self.bus.connected

    @property
    def dropped(self) -> int:
        """Messages for other nodes lost to a full queue (or, with pub/sub, a failed write)."""
        return self.bus.dropped if self.bus is not None else 0

    async def _register(self) -> None:
        assert self._redis is not None
        ttl = int(self.node_ttl * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._k("node", self.node_id), b"1", px=ttl)
            pipe.sadd(self._k("nodes"), self.node_id)
            await pipe.execute()

    # --- the server's calls --------------------------------------------------------------------------

    def relay(
        self, app_id: str, channel: str, event: str, data: Any, *, exclude: str | None, user_id: Any
    ) -> None:
        self._send([self.node_id, "e", app_id, channel, event, data, exclude, user_id])

    def terminate_user(self, app_id: str, user_id: str) -> None:
        self._send([self.node_id, "t", app_id, user_id])

    def occupied(self, app_id: str, channel: str) -> None:
        self._op(lambda: self._occupancy(app_id, channel, occupy=True))

    def vacated(self, app_id: str, channel: str) -> None:
        self._op(lambda: self._occupancy(app_id, channel, occupy=False))

    def presence_join(self, app_id: str, channel: str, socket_id: str, member: PresenceMember) -> None:
        entry = (member.user_id, member.user_info)
        self._op(lambda: self._join(app_id, channel, socket_id, entry, announce=True))

    def presence_leave(self, app_id: str, channel: str, socket_id: str, key: str) -> None:
        self._floors.pop((app_id, channel, socket_id), None)
        self._held.pop((app_id, channel, socket_id), None)
        self._op(lambda: self._leave(self.node_id, app_id, channel, socket_id, key))

    def presence_payload(self, app_id: str, channel: str, socket_id: str) -> asyncio.Future[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        sub = (app_id, channel, socket_id)
        if sub not in self._floors:  # a first subscribe: member events wait for the snapshot
            self._held.setdefault(sub, [])

        async def snapshot() -> None:
            version = 0
            try:
                version, payload = await self._members(app_id, channel)
            except Exception as exc:
                future.set_exception(exc)  # the server then sends this node's members
            else:
                future.set_result(payload)
            # Scheduled after the future's callbacks, which send subscription_succeeded: held events
            # go out after it, and only those newer than the snapshot.
            loop.call_soon(self._release, sub, version)

        self._op(snapshot)
        return future

    async def gather(
        self, app_id: str, prefix: str | None, names: Sequence[str] | None
    ) -> dict[str, MergedChannel]:
        state = self._state(app_id)
        names = None if names is None else list(names)
        views = [local_view(state, prefix, names)] if state is not None else []
        if self._redis is None or not self.connected:
            return merge_views(views)
        from redis.exceptions import RedisError

        try:
            others = int(await self._redis.scard(self._k("nodes"))) - 1
        except RedisError:
            return merge_views(views)
        if others <= 0:
            return merge_views(views)
        rid = secrets.token_hex(8)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        replies: list[dict[str, ChannelView]] = []
        self._replies[rid] = (replies, others, done)
        self._send([self.node_id, "q", app_id, rid, prefix, names])
        try:
            await asyncio.wait_for(done, self.gather_timeout)
        except TimeoutError:
            logger.debug("gather %s: %d of %d nodes answered in time", rid, len(replies), others)
        finally:
            del self._replies[rid]
        return merge_views([*views, *replies])

    # --- messages between nodes --------------------------------------------------------------------

    def _send(self, message: list[Any]) -> None:
        if self.bus is not None:
            self.bus.send(message[1], *message[2:])

    def _lost(self, exc: BaseException) -> None:
        logger.warning(
            "lost Redis at %s (%s): delivering to this node's sockets only, reconnecting", self.url, exc
        )

    async def _back(self) -> None:
        await self._register()
        self._op(self._reconcile)
        logger.warning("reconnected to Redis at %s; node %s re-registered", self.url, self.node_id)

    def _received(self, msg: list[Any]) -> None:
        """One message from another node: ``[node, kind, ...]``."""
        try:
            kind = msg[1]
            if kind == "e":
                state = self._state(msg[2])
                if state is not None:
                    state.publish(msg[3], msg[4], msg[5], exclude=msg[6], user_id=msg[7])
            elif kind == "m":
                self._deliver_member(msg[2], msg[3], msg[4], msg[5], exclude=msg[6], version=msg[7])
            elif kind == "t":
                state = self._state(msg[2])
                if state is not None:
                    state.terminate_user(msg[3])
            elif kind == "q":
                state = self._state(msg[2])
                view = local_view(state, msg[4], msg[5]) if state is not None else {}
                self._send([self.node_id, "r", msg[0], msg[3], view])
            elif kind == "r" and msg[2] == self.node_id:
                pending = self._replies.get(msg[3])
                if pending is not None:
                    replies, expected, done = pending
                    replies.append(msg[4])
                    if len(replies) >= expected and not done.done():
                        done.set_result(None)
        except Exception:  # a bad message costs that message, never the reader
            logger.exception("ignoring a cluster message that could not be handled: %r", msg[:8])

    def _state(self, app_id: str) -> AppState | None:
        return self._host.app_state_by_id(app_id) if self._host is not None else None

    # --- presence and occupancy (ordered on one worker) ------------------------------------------------

    def _op(self, run: Callable[[], Awaitable[Any]], future: asyncio.Future[Any] | None = None) -> None:
        self._ops.append((run, future))
        self._wake_ops.set()

    async def _run_ops(self) -> None:
        while True:
            await self._wake_ops.wait()
            self._wake_ops.clear()
            while self._ops:
                run, future = self._ops.popleft()
                try:
                    result = await run()
                except Exception as exc:
                    logger.debug("cluster operation failed: %s", exc)
                    if future is not None and not future.done():
                        future.set_exception(exc)
                    continue
                if future is not None and not future.done():
                    future.set_result(result)

    async def _drain_ops(self) -> None:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._op(functools.partial(asyncio.sleep, 0), done)  # operations run in order: this one is last
        await done

    def _emit(
        self,
        app_id: str,
        channel: str,
        event: str,
        data: dict[str, Any],
        *,
        exclude: str | None,
        version: int,
    ) -> None:
        """Send a member event of channel ``version`` here and on every other node."""
        text = orjson.dumps(data).decode()
        self._deliver_member(app_id, channel, event, text, exclude=exclude, version=version)
        self._send([self.node_id, "m", app_id, channel, event, text, exclude, version])

    def _deliver_member(
        self, app_id: str, channel: str, event: str, text: str, *, exclude: str | None, version: int
    ) -> None:
        """A member event goes to each local subscriber whose snapshot does not already hold it (it
        may have been read after the change but before the event got here); subscribers still
        waiting for their snapshot get it after."""
        state = self._state(app_id)
        ch = state.channels.get(channel) if state is not None else None
        if ch is None:
            return
        frame = event_frame(event, text, channel)
        for sock, write in ch.subscribers.items():
            if sock.id == exclude:
                continue
            sub = (app_id, channel, sock.id)
            held = self._held.get(sub)
            if held is not None:
                held.append((version, frame, write))
            elif version > self._floors.get(sub, 0):
                write(frame)

    def _release(self, sub: tuple[str, str, str], version: int) -> None:
        held = self._held.pop(sub, None)
        if held is None:  # left meanwhile, or a repeated subscribe
            return
        self._floors[sub] = version
        for event_version, frame, write in held:
            if event_version > version:
                write(frame)

    def _webhook(self, app_id: str, event: dict[str, Any]) -> None:
        state = self._state(app_id)
        if state is not None and state.webhooks is not None:
            state.webhooks.enqueue(state.config, event)

    async def _occupancy(self, app_id: str, channel: str, *, occupy: bool, node: str | None = None) -> None:
        node = node or self.node_id
        if not self.connected:
            return  # reconciled after the reconnect
        nodes_key = self._channel_keys(app_id, channel)[2]
        script = self._scripts["occupy" if occupy else "vacate"]
        changed = await script(
            keys=[nodes_key, self._k("node", node, "channels")], args=[node, f"{app_id}{_SEP}{channel}"]
        )
        if changed == 1:
            name = "channel_occupied" if occupy else "channel_vacated"
            self._webhook(app_id, {"name": name, "channel": channel})

    async def _join(
        self, app_id: str, channel: str, socket_id: str, member: tuple[Any, Any], *, announce: bool
    ) -> None:
        user_id, info = member
        key = str(user_id)
        if not self.connected:
            return
        members, users, _ = self._channel_keys(app_id, channel)
        count, version = await self._scripts["join"](
            keys=[
                members,
                users,
                self._k("node", self.node_id, "members"),
                self._version_key(app_id, channel),
            ],
            args=[
                f"{self.node_id}{_SEP}{socket_id}",
                orjson.dumps([user_id, info]),
                key,
                _SEP.join((app_id, channel, socket_id)),
            ],
        )
        if count == 1 and announce:
            added = {"user_id": user_id, "user_info": info}
            self._emit(
                app_id, channel, "pusher_internal:member_added", added, exclude=socket_id, version=version
            )
            self._webhook(app_id, {"name": "member_added", "channel": channel, "user_id": key})

    async def _leave(self, node: str, app_id: str, channel: str, socket_id: str, key: str) -> None:
        if not self.connected:
            return
        members, users, _ = self._channel_keys(app_id, channel)
        left, member, version = await self._scripts["leave"](
            keys=[members, users, self._k("node", node, "members"), self._version_key(app_id, channel)],
            args=[f"{node}{_SEP}{socket_id}", key, _SEP.join((app_id, channel, socket_id))],
        )
        if left == 0:
            user_id = orjson.loads(member)[0]
            self._emit(
                app_id,
                channel,
                "pusher_internal:member_removed",
                {"user_id": user_id},
                exclude=None,
                version=version,
            )
            self._webhook(app_id, {"name": "member_removed", "channel": channel, "user_id": key})

    async def _members(self, app_id: str, channel: str) -> tuple[int, dict[str, Any]]:
        """The cluster's members of ``channel`` and the channel version they are at."""
        state = self._state(app_id)
        if not self.connected or self._redis is None:
            ch = state.channels.get(channel) if state is not None else None
            return 0, ch.presence_payload() if ch is not None else presence_payload(())
        version, values = await self._scripts["members"](
            keys=[self._channel_keys(app_id, channel)[0], self._version_key(app_id, channel)]
        )
        return int(version), presence_payload(tuple(orjson.loads(v)) for v in values)

    # --- liveness ------------------------------------------------------------------------------------

    async def _beat(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(self.heartbeat)
            if not self.connected or self._redis is None:
                continue
            try:
                await self._register()
                nodes = await self._redis.smembers(self._k("nodes"))
                for raw in nodes:
                    node = _text(raw)
                    if node == self.node_id or await self._redis.exists(self._k("node", node)):
                        continue
                    lock = self._k("reap", node)
                    claimed = await self._redis.set(lock, self.node_id, nx=True, px=int(self.node_ttl * 2000))
                    if claimed:
                        logger.warning("node %s stopped answering: removing its members and channels", node)
                        self._op(functools.partial(self._reap, node))
            except (RedisError, OSError) as exc:
                logger.debug("heartbeat failed: %s", exc)

    async def _reap(self, node: str) -> None:
        """Remove ``node``'s presence entries and channels, with the events and webhooks they cause."""
        assert self._redis is not None
        index = await self._redis.hgetall(self._k("node", node, "members"))
        for raw_field, raw_key in index.items():
            app_id, channel, socket_id = _text(raw_field).split(_SEP, 2)
            await self._leave(node, app_id, channel, socket_id, _text(raw_key))
        for raw in await self._redis.smembers(self._k("node", node, "channels")):
            app_id, channel = _text(raw).split(_SEP, 1)
            await self._occupancy(app_id, channel, occupy=False, node=node)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._k("node", node, "members"), self._k("node", node, "channels"))
            pipe.delete(self._k("node", node))
            pipe.srem(self._k("nodes"), node)
            await pipe.execute()
        if self.bus is not None and node != self.node_id:
            self.bus.forget(node)

    async def _reconcile(self) -> None:
        """After a reconnect: make Redis hold exactly this node's live members and channels. Entries
        that went away during the outage leave with their events; live ones are re-added silently
        (their clients already know them)."""
        assert self._redis is not None
        assert self._host is not None
        live_members: dict[str, tuple[str, str, str, tuple[Any, Any]]] = {}
        live_channels: set[str] = set()
        for app_id in self._host.app_ids():
            state = self._state(app_id)
            if state is None:
                continue
            for name, ch in state.channels.items():
                live_channels.add(f"{app_id}{_SEP}{name}")
                for sock in ch.subscribers:
                    key = sock.presence.get(name)
                    member = ch.members.get(key) if key is not None else None
                    if key is not None and member is not None:
                        field = _SEP.join((app_id, name, sock.id))
                        live_members[field] = (app_id, name, sock.id, (member.user_id, member.user_info))
        index = await self._redis.hgetall(self._k("node", self.node_id, "members"))
        for raw_field, raw_key in index.items():
            if _text(raw_field) not in live_members:
                app_id, channel, socket_id = _text(raw_field).split(_SEP, 2)
                await self._leave(self.node_id, app_id, channel, socket_id, _text(raw_key))
        for app_id, name, socket_id, entry in live_members.values():
            await self._join(app_id, name, socket_id, entry, announce=False)
        raw_known = await self._redis.smembers(self._k("node", self.node_id, "channels"))
        known = {_text(raw) for raw in raw_known}
        for gone in known - live_channels:
            app_id, channel = gone.split(_SEP, 1)
            await self._occupancy(app_id, channel, occupy=False)
        for live in live_channels - known:
            app_id, channel = live.split(_SEP, 1)
            await self._occupancy(app_id, channel, occupy=True)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
