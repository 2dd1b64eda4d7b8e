"""Model broadcasting names, checked against laravel-echo 2.5: an Echo client listening with
``useEchoModel``'s names (``.TaskCreated`` ...) on the same server and channel as a quvel ``TaskStore``
hears every event the demo back end broadcasts the way Laravel's ``BroadcastsEvents`` does, with the same
payloads, and both end with the back end's tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from quvel.demo import demo_stack, wait_until
from quvel.demo.tasks import TaskStore
from quvel_store import SyncStatus, model_event_names
from tests.interop.conftest import NodePeer, bearer

pytestmark = pytest.mark.peers

Peer = Callable[[], NodePeer]


async def test_laravel_echo_hears_the_same_model_events(node_peer: Peer) -> None:
    async with demo_stack(seed=11) as stack:
        assert stack.server is not None
        backend = stack.backend
        echo_names = list(model_event_names("Task").values())
        js = node_peer()
        await asyncio.to_thread(
            js.connect,
            stack.server.port,
            lib="echo",
            authEndpoint=backend.auth_endpoint,
            **bearer("token-ben"),
        )
        for name in echo_names:  # Echo's listen('.TaskCreated') etc., as useEchoModel registers them
            js.send("echo_listen", kind="private", channel="App.Models.Task", event=name)
        await asyncio.to_thread(js.expect, "subscribed", channel="App.Models.Task")

        ann = await stack.client("Ann")
        store = ann.app.use(TaskStore)
        heard: list[tuple[str, Any]] = []  # what quvel's channel hears, named the way Echo names it
        ann.ws.channel("App.Models.Task", type="private").listen_to_all().subscribe(
            lambda event: heard.append((event.name, event.data))
        )
        store.follow()
        await wait_until(store, lambda s: s.sync.status == SyncStatus.SYNCED)

        tasks = backend.tasks
        first = await tasks.create(1, "one")
        second = await tasks.create(2, "two")
        await tasks.update(first.id, done=True)
        await tasks.trash(second.id)
        await tasks.restore(second.id)
        await tasks.force_delete(first.id)
        expected = [
            ".TaskCreated",
            ".TaskCreated",
            ".TaskUpdated",
            ".TaskTrashed",
            ".TaskDeleted",
            ".TaskUpdated",
            ".TaskRestored",
            ".TaskDeleted",
        ]
        echo_heard = [
            await asyncio.to_thread(js.expect, "echo_event", channel="App.Models.Task") for _ in expected
        ]
        await wait_until(store, lambda s: [t.id for t in s.tasks] == [second.id])

        assert [e["event"] for e in echo_heard] == expected
        assert [name for name, _ in heard] == expected
        assert [e["data"] for e in echo_heard] == [data for _, data in heard]
        assert set(echo_heard[0]["data"]) == {"model", "connection", "queue"}  # Laravel's payload
        assert echo_heard[0]["data"]["model"]["title"] == "one"
        assert [t.title for t in store.state.tasks] == ["two"]
        assert not store.state.tasks[0].done
