"""The model-broadcasting recipe (``quvel.demo.tasks.TaskStore``) against the embedded server and the
demo back end's ``Task`` model: live model events, the reload after a restart with the API failing,
deletions made while away, and each task held once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from quvel.demo import DemoStack, demo_stack, wait_until
from quvel.demo.tasks import Task, TaskStore
from quvel_store import ResyncFailed, SyncStatus


@pytest.fixture
async def stack() -> AsyncIterator[DemoStack]:
    async with demo_stack(seed=5) as running:
        yield running


async def board(stack: DemoStack, user: str = "Ann") -> TaskStore:
    client = await stack.client(user)
    store = client.app.use(TaskStore)
    store.follow()
    await wait_until(store, lambda s: s.sync.status == SyncStatus.SYNCED)
    return store


def titles(store: TaskStore) -> dict[int, str]:
    return {t.id: t.title for t in store.state.tasks}


async def test_initial_load_then_every_model_event(stack: DemoStack) -> None:
    tasks = stack.backend.tasks
    first = await tasks.create(1, "existing")
    store = await board(stack)
    assert titles(store) == {first.id: "existing"}
    assert isinstance(store.state.tasks[0], Task)

    second = await tasks.create(2, "created live")
    await wait_until(store, lambda s: len(s.tasks) == 2)
    await tasks.update(second.id, done=True, title="done live")
    await wait_until(store, lambda s: s.tasks[1].done)
    assert store.open_count == 1
    await tasks.trash(first.id)  # TaskTrashed, then TaskDeleted
    await wait_until(store, lambda s: [t.id for t in s.tasks] == [second.id])
    await tasks.restore(first.id)  # TaskUpdated, then TaskRestored
    await wait_until(store, lambda s: [t.id for t in s.tasks] == [first.id, second.id])
    await tasks.force_delete(second.id)
    state = await wait_until(store, lambda s: [t.id for t in s.tasks] == [first.id])
    assert state.tasks[0].deleted_at is None
    assert store.sync_status is SyncStatus.SYNCED


async def test_actions_go_through_the_api_and_the_broadcast_changes_nothing_more(stack: DemoStack) -> None:
    store = await board(stack)
    other = await board(stack, "Ben")
    task = await store.add("write the recipe")
    assert titles(store) == {task.id: "write the recipe"}
    await wait_until(other, lambda s: len(s.tasks) == 1)  # Ben sees it through the broadcast
    await store.toggle(task.id)
    await wait_until(other, lambda s: s.tasks[0].done)
    await asyncio.sleep(0.2)  # the broadcasts of Ann's own changes arrive too: still one copy
    assert len(store.state.tasks) == 1
    await other.trash(task.id)
    await wait_until(store, lambda s: s.tasks == [])


async def test_caught_up_after_a_restart_while_the_api_answers_503(stack: DemoStack) -> None:
    server = stack.server
    assert server is not None
    tasks = stack.backend.tasks
    kept, gone = await tasks.create(1, "kept"), await tasks.create(1, "deleted while away")
    store = await board(stack)
    statuses: list[SyncStatus] = []
    store.board.statuses.subscribe(statuses.append)
    errors: list[BaseException] = []
    store.errors.subscribe(lambda event: errors.append(event.error))

    await server.stop()
    await wait_until(store, lambda s: s.sync.status == SyncStatus.STALE)  # the connection dropped
    added = await tasks.create(2, "added while away")  # not broadcast: the server is down
    await tasks.update(kept.id, title="renamed while away")
    await tasks.force_delete(gone.id)
    stack.backend.api_unavailable(1.5)  # the app is back later than the WebSocket server
    await server.start()

    state = await wait_until(
        store, lambda s: s.sync.status == SyncStatus.SYNCED and s.sync.loads >= 2, timeout=20
    )
    assert titles(store) == {kept.id: "renamed while away", added.id: "added while away"}
    assert [t.id for t in state.tasks] == sorted({t.id for t in state.tasks})  # ordered, each once
    assert errors
    assert all(isinstance(e, ResyncFailed) for e in errors)
    assert statuses[-1] is SyncStatus.SYNCED
    assert SyncStatus.RESYNCING in statuses
    assert SyncStatus.STALE in statuses


async def test_unfollow_leaves_the_channel(stack: DemoStack) -> None:
    server = stack.server
    assert server is not None
    store = await board(stack)
    assert "private-App.Models.Task" in server.channels()
    store.unfollow()
    for _ in range(100):
        if "private-App.Models.Task" not in server.channels():
            break
        await asyncio.sleep(0.02)
    assert "private-App.Models.Task" not in server.channels()
