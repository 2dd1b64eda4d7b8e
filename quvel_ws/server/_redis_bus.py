"""The message bus between cluster nodes on Redis: what one node sends, every other node receives.

Two transports, chosen per cluster (every node of one cluster must use the same):

- ``"stream"`` (the default): one Redis Stream, ``XADD ... MAXLEN ~ max_stream``; each node reads
  with ``XREAD BLOCK`` from the last entry id it has seen, so after a disconnect it resumes where it
  left off instead of losing what was sent meanwhile. A batch whose write fails is sent again once
  Redis is back, and every message carries its sender's sequence number, so a receiver drops what
  it already has (a batch that half-reached Redis before the failure). Across a Redis restart
  nothing is lost as long as the sender's queue (``max_queued`` messages) holds the outage and a
  receiver is not more than ``max_stream`` entries behind.
- ``"pubsub"``: Redis pub/sub, at most once: what is published while a node is disconnected, and a
  batch whose write fails, are lost for the other nodes.

Messages are JSON lists ``[node id, sequence, kind, ...]``; a node never receives its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

Transport = Literal["stream", "pubsub"]


class RedisBus:
    """Sends this node's messages (queued, pipelined, bounded) and hands other nodes' to ``deliver``.

    ``on_lost`` runs when the read connection fails, ``on_back`` (awaited) once it is re-established,
    before reading resumes; it raising means "not back yet" and is retried with backoff.
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        node_id: str,
        *,
        transport: Transport,
        deliver: Callable[[list[Any]], None],
        on_lost: Callable[[BaseException], None],
        on_back: Callable[[], Awaitable[None]],
        max_queued: int = 10_000,
        max_stream: int = 100_000,
    ) -> None:
        if transport not in ("stream", "pubsub"):
            raise ValueError(f'the cluster bus transport must be "stream" or "pubsub", got {transport!r}')
        self.transport = transport
        self.max_queued = max_queued
        self.max_stream = max_stream
        self.dropped = 0  # messages lost to a full queue (both) or a failed write (pubsub)
        self.duplicates = 0  # stream: entries received twice (a resent batch) and dropped
        self.connected = False
        self._redis = redis
        self._key = key.encode()
        self._node = node_id
        self._deliver = deliver
        self._on_lost = on_lost
        self._on_back = on_back
        self._seq = 0
        self._out: deque[bytes] = deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._last_id: Any = b"0-0"
        self._seen: dict[str, int] = {}  # sender node -> highest sequence delivered
        self._pubsub: Any = None

    async def open(self) -> None:
        """Start listening (raises the Redis error if it cannot)."""
        if self.transport == "pubsub":
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(self._key)
        else:
            newest = await self._redis.xrevrange(self._key, count=1)
            self._last_id = newest[0][0] if newest else b"0-0"
        self.connected = True

    # --- sending ------------------------------------------------------------------------------------

    def send(self, kind: str, *fields: Any) -> None:
        self._seq += 1
        if len(self._out) >= self.max_queued:
            self._out.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("cluster queue full (Redis down?): %d relayed messages dropped", self.dropped)
        self._out.append(orjson.dumps([self._node, self._seq, kind, *fields]))
        self._wake.set()

    async def write_loop(self) -> None:
        from redis.exceptions import RedisError

        delay = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._out and self.connected:
                batch = list(self._out)
                self._out.clear()
                self._in_flight = len(batch)
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for message in batch:
                            if self.transport == "pubsub":
                                pipe.publish(self._key, message)
                            else:
                                pipe.xadd(
                                    self._key, {b"m": message}, maxlen=self.max_stream, approximate=True
                                )
                        await pipe.execute()
                    delay = 0.05
                except (RedisError, OSError) as exc:
                    logger.debug("relaying %d messages failed: %s", len(batch), exc)
                    if self.transport == "pubsub":  # at most once: part of it may have gone out
                        self.dropped += len(batch)
                    else:  # at least once, deduplicated by the receivers
                        self._out.extendleft(reversed(batch))
                        while len(self._out) > self.max_queued:
                            self._out.popleft()
                            self.dropped += 1
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 0.5)
                finally:
                    self._in_flight = 0

    async def flush(self) -> None:
        while (self._out or self._in_flight) and self.connected:
            self._wake.set()
            await asyncio.sleep(0.01)

    # --- receiving ----------------------------------------------------------------------------------

    async def read_loop(self) -> None:
        from redis.exceptions import RedisError

        while True:
            try:
                if self.transport == "pubsub":
                    await self._read_pubsub()
                else:
                    await self._read_stream()
            except (RedisError, OSError) as exc:
                self.connected = False
                self._on_lost(exc)
            await self._reopen()

    async def _read_pubsub(self) -> None:
        while True:
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is not None and msg.get("type") == "message":
                self._received(msg["data"])

    async def _read_stream(self) -> None:
        while True:
            answer: Any = await self._redis.xread({self._key: self._last_id}, count=1000, block=0)
            for _stream, entries in answer or ():
                for entry_id, values in entries:
                    self._last_id = entry_id
                    self._received(values[b"m"])

    async def _reopen(self) -> None:
        from redis.exceptions import RedisError

        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            try:
                if self.transport == "pubsub":
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()
                    self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await self._pubsub.subscribe(self._key)
                await self._on_back()
            except (RedisError, OSError):
                continue
            self.connected = True
            self._wake.set()
            return

    def _received(self, raw: bytes) -> None:
        try:
            msg = orjson.loads(raw)
            node, seq = msg[0], msg[1]
            if node == self._node:
                return  # our own message: already delivered here
            if seq <= self._seen.get(node, 0):
                self.duplicates += 1
                return
            self._seen[node] = seq
            self._deliver([node, *msg[2:]])
        except Exception:  # a bad message costs that message, never the reader
            logger.exception("ignoring a cluster message that could not be handled: %r", raw[:200])

    def forget(self, node: str) -> None:
        """``node`` is gone for good: stop tracking its sequence."""
        self._seen.pop(node, None)

    async def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self.connected = False
