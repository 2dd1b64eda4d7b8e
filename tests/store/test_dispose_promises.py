"""docs/stores.md's promises about ``dispose()`` (Lifecycle, Subscriptions), one assertion each."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel
from reactivex.subject import Subject

from quvel_store import Store, StoreDisposedError, action, create_app


class Counter(BaseModel):
    n: int = 0


class CounterStore(Store[Counter]):
    id = "counter"
    order: list[str]

    def on_init(self) -> None:
        self.order = []
        self.add_cleanup(lambda: self.order.append("cleanup"))

    def on_dispose(self) -> None:
        self.order.append(f"on_dispose sees n={self.state.n}")

    @action
    async def slow(self, started: asyncio.Event) -> None:
        started.set()
        await asyncio.sleep(60)
        self.patch({"n": 99})

    @action
    def bump(self, by: int) -> None:
        self.patch(lambda s: setattr(s, "n", s.n + by))


class Watcher(Store[Counter]):
    id = "watcher"

    @action
    def watch(self, other: CounterStore) -> None:
        other.subscribe(lambda e, s: self.patch({"n": s.n}))


async def test_dispose_keeps_the_lifecycle_promises() -> None:
    app = create_app()
    store = app.use(CounterStore)
    store.patch({"n": 1})
    # running actions are cancelled
    started = asyncio.Event()
    running = asyncio.ensure_future(store.slow(started))
    await started.wait()
    # connect subscriptions end
    source: Subject[int] = Subject()
    store.connect(source, store.bump)
    source.on_next(2)
    assert store.state.n == 3
    # its Observables complete; its subscribers hear nothing more
    completed: list[str] = []
    heard: list[int] = []
    store.observe().subscribe(on_completed=lambda: completed.append("observe"))
    store.select(lambda s: s.n).subscribe(on_completed=lambda: completed.append("select"))
    store.errors.subscribe(on_completed=lambda: completed.append("errors"))
    store.subscribe(lambda e, s: heard.append(s.n))
    # what it subscribed to in another store (in its action: the store's own scope) ends with it
    watcher = app.use(Watcher)
    watcher.watch(store)
    store.patch({"n": 4})
    assert watcher.state.n == 4
    assert heard == [4]

    watcher.dispose()
    store.patch({"n": 5})  # the watcher's subscription on `store` ended with the watcher
    store.dispose()

    assert store.order == ["on_dispose sees n=5", "cleanup"]  # on_dispose first, then cleanups
    with pytest.raises(asyncio.CancelledError):
        await running
    assert store.state.n == 5  # the cancelled action never wrote
    assert not source.observers  # the connect subscription ended
    assert sorted(completed) == ["errors", "observe", "select"]
    assert heard == [4, 5]
    with pytest.raises(StoreDisposedError):
        store.patch({"n": 6})
    with pytest.raises(StoreDisposedError):
        store.subscribe(lambda e, s: None)
    assert app.use(CounterStore).state.n == 0  # forgotten: a fresh store from its initial state
    app.dispose()


def test_dispose_inside_a_batch_drops_the_batch() -> None:
    """A store disposed while its own batch is open commits nothing, and the block's later writes raise."""
    app = create_app()
    store = app.use(CounterStore)
    seen: list[int] = []
    app.mutations.subscribe(lambda e: seen.append(e.store_id == "counter"))
    refused: list[Exception] = []
    with store.batch():
        store.patch({"n": 1})
        store.dispose()
        try:
            store.patch({"n": 2})
        except StoreDisposedError as exc:
            refused.append(exc)
    assert len(refused) == 1
    assert store.state.n == 0
    assert seen == []
    app.dispose()
