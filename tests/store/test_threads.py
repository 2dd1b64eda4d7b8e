"""The loop-ownership rule (docs/threads.md) in every documented order: a GUI-style main thread with the
app's loop running in a worker, an app created before its loop, and worker threads trying each entry point."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from reactivex.subject import Subject

from quvel_store import App, LoopBindingError, Store, StoreDisposedError, action, create_app, getter
from tests.store.models import CounterState

T = TypeVar("T")


class Count(Store[CounterState]):
    id = "count"

    @action
    def incr(self) -> int:
        self.patch({"n": self.state.n + 1})
        return self.state.n

    @getter
    def double(self) -> int:
        return self.state.n * 2

    @getter
    def slow_double(self) -> int:
        time.sleep(0.05)  # long enough for another thread to try something meanwhile
        return self.state.n * 2


class Other(BaseModel):
    label: str = ""


class OtherStore(Store[Other]):
    id = "other"


class LoopThread:
    """An event loop running in a worker thread (the GUI layout: the main thread is the GUI's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="loop-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the loop thread and wait for it (test plumbing, independent of the app)."""
        return asyncio.run_coroutine_threadsafe(_call(fn), self.loop).result(10)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.loop.close()


async def _call(fn: Callable[[], T]) -> T:
    return fn()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    worker = LoopThread()
    yield worker
    worker.stop()


def test_bind_loop_from_the_gui_thread_then_run_the_loop_in_a_worker(loop_thread: LoopThread) -> None:
    app = create_app()
    store = app.use(Count)  # set up on the GUI thread before the loop runs: allowed, nothing runs yet
    app.bind_loop(loop_thread.loop)  # the natural order: bind, then start the loop elsewhere
    early = app.call_threadsafe(store.incr)  # queued before the loop starts; runs when it does
    loop_thread.start()
    assert early.result(10) == 1
    assert app.call_threadsafe(store.incr).result(10) == 2
    # the app belongs to the loop, not to the GUI thread that bound it: its direct writes are refused
    with pytest.raises(LoopBindingError, match="call_threadsafe"):
        store.incr()
    with pytest.raises(LoopBindingError, match="call_threadsafe"):
        store.patch({"n": 99})
    # events pushed from the GUI thread into a connected stream are moved onto the loop and folded in
    source: Subject[int] = Subject()
    errors: list[Any] = []
    loop_thread.run(lambda: store.errors.subscribe(errors.append))
    loop_thread.run(lambda: store.connect(source, lambda _item: store.incr()))
    for i in range(5):
        source.on_next(i)
    assert loop_thread.run(lambda: store.state.n) == 7
    assert errors == []
    loop_thread.run(app.dispose)


def test_an_app_created_before_its_loop_binds_on_first_use_inside_it(loop_thread: LoopThread) -> None:
    app = create_app()
    store = app.use(Count)  # built at start-up, no loop anywhere yet
    assert app.loop is None
    loop_thread.start()
    loop_thread.run(store.incr)  # first use inside the running loop binds the app to it
    assert app.loop is loop_thread.loop
    refused = 0
    stop = threading.Event()

    def loop_side() -> None:  # the loop increments in small steps, yielding between them
        async def run() -> None:
            for _ in range(2_000):
                store.incr()
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(run(), loop_thread.loop).result(60)
        stop.set()

    other = threading.Thread(target=loop_side)
    other.start()
    while not stop.is_set():  # the main thread hammers the store directly: every write is refused
        try:
            store.incr()
        except LoopBindingError:
            refused += 1
    other.join(60)
    assert refused > 0
    assert loop_thread.run(lambda: store.state.n) == 2_001  # nothing lost, nothing half-applied
    loop_thread.run(app.dispose)


def test_every_state_entry_point_is_refused_from_a_worker_while_the_loop_runs() -> None:
    async def main() -> None:
        app = create_app()
        store = app.use(Count)
        other = app.use(OtherStore)
        store.incr()
        attempts: dict[str, Callable[[], object]] = {
            "action": store.incr,
            "patch": lambda: store.patch({"n": 5}),
            "replace": lambda: store.replace({"n": 5}),
            "reset": store.reset,
            "batch": lambda: store.batch().__enter__(),
            "hydrate": lambda: app.hydrate({"count": {"n": 50}}),
            "getter": lambda: store.double,
            "snapshot": app.snapshot,
            "use": lambda: app.use(OtherStore, "k"),
            "store dispose": other.dispose,
            "app dispose": app.dispose,
        }
        outcomes: dict[str, str] = {}

        def worker() -> None:
            for name, attempt in attempts.items():
                try:
                    attempt()
                    outcomes[name] = "ran"
                except LoopBindingError as exc:
                    outcomes[name] = "refused" if "call_threadsafe" in str(exc) else f"wrong message: {exc}"

        await asyncio.to_thread(worker)
        assert outcomes == dict.fromkeys(attempts, "refused")
        # the loop's state is untouched, and snapshots stay readable from any thread (they are immutable)
        assert store.state.n == 1
        assert not other.disposed
        assert not app.disposed
        snapshot = await asyncio.to_thread(lambda: store.state)
        assert snapshot.n == 1
        app.dispose()

    asyncio.run(main())


def test_a_worker_batch_cannot_swallow_or_roll_back_the_loops_commits() -> None:
    async def main() -> None:
        app = create_app()
        store = app.use(Count)
        entered = threading.Event()
        release = threading.Event()
        outcome: list[str] = []

        def worker() -> None:
            try:
                with store.batch():
                    entered.set()
                    release.wait(5)
                    raise RuntimeError("rolled back")
            except LoopBindingError:
                outcome.append("refused")
                entered.set()
            except RuntimeError:
                outcome.append("batch ran")

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.to_thread(entered.wait, 5)
        for _ in range(3):
            store.incr()
        release.set()
        await asyncio.to_thread(thread.join, 5)
        assert outcome == ["refused"]
        assert store.state.n == 3
        app.dispose()

    asyncio.run(main())


def test_a_slow_getter_read_from_a_worker_does_not_break_loop_writes() -> None:
    async def main() -> None:
        app = create_app()
        store = app.use(Count)
        store.incr()
        result: list[object] = []

        def worker() -> None:
            try:
                result.append(store.slow_double)
            except LoopBindingError as exc:
                result.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        for _ in range(20):  # while the worker tries its read, the loop writes and reads getters
            store.incr()
            assert store.double == store.state.n * 2
            await asyncio.sleep(0.005)
        await asyncio.to_thread(thread.join, 5)
        assert len(result) == 1
        assert isinstance(result[0], LoopBindingError)
        assert store.state.n == 21
        app.dispose()

    asyncio.run(main())


def test_select_subscribed_from_a_worker_delivers_every_value_on_the_loop_thread(
    loop_thread: LoopThread,
) -> None:
    app = create_app()
    app.bind_loop(loop_thread.loop)
    loop_thread.start()
    store = loop_thread.run(lambda: app.use(Count))
    seen: list[tuple[int, str]] = []
    got_three = threading.Event()

    def on_value(value: int) -> None:
        seen.append((value, threading.current_thread().name))
        if value == 3:
            got_three.set()

    subscription = store.select(lambda s: s.n).subscribe(on_value)  # from the main (GUI) thread
    observed: list[str] = []
    observing = store.observe().subscribe(lambda _s: observed.append(threading.current_thread().name))
    for _ in range(3):
        app.call_threadsafe(store.incr).result(10)
    assert got_three.wait(10)
    assert [v for v, _ in seen] == [0, 1, 2, 3]  # the replayed first value included
    assert {name for _, name in seen} == {"loop-worker"}
    assert set(observed) == {"loop-worker"}
    assert len(observed) == 4
    subscription.dispose()  # from the GUI thread too
    observing.dispose()
    loop_thread.run(app.dispose)


def test_call_threadsafe_raises_where_it_would_hang(loop_thread: LoopThread) -> None:
    app = create_app()
    store = app.use(Count)
    app.bind_loop(loop_thread.loop)
    loop_thread.start()
    assert app.call_threadsafe(store.incr).result(10) == 1

    def block_on_own_loop() -> str:
        future = app.call_threadsafe(store.incr)
        try:
            future.result(5)
        except LoopBindingError as exc:
            return str(exc)
        return "did not raise"

    message = loop_thread.run(block_on_own_loop)
    assert "deadlock" in message
    loop_thread.loop.call_soon_threadsafe(loop_thread.loop.stop)
    loop_thread.thread.join(10)
    started = time.monotonic()
    with pytest.raises(LoopBindingError, match="stopped"):
        app.call_threadsafe(store.incr)
    assert time.monotonic() - started < 5
    app.dispose()  # the loop is not running: nothing else can touch the app, so this thread may


def test_snapshot_after_dispose_raises() -> None:
    app = create_app()
    app.use(Count).incr()
    assert app.snapshot() == {"count": {"n": 1}}
    app.dispose()
    with pytest.raises(StoreDisposedError, match="snapshot"):
        app.snapshot()


def test_another_running_loop_is_refused_even_on_the_same_thread() -> None:
    app = create_app()
    store = app.use(Count)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(_call(store.incr))  # binds to `first` (left open)

        async def elsewhere() -> None:
            with pytest.raises(LoopBindingError, match="another event loop"):
                store.incr()

        asyncio.run(elsewhere())
        assert store.state.n == 1
    finally:
        first.close()
    app.dispose()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["incr", "patch", "getter", "batch", "select"]), min_size=1, max_size=12))
def test_interleavings_from_a_worker_never_change_state_behind_the_loop(ops: list[str]) -> None:
    """Whatever a worker tries while the loop runs: each try is refused, and the loop's own writes,
    made in between, all land."""

    async def main() -> None:
        app = create_app()
        store = app.use(Count)
        refused: list[str] = []
        seen: list[int] = []

        def attempt(op: str) -> None:
            try:
                if op == "incr":
                    store.incr()
                elif op == "patch":
                    store.patch({"n": -1})
                elif op == "getter":
                    _ = store.double
                elif op == "batch":
                    with store.batch():
                        store.patch({"n": -1})
                else:
                    store.select(lambda s: s.n).subscribe(seen.append)
                    return
            except LoopBindingError:
                refused.append(op)

        for op in ops:
            store.incr()
            await asyncio.to_thread(attempt, op)
            await asyncio.sleep(0)  # deferred subscriptions attach here
        assert refused == [op for op in ops if op != "select"]
        assert store.state.n == len(ops)
        assert all(v >= 0 for v in seen)
        app.dispose()

    asyncio.run(main())


def test_unbound_apps_in_plain_scripts_need_no_loop() -> None:
    app: App = create_app()
    store = app.use(Count)
    store.incr()
    assert store.double == 2
    with store.batch():
        store.incr()
    app.hydrate({"count": {"n": 9}})
    assert app.snapshot() == {"count": {"n": 9}}
    app.dispose()
