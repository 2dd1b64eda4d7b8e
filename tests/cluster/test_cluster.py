"""Three ``quvel serve --redis`` nodes on one real Redis behave as one server.

Every client here is a bare protocol client (:class:`Raw`), so each test sees exactly the frames a node
sent: "exactly once" means one frame, checked after a ping barrier and a pause for stragglers.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pusher
import pytest

from tests.cluster.conftest import Node, RedisServer, SlowLink, presence_auth, private_auth
from tests.peers import APP_ID, APP_KEY, APP_SECRET, free_port
from tests.server.conftest import Raw, data_of, unique

SETTLE = 0.3  # time for a straggling duplicate to show up before a count is taken


class Webhooks:
    """A real HTTP endpoint recording every webhook event the nodes POST."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events.extend(json.loads(body)["events"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of(self, channel: str) -> list[tuple[str, str | None]]:
        return [(e["name"], e.get("user_id")) for e in list(self.events) if e.get("channel") == channel]


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()
    yield hooks
    hooks.httpd.shutdown()


@pytest.fixture(scope="module")
def nodes(redis_server: RedisServer, webhooks: Webhooks) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for _ in range(3):
            started.append(Node(redis_server.url, "--webhook", webhooks.url))
        yield started
    finally:
        for node in started:
            node.stop()


def sdk(node: Node) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=APP_ID, key=APP_KEY, secret=APP_SECRET, host=node.host, port=node.port, ssl=False
    )


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    opened: list[Raw] = []

    async def open_on(node: Node) -> Raw:
        raw = await Raw.connect(node.ws_url)
        opened.append(raw)
        return raw

    yield open_on
    for raw in opened:
        await raw.close()


async def events_named(raw: Raw, event: str, channel: str) -> list[dict[str, Any]]:
    """Every ``event`` on ``channel`` the node sent this client so far (after a settle pause)."""
    await asyncio.sleep(SETTLE)
    return [m for m in await raw.barrier() if m.get("event") == event and m.get("channel") == channel]


async def test_triggers_reach_every_node_once_with_socket_exclusion(nodes: list[Node], connect: Any) -> None:
    channel = unique("news-")
    clients = [await connect(node) for node in nodes] + [await connect(nodes[2])]
    for raw in clients:
        assert (await raw.subscribe(channel))["event"] == "pusher_internal:subscription_succeeded"
    excluded = clients[3]
    for i, node in enumerate(nodes):  # a trigger sent to any node
        sdk(node).trigger(channel, "Posted", {"n": i}, socket_id=excluded.socket_id)
    for raw in clients:
        got = await events_named(raw, "Posted", channel)
        numbers = sorted(data_of(m)["n"] for m in got)
        assert numbers == ([] if raw is excluded else [0, 1, 2]), (raw.socket_id, numbers)


async def test_presence_is_one_set_across_nodes(nodes: list[Node], connect: Any, webhooks: Webhooks) -> None:
    channel = unique("presence-room-")
    ann, bob, cat = [await connect(node) for node in nodes]
    for raw, uid, name in ((ann, 1, "Ann"), (bob, 2, "Bob")):
        ok = await raw.subscribe(channel, **presence_auth(raw.socket_id, channel, uid, {"name": name}))
        assert ok["event"] == "pusher_internal:subscription_succeeded"
    ok = await cat.subscribe(channel, **presence_auth(cat.socket_id, channel, 3, {"name": "Cat"}))
    here = data_of(ok)["presence"]
    assert sorted(here["ids"]) == [1, 2, 3]
    assert here["hash"] == {"1": {"name": "Ann"}, "2": {"name": "Bob"}, "3": {"name": "Cat"}}
    # joining: Ann saw Bob and Cat once, Bob saw Cat once, no one saw themselves
    assert [
        data_of(m)["user_id"] for m in await events_named(ann, "pusher_internal:member_added", channel)
    ] == [2, 3]
    assert [
        data_of(m)["user_id"] for m in await events_named(bob, "pusher_internal:member_added", channel)
    ] == [3]
    assert await events_named(cat, "pusher_internal:member_added", channel) == []

    # Ann opens a second tab on another node: not a new member anywhere
    ann2 = await connect(nodes[2])
    ok = await ann2.subscribe(channel, **presence_auth(ann2.socket_id, channel, 1, {"name": "Ann"}))
    assert data_of(ok)["presence"]["count"] == 3
    for raw in (bob, cat):
        assert await events_named(raw, "pusher_internal:member_added", channel) == []
    # channel and user info are the same from every node
    for node in nodes:
        info = sdk(node).channel_info(channel, ["user_count", "subscription_count"])
        assert info == {"occupied": True, "user_count": 3, "subscription_count": 4}, node.port
        users = sdk(node).users_info(channel)
        assert sorted(u["id"] for u in users["users"]) == ["1", "2", "3"]
        listed = sdk(node).channels_info(prefix_filter="presence-", attributes=["user_count"])
        assert listed["channels"][channel] == {"user_count": 3, "subscription_count": 4, "occupied": True}

    # Ann leaves on one node: still there through her other tab
    await ann.send("pusher:unsubscribe", {"channel": channel})
    for raw in (bob, cat):
        assert await events_named(raw, "pusher_internal:member_removed", channel) == []
    # her last tab leaves: member_removed once on every node
    await ann2.close()
    for raw in (bob, cat):
        got = await events_named(raw, "pusher_internal:member_removed", channel)
        assert [data_of(m)["user_id"] for m in got] == [1]
    await bob.close()
    await cat.close()
    deadline = time.monotonic() + 5
    expected = [
        ("channel_occupied", None),
        ("member_added", "1"),
        ("member_added", "2"),
        ("member_added", "3"),
        ("member_removed", "1"),
        ("member_removed", "2"),
        ("member_removed", "3"),
        ("channel_vacated", None),
    ]
    while time.monotonic() < deadline and len(webhooks.of(channel)) < len(expected):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(SETTLE)
    assert sorted(webhooks.of(channel), key=lambda e: (e[0], e[1] or "")) == sorted(
        expected, key=lambda e: (e[0], e[1] or "")
    )


async def test_a_member_in_the_joiners_list_is_not_announced_to_it_again(
    redis_server: RedisServer, connect: Any
) -> None:
    """Node B's pub/sub link is slow: Bob's ``member_added`` (published before Cat's join) reaches B
    after Cat's ``subscription_succeeded`` already listed Bob, and must not be sent to Cat. Bob is
    told about Cat exactly once. (Regression: Cat got ``member_added`` for Bob too.)"""
    link = SlowLink(redis_server.port, delay=0.6)
    node_a, node_b = Node(redis_server.url), Node(link.url)
    try:
        channel = unique("presence-slow-")
        bob, cat = await connect(node_a), await connect(node_b)
        ok = await bob.subscribe(channel, **presence_auth(bob.socket_id, channel, 2, {"name": "Bob"}))
        assert ok["event"] == "pusher_internal:subscription_succeeded"
        ok = await cat.subscribe(channel, **presence_auth(cat.socket_id, channel, 3, {"name": "Cat"}))
        assert sorted(data_of(ok)["presence"]["ids"]) == [2, 3]
        await asyncio.sleep(link.delay)  # Bob's member_added has now reached node B
        assert await events_named(cat, "pusher_internal:member_added", channel) == []
        got = await events_named(bob, "pusher_internal:member_added", channel)
        assert [data_of(m)["user_id"] for m in got] == [3]
        # later changes still reach Cat through the slow link, once
        await bob.send("pusher:unsubscribe", {"channel": channel})
        await asyncio.sleep(link.delay)
        got = await events_named(cat, "pusher_internal:member_removed", channel)
        assert [data_of(m)["user_id"] for m in got] == [2]
    finally:
        node_a.stop()
        node_b.stop()
        link.close()


async def test_client_events_are_relayed_across_nodes_not_echoed(nodes: list[Node], connect: Any) -> None:
    channel = unique("private-chat-")
    clients = [await connect(node) for node in nodes]
    for raw in clients:
        await raw.subscribe(channel, **private_auth(raw.socket_id, channel))
    await asyncio.sleep(SETTLE)  # occupancy reached Redis
    await clients[0].send("client-typing", {"who": "ann"}, channel=channel)
    assert await events_named(clients[0], "client-typing", channel) == []
    for raw in clients[1:]:
        got = await events_named(raw, "client-typing", channel)
        assert [data_of(m) for m in got] == [{"who": "ann"}]


async def test_terminating_a_user_closes_their_connections_on_every_node(
    nodes: list[Node], connect: Any
) -> None:
    user_data = json.dumps({"id": "77"})
    victims = [await connect(nodes[1]), await connect(nodes[2])]
    for raw in victims:
        auth = sdk(nodes[0]).authenticate_user(raw.socket_id, {"id": "77"})
        await raw.send("pusher:signin", {"auth": auth["auth"], "user_data": user_data})
        await raw.expect("pusher:signin_success")
    await asyncio.to_thread(sdk(nodes[0]).terminate_user_connections, "77")
    for raw in victims:
        assert await raw.closed(5) == 4009


def test_an_unreachable_redis_is_a_clear_error_at_start() -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--redis", f"redis://127.0.0.1:{port}/0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"quvel serve: cannot reach Redis at redis://127.0.0.1:{port}/0"), (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def _serve_first_line(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], Any]:
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return (json.loads(line) if line else {}), proc


@pytest.mark.parametrize("form", ["apps file", "environment"])
def test_the_redis_url_from_the_apps_file_or_the_environment(
    redis_server: RedisServer, tmp_path: Any, form: str
) -> None:
    import redis

    from tests.peers import stop_process_group

    apps: dict[str, Any] = {"apps": [{"id": "1", "key": "k", "secret": "s"}]}
    env = {}
    if form == "apps file":
        apps["redis"] = redis_server.url
    else:
        env["QUVEL_REDIS_URL"] = redis_server.url
    path = tmp_path / "apps.json"
    path.write_text(json.dumps(apps))
    info, proc = _serve_first_line("--apps-file", str(path), env=env)
    try:
        assert "node" in info, info
        client = redis.Redis.from_url(redis_server.url)
        assert info["node"].encode() in client.smembers("quvel:nodes")
        client.close()
    finally:
        stop_process_group(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_a_bad_redis_url_in_the_apps_file_is_a_clear_error(tmp_path: Any) -> None:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps({"apps": [{"id": "1", "key": "k", "secret": "s"}], "redis": "127.0.0.1:6379"}))
    result = subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--apps-file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert '"redis" must be a redis://, rediss:// or unix:// URL' in result.stderr, result.stderr
