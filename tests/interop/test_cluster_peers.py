"""Clusters with real peers: pusher-js / laravel-echo on different ``quvel serve --redis`` nodes, and the
quvel client against a two-node Soketi cluster on one Redis (``SOKETI_ADAPTER_DRIVER=redis``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from quvel_ws import WebSocketService
from quvel_ws.auth import AuthEndpoint
from tests.cluster.conftest import Node, RedisServer
from tests.interop.conftest import NodePeer, bearer
from tests.peers import SoketiServer
from tests.ws.conftest import sdk_for

pytestmark = pytest.mark.slow
Peer = Callable[[], NodePeer]


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_nodes(redis_server: RedisServer) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for _ in range(2):
            started.append(Node(redis_server.url))
        yield started
    finally:
        for node in started:
            node.stop()


def test_echo_clients_on_different_nodes_share_presence_whispers_and_events(
    two_nodes: list[Node], auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    ann, bob = node_peer(), node_peer()
    ann.connect(two_nodes[0].port, lib="echo", authEndpoint=auth_endpoint.url, **bearer("token-ann"))
    ann.send("echo_join", channel="cluster.1")
    assert ann.expect("here", channel="cluster.1")["users"] == [{"id": 1, "name": "Ann"}]
    bob.connect(two_nodes[1].port, lib="echo", authEndpoint=auth_endpoint.url, **bearer("token-bob"))
    bob.send("echo_join", channel="cluster.1")
    assert sorted(u["name"] for u in bob.expect("here", channel="cluster.1")["users"]) == ["Ann", "Bob"]
    assert ann.expect("joining", channel="cluster.1")["user"] == {"id": 2, "name": "Bob"}

    for peer in (ann, bob):
        peer.send("echo_listen_whisper", kind="join", channel="cluster.1", event="typing")
    bob.send("echo_whisper", kind="join", channel="cluster.1", event="typing", data={"name": "Bob"})
    assert ann.expect("whisper", channel="cluster.1")["data"] == {"name": "Bob"}

    js = node_peer()
    js.connect(two_nodes[1].port)
    js.send("subscribe", channel="cluster-news")
    js.expect("subscribed", channel="cluster-news")
    assert sdk_for(two_nodes[0]).trigger("cluster-news", "NewUpdate", {"x": 1}) == {"ok": True}
    assert js.expect("event", channel="cluster-news", event="NewUpdate")["data"] == {"x": 1}

    bob.send("disconnect")
    assert ann.expect("leaving", channel="cluster.1")["user"] == {"id": 2, "name": "Bob"}
    for peer in (bob, js):
        peer.drain()
    assert bob.seen("whisper") == []  # never echoed to the sender, on any node
    assert js.seen("event", channel="cluster-news") == []  # and no duplicate


async def test_quvel_client_fails_over_in_a_two_node_soketi_cluster(redis_server: RedisServer) -> None:
    env = {
        "SOKETI_ADAPTER_DRIVER": "redis",
        "SOKETI_DB_REDIS_HOST": "127.0.0.1",
        "SOKETI_DB_REDIS_PORT": str(redis_server.port),
    }
    first = SoketiServer(extra_env=env)
    second = SoketiServer(extra_env=env)
    await asyncio.to_thread(first.start)
    await asyncio.to_thread(second.start)
    ws = WebSocketService([first.ws_url, second.ws_url], backoff_initial=0.2)
    try:
        got: list[object] = []
        subscribed: list[object] = []
        channel = ws.channel("soketi-cluster")
        channel.listen(".Tick").subscribe(got.append)
        channel.subscribed.subscribe(subscribed.append)

        async def until(condition: Callable[[], bool], within: float = 15) -> None:
            async with asyncio.timeout(within):
                while not condition():  # noqa: ASYNC110 - polled: these change on the client's loop
                    await asyncio.sleep(0.05)

        await until(lambda: len(subscribed) == 1)
        first_socket = ws.socket_id
        await asyncio.to_thread(sdk_for(second).trigger, "soketi-cluster", "Tick", {"n": 1})  # other node
        await until(lambda: len(got) == 1)
        await asyncio.to_thread(first.stop, True)  # kill the node the client is on
        await until(lambda: len(subscribed) == 2)  # resubscribed, on the second node
        assert ws.socket_id not in (None, first_socket)
        await asyncio.to_thread(sdk_for(second).trigger, "soketi-cluster", "Tick", {"n": 2})
        await until(lambda: len(got) == 2)
        await asyncio.sleep(0.3)
        assert len(got) == 2
    finally:
        await ws.shutdown()
        first.stop(hard=True)
        second.stop(hard=True)
