"""Snapshot and hydration, the thread-safe entry, and the user-facing test kit."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from quvel_store import (
    App,
    HydrationError,
    LoopBindingError,
    MutationKind,
    StateValidationError,
    Store,
    action,
    create_app,
)
from quvel_store.testing import create_test_app
from tests.store.models import CounterState, CounterStore, Item, ItemsState, ItemsStore

# ---- snapshot / hydrate -----------------------------------------------------------------------------------


def test_snapshot_is_json_safe_and_round_trips(app: App) -> None:
    items = app.use(ItemsStore)
    items.add("a")
    items.patch({"labels": ["x"], "scores": {"k": 1}})
    app.use(CounterStore, key="room-1").inc()
    data = app.snapshot()
    text = json.dumps(data)
    other = create_app(stores=[ItemsStore, CounterStore])
    other.hydrate(json.loads(text))
    assert other.use(ItemsStore).state == items.state
    assert other.use(CounterStore, key="room-1").state.n == 1
    assert other.snapshot() == data
    other.dispose()


def test_hydrate_after_creation_is_one_commit_per_store(app: App) -> None:
    items = app.use(ItemsStore)
    counter = app.use(CounterStore)
    seen: list[tuple[str, MutationKind, int, int]] = []

    def watch(store_id: str) -> None:
        app.get(store_id).subscribe(  # type: ignore[union-attr]
            lambda e, s: seen.append((e.store_id, e.kind, len(items.state.items), counter.state.n))
        )

    watch("items")
    watch("counter")
    app.hydrate({"items": {"items": [{"id": 1, "title": "a"}]}, "counter": {"n": 7}})
    # both stores were hydrated before the first observer ran
    assert seen == [("items", MutationKind.HYDRATE, 1, 7), ("counter", MutationKind.HYDRATE, 1, 7)]


def test_hydrate_before_creation_is_the_initial_state_and_reset_ignores_it() -> None:
    app = create_app(stores=[ItemsStore])
    app.hydrate({"items": {"count": 3}})
    assert app.snapshot()["items"]["count"] == 3
    store = app.use(ItemsStore)
    assert store.state.count == 3
    store.reset()
    assert store.state.count == 0
    app.dispose()


@pytest.mark.parametrize(
    ("data", "store_id", "field"),
    [
        ({"items": {"count": "lots"}}, "items", "count"),
        ({"items": {"items": [{"id": 1}]}}, "items", "items[0].title"),
        ({"items": {"unknown": 1}}, "items", "unknown"),
        ({"counter": {"n": 1}, "items": {"profile": {"nick": "x"}}}, "items", "profile.nick"),
    ],
)
def test_bad_hydration_names_store_and_field_and_changes_nothing(
    app: App, data: dict[str, object], store_id: str, field: str
) -> None:
    items = app.use(ItemsStore)
    counter = app.use(CounterStore)
    items.add("kept")
    before = app.snapshot()
    state_objects = (items.state, counter.state)
    with pytest.raises(HydrationError) as info:
        app.hydrate(data)
    assert store_id in info.value.by_store
    assert repr(store_id) in str(info.value)
    assert field in str(info.value)
    assert isinstance(info.value, StateValidationError)
    assert (items.state, counter.state) == state_objects
    assert app.snapshot() == before
    assert items.state is state_objects[0]
    assert counter.state is state_objects[1]


# ---- threads ----------------------------------------------------------------------------------------------


class Remote(Store[CounterState]):
    id = "remote"

    @action
    def inc(self) -> int:
        self.patch({"n": self.state.n + 1})
        return self.state.n

    @action
    async def slow_inc(self) -> int:
        await asyncio.sleep(0)
        return self.inc()


async def test_call_threadsafe_runs_on_the_owner_loop(app: App) -> None:
    store = app.use(Remote)  # binds the app to this loop
    assert app.loop is asyncio.get_running_loop()
    owner = threading.get_ident()
    ran_on: list[int] = []
    results: list[int] = []

    def read_on_loop() -> int:
        ran_on.append(threading.get_ident())
        return store.state.n

    def worker() -> None:
        results.append(app.call_threadsafe(store.inc).result(5))
        results.append(app.call_threadsafe(store.slow_inc).result(5))
        results.append(app.call_threadsafe(read_on_loop).result(5))

    await asyncio.wait_for(asyncio.to_thread(worker), 10)
    assert results == [1, 2, 2]
    assert ran_on == [owner]


async def test_call_threadsafe_passes_errors_back(app: App) -> None:
    app.bind_loop()

    def fails() -> None:
        raise ValueError("from the loop")

    future = app.call_threadsafe(fails)
    with pytest.raises(ValueError, match="from the loop"):
        await asyncio.wait_for(asyncio.wrap_future(future), 5)


def test_call_threadsafe_needs_a_loop(app: App) -> None:
    with pytest.raises(LoopBindingError):
        app.call_threadsafe(lambda: None)
    with pytest.raises(LoopBindingError):
        app.bind_loop()


# ---- the user test kit ------------------------------------------------------------------------------------


def test_create_test_app_initial_state_is_merged_and_validated() -> None:
    app = create_test_app(initial_state={"items": {"count": 2, "profile": {"name": "ann"}}})
    store = app.use(ItemsStore)
    assert (store.state.count, store.state.profile.name, store.state.items) == (2, "ann", [])
    bad = create_test_app(initial_state={"items": {"nope": 1}})
    with pytest.raises(StateValidationError):
        bad.use(ItemsStore)
    app.dispose()
    bad.dispose()


async def test_stub_actions_all_or_by_name_or_predicate() -> None:
    everything = create_test_app(stub_actions=True)
    items = everything.use(ItemsStore)
    assert items.add("x") is None
    assert items.state.items == []
    assert everything.calls_to(items, "add")[0].args == ("x",)
    task = everything.use(Remote).slow_inc()
    assert await task is None

    named = create_test_app(stub_actions=["add"])
    items2 = named.use(ItemsStore)
    items2.add("stubbed")
    assert named.use(CounterStore).inc() is None
    assert named.use(CounterStore).state.n == 1
    assert items2.state.items == []

    chosen = create_test_app(stub_actions=lambda store, name: store.store_id == "counter")
    chosen.use(CounterStore).inc()
    assert chosen.use(CounterStore).state.n == 0
    assert chosen.use(ItemsStore).add("real") == 1
    assert chosen.use(ItemsStore).state.items == [Item(id=1, title="real")]
    for app in (everything, named, chosen):
        app.dispose()


def test_services_are_injected_into_the_container() -> None:
    class Clock:
        def now(self) -> int:
            return 42

    class Timed(Store[ItemsState]):
        id = "timed"

        def on_init(self) -> None:
            clock = self.container.get_service("clock")
            assert isinstance(clock, Clock)
            self.patch({"count": clock.now()})

    app = create_test_app(services={"clock": Clock()})
    assert app.use(Timed).state.count == 42
    again = create_test_app(services={"clock": Clock()}, container=app.container)  # overwrite=True
    assert again.container.get_service("clock") is not None
    app.dispose()
    again.dispose()


async def test_writes_from_another_thread_are_refused(app: App) -> None:
    store = app.use(CounterStore)  # binds the app to this loop and thread
    errors: list[BaseException] = []

    def worker() -> None:
        for write in (lambda: store.patch({"n": 5}), store.reset, lambda: store.replace({"n": 1})):
            try:
                write()
            except LoopBindingError as exc:
                errors.append(exc)

    await asyncio.wait_for(asyncio.to_thread(worker), 10)
    assert len(errors) == 3
    assert store.state.n == 0
    await asyncio.wait_for(asyncio.wrap_future(app.call_threadsafe(store.inc)), 5)  # the supported way in
    assert store.state.n == 1
