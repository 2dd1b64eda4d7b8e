"""Issue 10: per-task transactions, savepoints and deterministic delivery (one test per numbered case)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import MutationKind, Store, TransactionConflictError, action, create_app, getter


class Chat(BaseModel):
    loading: bool = False
    error: str = ""
    messages: list[str] = []
    count: int = 0


class ChatStore(Store[Chat]):
    id = "chat"

    @getter
    def size(self) -> int:
        return len(self.state.messages)

    @action
    def receive(self, text: str) -> None:
        self.patch(lambda s: s.messages.append(text))

    @action
    async def load_failing(self, started: asyncio.Event, release: asyncio.Event) -> None:
        with self.batch():
            self.patch({"loading": True})
            started.set()
            await release.wait()
            raise RuntimeError("api down")

    @action
    async def load(self, started: asyncio.Event, release: asyncio.Event) -> None:
        with self.batch():
            self.patch({"loading": True})
            started.set()
            await release.wait()
            self.patch({"loading": False, "count": self.state.count + 1})

    @action(atomic=True)
    def inner(self, fail: bool) -> None:
        self.patch({"count": self.state.count + 10})
        if fail:
            raise ValueError("inner failed")

    @action(atomic=True)
    def outer(self) -> None:
        self.patch({"count": 1})
        with contextlib.suppress(ValueError):
            self.inner(True)
        self.inner(False)


# ---- case 1: a batch is per task ------------------------------------------------------------------------
async def test_a_failing_batch_does_not_roll_back_another_tasks_event() -> None:
    app = create_app()
    store = app.use(ChatStore)
    events: list[Any] = []
    store.subscribe(lambda e, s: events.append((e.kind, list(s.messages), s.loading)))
    started, release = asyncio.Event(), asyncio.Event()
    task = store.load_failing(started, release)
    await started.wait()
    assert store.state.loading is False  # other tasks do not see the open batch's writes
    store.receive("hello")  # a channel event arriving meanwhile commits at once
    assert events == [(MutationKind.PATCH_FUNCTION, ["hello"], False)]
    release.set()
    with pytest.raises(RuntimeError, match="api down"):
        await task
    assert store.state.messages == ["hello"]
    assert store.state.loading is False
    assert len(events) == 1


async def test_a_batch_commits_on_top_of_another_tasks_disjoint_write() -> None:
    store = create_app().use(ChatStore)
    events: list[Any] = []
    store.subscribe(lambda e, s: events.append(e))
    started, release = asyncio.Event(), asyncio.Event()
    task = store.load(started, release)
    await started.wait()
    store.receive("hello")
    release.set()
    await task
    assert store.state.messages == ["hello"]
    assert store.state.count == 1
    assert not store.state.loading
    assert [e.kind for e in events] == [MutationKind.PATCH_FUNCTION, MutationKind.BATCH]
    assert len(events[1].payload) == 2  # one event for the batch's two writes


async def test_a_batch_that_wrote_what_another_task_wrote_conflicts_and_keeps_the_other_write() -> None:
    store = create_app().use(ChatStore)
    started, release = asyncio.Event(), asyncio.Event()
    task = store.load(started, release)
    await started.wait()
    store.patch({"count": 41})  # the batch writes count too
    release.set()
    with pytest.raises(TransactionConflictError) as info:
        await task
    assert info.value.paths == (("count",),)
    assert info.value.store_id == "chat"
    assert "count" in str(info.value)
    assert store.state.count == 41
    assert store.state.loading is False


async def test_the_task_inside_a_batch_reads_its_own_writes_and_getters_others_do_not() -> None:
    store = create_app().use(ChatStore)
    assert store.size == 0
    seen_inside: list[int] = []
    seen_outside: list[int] = []
    inside, done = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        with store.batch():
            store.patch(lambda s: s.messages.append("mine"))
            seen_inside.append(store.size)
            inside.set()
            await done.wait()
            seen_inside.append(store.size)

    async def reader() -> None:
        await inside.wait()
        seen_outside.append(store.size)
        seen_outside.append(len(store.state.messages))
        done.set()

    await asyncio.gather(writer(), reader())
    assert seen_inside == [1, 1]
    assert seen_outside == [0, 0]
    assert store.size == 1


async def test_a_task_started_inside_a_batch_does_not_join_it() -> None:
    store = create_app().use(ChatStore)

    async def child() -> None:
        store.receive("from child")

    async def batch_then_fail() -> None:
        with store.batch():
            store.patch({"count": 5})
            await asyncio.create_task(child())  # inherits the context, not the batch
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await batch_then_fail()
    assert store.state.messages == ["from child"]
    assert store.state.count == 0


async def test_an_atomic_async_action_spans_its_awaits() -> None:
    class Loader(Store[Chat]):
        id = "loader"

        @action(atomic=True)
        async def load(self) -> None:
            self.patch({"loading": True})
            await asyncio.sleep(0)
            raise RuntimeError("failed")

    store = create_app().use(Loader)
    with pytest.raises(RuntimeError):
        await store.load()
    assert store.state.loading is False


# ---- case 2: savepoints -----------------------------------------------------------------------------------
def test_a_nested_batch_that_raises_rolls_back_only_its_own_writes() -> None:
    store = create_app().use(ChatStore)
    events: list[Any] = []
    store.subscribe(lambda e, s: events.append(e))
    with store.batch():
        store.patch({"count": 1})
        try:
            with store.batch():
                store.patch(lambda s: s.messages.append("inner"))
                raise ValueError("inner")
        except ValueError:
            pass
        store.patch({"error": "kept"})
    assert store.state.count == 1
    assert store.state.messages == []
    assert store.state.error == "kept"
    assert len(events) == 1
    assert events[0].kind is MutationKind.BATCH
    assert [kind for kind, _ in events[0].payload] == [MutationKind.PATCH_OBJECT, MutationKind.PATCH_OBJECT]
    assert events[0].changed == frozenset({("count",), ("error",)})


def test_a_nested_atomic_action_that_raises_rolls_back_only_its_own_writes() -> None:
    store = create_app().use(ChatStore)
    store.outer()
    assert store.state.count == 11


def test_an_outer_batch_failing_after_a_successful_inner_one_rolls_back_both() -> None:
    store = create_app().use(ChatStore)

    def nested_then_fail() -> None:
        with store.batch():
            with store.batch():
                store.patch({"count": 3})
            raise KeyError("outer")

    with pytest.raises(KeyError):
        nested_then_fail()
    assert store.state.count == 0


# ---- case 3: delivery order ------------------------------------------------------------------------------
def test_listeners_and_selections_are_notified_in_registration_order() -> None:
    store = create_app().use(ChatStore)
    log: list[str] = []
    for n in range(12):
        if n % 3 == 0:
            store.subscribe(lambda e, s, n=n: log.append(f"sub{n}"))
        elif n % 3 == 1:
            store.select(lambda s: s.count).subscribe(lambda v, n=n: log.append(f"sel{n}"))
        else:
            store.observe().subscribe(lambda s, n=n: log.append(f"obs{n}"))
    log.clear()
    store.patch({"count": 1})
    expected = [("sub", "sel", "obs")[n % 3] + str(n) for n in range(12)]
    assert log == expected
