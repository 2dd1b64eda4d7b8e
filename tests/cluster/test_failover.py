"""Faults under load: ``kill -9`` of the node a client is on, and a Redis restart, with notifications
flowing at 60/s into a real notification store (the demo's, through the container and its reloads)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from quvel.demo import DEMO_MASTER_KEY, PusherCredentials, demo_stack, wait_until
from quvel.demo.notifications import NotificationStore
from tests.cluster.conftest import Node, RedisServer, presence_auth
from tests.peers import APP_ID, APP_KEY, APP_SECRET
from tests.server.conftest import Raw, data_of, unique

pytestmark = pytest.mark.slow
RATE = 60  # notifications per second
INVOICE = "App\\Notifications\\InvoicePaid"


@pytest.fixture
def cluster(redis_server: RedisServer) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for _ in range(3):
            started.append(Node(redis_server.url))
        yield started
    finally:
        for node in started:
            node.stop()


def credentials(node: Node) -> PusherCredentials:
    return PusherCredentials(node.http_url, APP_ID, APP_KEY, APP_SECRET, DEMO_MASTER_KEY)


async def stream(backend: Any, seconds: float, during: Any) -> list[str]:
    """Notify user 1 at RATE/s for ``seconds``; ``during()`` runs (in a thread) a third of the way in."""
    sent: list[str] = []
    start = time.monotonic()
    fault: asyncio.Future[Any] | None = None
    i = 0
    while (elapsed := time.monotonic() - start) < seconds:
        if fault is None and elapsed > seconds / 3:
            fault = asyncio.ensure_future(asyncio.to_thread(during))
        record = await backend.notify(1, INVOICE, {"title": f"#{i}"})
        sent.append(record.id)
        i += 1
        await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
    assert fault is not None
    await fault
    return sent


async def test_kill_9_of_a_node_clients_fail_over_and_lose_nothing(cluster: list[Node]) -> None:
    victim, other, publisher = cluster[1], cluster[2], cluster[0]
    urls = ",".join(node.ws_url for node in (victim, other, publisher))  # the client starts on the victim
    channel = unique("presence-lobby-")
    watcher = await Raw.connect(publisher.ws_url)
    await watcher.subscribe(channel, **presence_auth(watcher.socket_id, channel, 10, {"name": "Watcher"}))
    doomed = await Raw.connect(victim.ws_url)
    await doomed.subscribe(channel, **presence_auth(doomed.socket_id, channel, 11, {"name": "Doomed"}))
    await watcher.expect("pusher_internal:member_added", channel=channel)

    async with demo_stack(ws_url=urls, credentials=credentials(publisher), seed=1) as stack:
        client = await stack.client("Ann")
        store = client.app.use(NotificationStore)
        await store.subscribe_to_socket(client.user.id)
        await wait_until(store, lambda s: s.loads >= 1)
        killed_at: list[float] = []

        def kill() -> None:
            victim.kill()
            killed_at.append(time.monotonic())

        sent = await stream(stack.backend, 4.0, kill)
        state = await wait_until(store, lambda s: len(s.notifications) >= len(sent), timeout=20)
        held = [n.id for n in state.notifications]
        assert len(held) == len(set(held)), "a notification is held twice"
        assert set(held) == set(sent), f"lost: {len(set(sent) - set(held))}"
        assert state.loads >= 2  # it reloaded after failing over
        assert client.ws.socket_id is not None

    # the dead node's member is gone from the others within 10 s of the kill
    removed = await watcher.expect("pusher_internal:member_removed", within=12, channel=channel)
    assert data_of(removed) == {"user_id": 11}
    assert time.monotonic() - killed_at[0] < 10
    await watcher.close()
    await doomed.close()


async def test_redis_restart_under_load_loses_nothing_duplicates_nothing(
    cluster: list[Node], redis_server: RedisServer
) -> None:
    """Redis (no persistence) is down for 2 s while notifications flow from node 0 to a client on node
    2: the stream bus resends what failed and resumes reading where it stopped, so every notification
    arrives once. (With ``--redis-transport pubsub`` this fails: what is sent while a node is
    disconnected is lost for it.)"""
    publisher, subscriber_node = cluster[0], cluster[2]
    async with demo_stack(ws_url=subscriber_node.ws_url, credentials=credentials(publisher), seed=2) as stack:
        client = await stack.client("Ann")
        store = client.app.use(NotificationStore)
        await store.subscribe_to_socket(client.user.id)
        await wait_until(store, lambda s: s.loads >= 1)
        sent = await stream(stack.backend, 6.0, lambda: redis_server.restart(down_for=2.0))
        after = await stack.backend.notify(1, INVOICE, {"title": "after the restart"})
        state = await wait_until(store, lambda s: after.id in {n.id for n in s.notifications}, timeout=15)
        await asyncio.sleep(0.3)  # room for a straggling duplicate
        held = [n.id for n in store.state.notifications]
        assert len(held) == len(set(held)), "a notification is held twice"
        assert state.loads == 1, "the client reconnected: this test is about the bus, not reloads"
        lost = set(sent) - set(held)
        assert not lost, f"{len(sent)} sent, {len(lost)} lost across the Redis restart"
