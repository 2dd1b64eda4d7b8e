"""History against per-task transactions (issue 17 with issue 10): nested batches and savepoints are one
step, a commit another task made while a batch was open survives undo, and undo is refused while another
task holds a batch open on the store."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from quvel_store import Store, action, create_app
from quvel_store.history import History, HistoryError


class Pair(BaseModel):
    a: int = 0
    b: int = 0
    log: list[str] = []


class PairStore(Store[Pair]):
    id = "pair"

    @action(atomic=True)
    async def slow_a(self, value: int, gate: asyncio.Event) -> None:
        self.patch({"a": value})
        await gate.wait()
        self.patch(lambda s: s.log.append(f"a={value}"))


class Boom(Exception):
    pass


def failing_savepoint(store: PairStore) -> None:
    with store.batch():  # nested: a savepoint, its writes are dropped
        store.patch({"b": 99})
        raise Boom


def test_nested_batches_and_a_failed_savepoint_are_one_undo_step() -> None:
    app = create_app(plugins=[History()])
    store = app.use(PairStore)
    store.patch({"a": 1})
    with store.batch():
        store.patch({"a": 2})
        with pytest.raises(Boom):
            failing_savepoint(store)
        with store.batch():
            store.patch({"b": 3})
    assert store.state == Pair(a=2, b=3)
    assert [c.kind for c in store.history] == ["patch_object", "batch"]  # type: ignore[attr-defined]
    assert store.undo()  # type: ignore[attr-defined]
    assert store.state == Pair(a=1)
    assert store.redo()  # type: ignore[attr-defined]
    assert store.state == Pair(a=2, b=3)
    store.jump_to(-1)  # type: ignore[attr-defined]
    assert store.state == Pair()
    store.jump_to(1)  # type: ignore[attr-defined]
    assert store.state == Pair(a=2, b=3)


async def test_undo_while_another_task_holds_a_batch_is_refused_and_the_batch_commits() -> None:
    app = create_app(plugins=[History()])
    store = app.use(PairStore)
    store.patch({"b": 1})
    gate = asyncio.Event()
    task = store.slow_a(5, gate)
    await asyncio.sleep(0)  # the action's batch is open, waiting at the gate
    assert store.state == Pair(b=1)  # its write is not visible here
    with pytest.raises(HistoryError, match="another task holds a batch"):
        store.undo()  # type: ignore[attr-defined]
    with pytest.raises(HistoryError, match="another task holds a batch"):
        app.undo()
    with pytest.raises(HistoryError, match="another task holds a batch"):
        store.jump_to(-1)  # type: ignore[attr-defined]
    assert store.state == Pair(b=1)  # refused: nothing changed
    gate.set()
    await task  # and the batch commits (an undo would have made it raise TransactionConflictError)
    assert store.state == Pair(a=5, b=1, log=["a=5"])
    assert app.undo()  # now it may: the action's commit goes as one step
    assert store.state == Pair(b=1)
    assert app.undo()
    assert store.state == Pair()


async def test_a_commit_another_task_made_during_a_batch_survives_undoing_the_batch() -> None:
    app = create_app(plugins=[History()])
    store = app.use(PairStore)
    gate = asyncio.Event()
    task = store.slow_a(7, gate)
    await asyncio.sleep(0)
    store.patch({"b": 2})  # another task, a disjoint path: commits at once
    gate.set()
    await task  # the batch commits on top of it
    assert store.state == Pair(a=7, b=2, log=["a=7"])
    assert [c.kind for c in store.history] == ["patch_object", "batch"]  # type: ignore[attr-defined]
    assert store.undo()  # type: ignore[attr-defined]
    assert store.state == Pair(b=2)
    assert store.history[0].undoable  # type: ignore[attr-defined]
    assert store.undo()  # type: ignore[attr-defined]
    assert store.state == Pair()
    assert store.redo()  # type: ignore[attr-defined]
    assert store.redo()  # type: ignore[attr-defined]
    assert store.state == Pair(a=7, b=2, log=["a=7"])
