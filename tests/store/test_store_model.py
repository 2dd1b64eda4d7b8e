"""Model-based test of store semantics (issue 10): random interleavings of patches, nested batches that
fail at random depths, several tasks holding batches open across awaits, subscribe / select /
unsubscribe, hydrate and dispose (a fresh store takes its place), checked after every step against a
plain model (a dict and the list of notifications expected, in order).

Each simulated task is a real asyncio task on one loop; a rule sends it one command and runs the loop
until the command is done, so a batch stays open across awaits exactly as in an async action.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import BaseModel

from quvel_store import Store, TransactionConflictError, create_app

FIELDS = ("a", "b", "c")
WORKERS = 3
EXAMPLES = int(os.environ.get("QUVEL_MODEL_EXAMPLES", "150"))


class Three(BaseModel):
    a: int = 0
    b: int = 0
    c: int = 0


class ThreeStore(Store[Three]):
    id = "three"


class Boom(Exception):
    pass


class _Close:
    def __init__(self, fail: bool, done: asyncio.Future[str]) -> None:
        self.fail = fail
        self.done = done


class _Task:
    """Model of one task: its stack of open batches (each: the working state and paths written before it
    opened, and the generation of the store it was opened on: a disposed store's batches are dead)."""

    def __init__(self) -> None:
        self.stack: list[tuple[dict[str, int], set[str], int]] = []
        self.work: dict[str, int] = {}
        self.written: set[str] = set()
        self.foreign: set[str] = set()


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.app = create_app()
        self.store = self.loop.run_until_complete(self._use())
        self.model: dict[str, int] = dict.fromkeys(FIELDS, 0)
        self.tasks = [_Task() for _ in range(WORKERS)]
        self.queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in range(WORKERS)]
        self.workers = [self.loop.create_task(self._worker(q)) for q in self.queues]
        self.seen: list[tuple[int, Any]] = []
        self.expected: list[tuple[int, Any]] = []
        # registered subscribers in order: (id, field or None for a plain listener, last value, disposable)
        self.subs: list[tuple[int, str | None, list[Any], Any]] = []
        self.next_id = 0
        self.generation = 0  # bumped by each dispose: the store in use is a fresh one
        self.disposed: list[tuple[ThreeStore, dict[str, int]]] = []  # and the state each ended with

    async def _use(self) -> ThreeStore:
        return self.app.use(ThreeStore)

    # ---- the tasks ----------------------------------------------------------------------------------
    async def _worker(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            await self._level(queue, depth=0)

    async def _level(self, queue: asyncio.Queue[Any], depth: int) -> _Close | None:
        """Run commands; an 'open' runs a nested level inside ``with store.batch()``."""
        while True:
            command, arg, done = await queue.get()
            if command == "patch":
                self.store.patch(arg)
                done.set_result("ok")
            elif command == "read":
                done.set_result(self.store.state.model_dump())
            elif command == "open":
                done.set_result("ok")
                close: _Close | None = None
                try:
                    with self.store.batch():
                        close = await self._level(queue, depth + 1)
                        assert close is not None
                        if close.fail:
                            raise Boom
                except Boom:
                    assert close is not None
                    close.done.set_result("rolled back")
                except TransactionConflictError:
                    assert close is not None
                    close.done.set_result("conflict")
                else:
                    assert close is not None
                    close.done.set_result("ok")
            elif command == "close":
                assert depth > 0
                return _Close(arg, done)

    def _send(self, worker: int, command: str, arg: Any = None) -> Any:
        done: asyncio.Future[Any] = self.loop.create_future()
        self.queues[worker].put_nowait((command, arg, done))
        return self.loop.run_until_complete(done)

    # ---- model helpers ------------------------------------------------------------------------------
    def _committed(self, changed: set[str] | None) -> None:
        """Expected notifications of one commit (``changed`` None: the whole state), in registration order."""
        for sub_id, field, last, _ in self.subs:
            if field is None:
                self.expected.append((sub_id, dict(self.model)))
            elif (changed is None or field in changed) and self.model[field] != last[0]:
                last[0] = self.model[field]
                self.expected.append((sub_id, last[0]))

    def _live(self, task: _Task) -> bool:
        """Whether ``task`` holds a batch open on the store in use (not on a disposed one)."""
        return any(gen == self.generation for _, _, gen in task.stack)

    def _foreign(self, writer: _Task | None, changed: set[str]) -> None:
        for task in self.tasks:
            if task is not writer and self._live(task):
                task.foreign |= changed

    # ---- rules --------------------------------------------------------------------------------------
    @rule(worker=st.integers(0, WORKERS - 1), field=st.sampled_from(FIELDS), value=st.integers(0, 3))
    def patch(self, worker: int, field: str, value: int) -> None:
        self._send(worker, "patch", {field: value})
        task = self.tasks[worker]
        if self._live(task):
            task.work[field] = value
            task.written.add(field)
            return
        self.model[field] = value
        self._foreign(task, {field})
        self._committed({field})

    @rule(worker=st.integers(0, WORKERS - 1))
    def open_batch(self, worker: int) -> None:
        task = self.tasks[worker]
        if not self._live(task):
            task.work = dict(self.model)
            task.written = set()
            task.foreign = set()
        task.stack.append((dict(task.work), set(task.written), self.generation))
        assert self._send(worker, "open") == "ok"

    @precondition(lambda self: any(t.stack for t in self.tasks))
    @rule(data=st.data(), fail=st.booleans())
    def close_batch(self, data: st.DataObject, fail: bool) -> None:
        worker = data.draw(st.sampled_from([i for i, t in enumerate(self.tasks) if t.stack]))
        task = self.tasks[worker]
        work, written, generation = task.stack.pop()
        outcome = self._send(worker, "close", fail)
        if fail:
            assert outcome == "rolled back"
            if generation == self.generation:
                task.work, task.written = work, written
            return
        if generation != self.generation or self._live(task):
            assert outcome == "ok"  # a disposed store's batch commits nothing; a nested one goes on
            return
        if task.written & task.foreign:
            assert outcome == "conflict", (task.written, task.foreign)
            return
        assert outcome == "ok"
        if task.written:
            for field in task.written:
                self.model[field] = task.work[field]
            self._foreign(task, set(task.written))
            self._committed(set(task.written))

    @rule(worker=st.integers(0, WORKERS - 1))
    def read_inside(self, worker: int) -> None:
        task = self.tasks[worker]
        assert self._send(worker, "read") == (task.work if self._live(task) else self.model)

    @rule()
    def subscribe(self) -> None:
        sub_id = self.next_id
        self.next_id += 1
        disposable = self.store.subscribe(lambda e, s: self.seen.append((sub_id, s.model_dump())))
        self.subs.append((sub_id, None, [None], disposable))

    @rule(field=st.sampled_from(FIELDS))
    def select(self, field: str) -> None:
        sub_id = self.next_id
        self.next_id += 1
        selection = self.store.select(lambda s: getattr(s, field))
        disposable = selection.subscribe(lambda v: self.seen.append((sub_id, v)))
        self.subs.append((sub_id, field, [self.model[field]], disposable))
        self.expected.append((sub_id, self.model[field]))

    @precondition(lambda self: self.subs)
    @rule(data=st.data())
    def unsubscribe(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.subs) - 1))
        _, _, _, disposable = self.subs.pop(index)
        disposable.dispose()

    @rule(values=st.fixed_dictionaries({f: st.integers(0, 3) for f in FIELDS}))
    def hydrate(self, values: dict[str, int]) -> None:
        self.app.hydrate({"three": values})
        self.model = dict(values)
        self._foreign(None, set(FIELDS))
        self._committed(None)

    @rule()
    def dispose(self) -> None:
        """Dispose the store at any moment (batches open, subscribers registered): its subscribers hear
        nothing more, its open batches commit nothing, and ``app.use`` builds a fresh store."""
        completed: list[bool] = []
        self.store.observe().subscribe(on_completed=lambda: completed.append(True))
        self.store.dispose()
        assert completed == [True]
        self.disposed.append((self.store, self.store.state.model_dump()))
        self.store = self.loop.run_until_complete(self._use())
        self.generation += 1
        self.subs.clear()
        self.model = dict.fromkeys(FIELDS, 0)

    # ---- checks -------------------------------------------------------------------------------------
    @invariant()
    def state_matches(self) -> None:
        assert self.store.state.model_dump() == self.model

    @invariant()
    def disposed_stores_stay_as_they_ended(self) -> None:
        for store, ended in self.disposed:
            assert store.state.model_dump() == ended

    @invariant()
    def notifications_match(self) -> None:
        assert self.seen == self.expected

    def teardown(self) -> None:
        for worker in self.workers:
            worker.cancel()
        self.loop.run_until_complete(asyncio.gather(*self.workers, return_exceptions=True))
        self.app.dispose()
        self.loop.close()


StoreMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None)
test_store_model = StoreMachine.TestCase
