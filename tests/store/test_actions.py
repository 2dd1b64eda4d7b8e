"""Actions: hooks (after / on_error), the action stream, async tasks and concurrency policies."""

from __future__ import annotations

import asyncio

import pytest

from quvel_store import (
    ActionCall,
    ActionError,
    ActionEvent,
    ActionPhase,
    App,
    MutationEvent,
    Store,
    action,
)
from tests.store.models import CounterState, ItemsStore


def record_hooks(store: Store[object]) -> list[tuple[str, str, object]]:  # type: ignore[type-var]
    log: list[tuple[str, str, object]] = []

    def hook(call: ActionCall) -> None:
        log.append(("before", call.name, call.args))
        call.after(lambda result: log.append(("after", call.name, result)))
        call.on_error(lambda error: log.append(("error", call.name, type(error).__name__)))

    store.on_action(hook)
    return log


def test_sync_action_hooks_see_args_and_result(app: App) -> None:
    store = app.use(ItemsStore)
    log = record_hooks(store)  # type: ignore[arg-type]
    stream: list[ActionEvent] = []
    app.actions.subscribe(stream.append)
    assert store.add("a") == 1
    assert log == [("before", "add", ("a",)), ("after", "add", 1)]
    assert [(e.phase, e.name, e.result) for e in stream] == [
        (ActionPhase.START, "add", None),
        (ActionPhase.SUCCESS, "add", 1),
    ]
    assert stream[0].call_id == stream[1].call_id


def test_action_that_raises_is_seen_by_hooks_and_its_patch_rolled_back(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("keep")
    log = record_hooks(store)  # type: ignore[arg-type]
    stream: list[ActionEvent] = []
    app.actions.subscribe(stream.append)
    mutations: list[MutationEvent] = []
    store.subscribe(lambda e, s: mutations.append(e))
    with pytest.raises(RuntimeError, match="boom"):
        store.add_then_fail("lost")
    assert [i.title for i in store.state.items] == ["keep"]
    assert store.state.count == 0
    assert log == [("before", "add_then_fail", ("lost",)), ("error", "add_then_fail", "RuntimeError")]
    assert stream[-1].phase is ActionPhase.ERROR
    assert isinstance(stream[-1].error, RuntimeError)
    assert mutations == []


def test_a_raising_hook_does_not_break_the_action(app: App) -> None:
    store = app.use(ItemsStore)
    errors: list[BaseException] = []
    store.errors.subscribe(lambda e: errors.append(e.error))

    def bad_hook(call: ActionCall) -> None:
        raise LookupError("hook bug")

    store.on_action(bad_hook)
    assert store.add("a") == 1
    assert [type(e) for e in errors] == [LookupError]


def test_actions_calling_actions_go_through_hooks(app: App) -> None:
    class Outer(Store[CounterState]):
        id = "outer"

        @action
        def twice(self) -> None:
            self.once()
            self.once()

        @action
        def once(self) -> None:
            self.patch({"n": self.state.n + 1})

    store = app.use(Outer)
    names: list[str] = []
    store.on_action(lambda call: names.append(call.name))
    store.twice()
    assert names == ["twice", "once", "once"]
    assert store.state.n == 2


def test_atomic_action_commits_once_or_not_at_all(app: App) -> None:
    class Atomic(Store[CounterState]):
        id = "atomic"

        @action(atomic=True)
        def bump_twice(self, fail: bool) -> None:
            self.patch({"n": self.state.n + 1})
            self.patch({"n": self.state.n + 1})
            if fail:
                raise ValueError("undo both")

    store = app.use(Atomic)
    events: list[MutationEvent] = []
    store.subscribe(lambda e, s: events.append(e))
    store.bump_twice(False)
    with pytest.raises(ValueError):
        store.bump_twice(True)
    assert store.state.n == 2
    assert len(events) == 1
    assert events[0].action == "bump_twice"


def test_action_decorator_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        action(concurrency="parallel")  # type: ignore[arg-type]
    with pytest.raises(ValueError):

        @action(concurrency="switch")
        def sync_with_policy(self: object) -> None: ...


# ---- async actions ----------------------------------------------------------------------------------------


class Loader(Store[CounterState]):
    id = "loader"
    gate: asyncio.Event
    started: list[int]

    def on_init(self) -> None:
        self.gate = asyncio.Event()
        self.started = []

    async def _work(self, value: int) -> int:
        self.started.append(value)
        await self.gate.wait()
        self.patch({"n": value})
        return value

    @action
    async def merge(self, value: int) -> int:
        return await self._work(value)

    @action(concurrency="switch")
    async def switch(self, value: int) -> int:
        return await self._work(value)

    @action(concurrency="concat")
    async def concat(self, value: int) -> int:
        return await self._work(value)

    @action(concurrency="exhaust")
    async def exhaust(self, value: int) -> int:
        return await self._work(value)

    @action
    async def fail(self) -> None:
        await asyncio.sleep(0)
        self.patch({"n": 99})
        raise KeyError("async failure")


async def test_async_action_runs_as_a_task_and_hooks_see_the_result(app: App) -> None:
    store = app.use(Loader)
    log = record_hooks(store)  # type: ignore[arg-type]
    mutations: list[MutationEvent] = []
    store.subscribe(lambda e, s: mutations.append(e))
    task = store.merge(5)
    assert isinstance(task, asyncio.Task)
    assert log == [("before", "merge", (5,))]  # started, not finished
    store.gate.set()
    assert await asyncio.wait_for(task, 5) == 5
    assert log[-1] == ("after", "merge", 5)
    assert mutations[0].action == "merge"
    assert mutations[0].action_id is not None


async def test_async_action_errors_reach_the_caller_hooks_and_stream(app: App) -> None:
    store = app.use(Loader)
    log = record_hooks(store)  # type: ignore[arg-type]
    stream: list[ActionEvent] = []
    app.actions.subscribe(stream.append)
    with pytest.raises(KeyError):
        await asyncio.wait_for(store.fail(), 5)
    assert log[-1] == ("error", "fail", "KeyError")
    assert stream[-1].phase is ActionPhase.ERROR
    assert store.state.n == 99  # an async action's earlier commits stand (use a patch/batch for atomicity)


async def test_merge_runs_calls_side_by_side(app: App) -> None:
    store = app.use(Loader)
    tasks = [store.merge(1), store.merge(2)]
    await asyncio.sleep(0)
    assert store.started == [1, 2]
    store.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == [1, 2]


async def test_switch_cancels_the_earlier_call(app: App) -> None:
    store = app.use(Loader)
    log = record_hooks(store)  # type: ignore[arg-type]
    first = store.switch(1)
    await asyncio.sleep(0)
    second = store.switch(2)
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(first, 5)
    assert await asyncio.wait_for(second, 5) == 2
    assert store.state.n == 2
    assert ("error", "switch", "CancelledError") in log


async def test_concat_queues_calls_in_order(app: App) -> None:
    store = app.use(Loader)
    order: list[int] = []
    store.subscribe(lambda e, s: order.append(s.n))
    tasks = [store.concat(v) for v in (1, 2, 3)]
    await asyncio.sleep(0)
    assert store.started == [1]
    store.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == [1, 2, 3]
    assert order == [1, 2, 3]
    assert store.started == [1, 2, 3]


async def test_exhaust_ignores_calls_while_one_runs(app: App) -> None:
    store = app.use(Loader)
    first = store.exhaust(1)
    again = store.exhaust(2)
    assert again is first
    store.gate.set()
    assert await asyncio.wait_for(first, 5) == 1
    assert store.started == [1]
    store.gate.clear()
    later = store.exhaust(3)
    assert later is not first
    store.gate.set()
    assert await asyncio.wait_for(later, 5) == 3


def test_async_action_without_a_loop_says_what_to_do(app: App) -> None:
    store = app.use(Loader)
    with pytest.raises(ActionError, match="running event loop"):
        store.merge(1)


async def test_dispose_cancels_running_actions(app: App) -> None:
    store = app.use(Loader)
    task = store.merge(1)
    await asyncio.sleep(0)
    store.dispose()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
