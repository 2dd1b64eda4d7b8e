"""Observation: ordered delivery, subscribe/observe/select, getters and their invalidation, app streams."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import App, MutationEvent, MutationKind, Store, StoreErrorEvent, create_app, getter
from quvel_store.testing import override_getter, reset_getter
from tests.store.models import CounterState, CounterStore, Item, ItemsState, ItemsStore

# ---- delivery order ---------------------------------------------------------------------------------------


def test_commits_made_by_subscribers_are_delivered_in_order_and_never_lost(app: App) -> None:
    store = app.use(CounterStore)
    log: list[tuple[str, int, int]] = []

    def first(event: MutationEvent, state: CounterState) -> None:
        log.append(("first", state.n, store.state.n))
        if state.n < 3:
            store.patch({"n": state.n + 1})  # queued: delivered after every subscriber saw this commit

    def second(event: MutationEvent, state: CounterState) -> None:
        log.append(("second", state.n, store.state.n))

    store.subscribe(first)
    store.subscribe(second)
    store.patch({"n": 1})
    assert [(who, n) for who, n, _ in log] == [
        ("first", 1),
        ("second", 1),
        ("first", 2),
        ("second", 2),
        ("first", 3),
        ("second", 3),
    ]
    # the subscriber's write is visible right away; its notification waits its turn
    assert log[1] == ("second", 1, 2)
    assert store.state.n == 3


def test_cross_store_writes_from_subscribers_keep_global_order(app: App) -> None:
    counter = app.use(CounterStore)
    items = app.use(ItemsStore)
    order: list[str] = []
    app.mutations.subscribe(lambda e: order.append(f"{e.store_id}:{e.kind}"))
    counter.subscribe(lambda e, s: items.add(f"from {s.n}") if s.n == 1 else None)
    items.subscribe(lambda e, s: counter.inc() if len(s.items) == 1 else None)
    counter.inc()
    assert order == ["counter:patch_object", "items:patch_function", "counter:patch_object"]
    assert counter.state.n == 2
    assert len(items.state.items) == 1


def test_a_raising_subscriber_is_reported_and_others_still_run(app: App) -> None:
    store = app.use(CounterStore)
    errors: list[StoreErrorEvent] = []
    store.errors.subscribe(errors.append)
    calls: list[int] = []

    def bad(event: MutationEvent, state: CounterState) -> None:
        raise ValueError("subscriber bug")

    store.subscribe(bad)
    store.subscribe(lambda e, s: calls.append(s.n))
    store.inc()
    store.inc()
    assert calls == [1, 2]
    assert [(e.source, type(e.error)) for e in errors] == [("subscriber", ValueError)] * 2


def test_unsubscribe_and_scopes(app: App) -> None:
    store = app.use(CounterStore)
    a: list[int] = []
    b: list[int] = []
    c: list[int] = []
    sub = store.subscribe(lambda e, s: a.append(s.n))
    scope = app.scope()
    with scope:
        store.subscribe(lambda e, s: b.append(s.n))
        store.subscribe(lambda e, s: c.append(s.n), detached=True)
    store.inc()
    sub.dispose()
    scope.dispose()
    store.inc()
    assert (a, b, c) == ([1], [1], [1, 2])


def test_subscriptions_made_in_a_stores_init_end_with_that_store(app: App) -> None:
    seen: list[int] = []

    class Watcher(Store[CounterState]):
        id = "watcher"

        def on_init(self) -> None:
            self.app.use(CounterStore).subscribe(lambda e, s: seen.append(s.n))

    counter = app.use(CounterStore)
    watcher = app.use(Watcher)
    counter.inc()
    watcher.dispose()
    counter.inc()
    assert seen == [1]


# ---- observe ----------------------------------------------------------------------------------------------


def test_observe_replays_the_current_state_then_every_commit(app: App) -> None:
    store = app.use(CounterStore)
    store.inc()
    seen: list[int] = []
    done: list[bool] = []
    sub = store.observe().subscribe(lambda s: seen.append(s.n), on_completed=lambda: done.append(True))
    store.inc()
    store.inc()
    late: list[int] = []
    store.observe().subscribe(lambda s: late.append(s.n))
    sub.dispose()
    store.inc()
    store.dispose()
    assert seen == [1, 2, 3]
    assert late == [3, 4]
    assert done == []


def test_observe_completes_on_dispose(app: App) -> None:
    store = app.use(CounterStore)
    done: list[bool] = []
    store.observe().subscribe(on_completed=lambda: done.append(True))
    store.select(lambda s: s.n).subscribe(on_completed=lambda: done.append(True))
    store.dispose()
    assert done == [True, True]


def test_observer_joining_mid_delivery_sees_each_state_once_in_order(app: App) -> None:
    store = app.use(CounterStore)
    joined: list[int] = []

    def on_commit(event: MutationEvent, state: CounterState) -> None:
        if state.n == 1:
            store.patch({"n": 2})  # queued behind this delivery
            store.observe().subscribe(lambda s: joined.append(s.n))

    store.subscribe(on_commit)
    store.patch({"n": 1})
    assert joined == [1, 2]


# ---- select -----------------------------------------------------------------------------------------------


def test_select_emits_distinct_values_and_replays(app: App) -> None:
    store = app.use(ItemsStore)
    unread = store.select(lambda s: sum(not i.read for i in s.items))
    seen: list[int] = []
    unread.subscribe(seen.append)
    store.add("a")
    store.patch({"count": 5})
    store.add("b")
    store.patch(lambda s: setattr(s.items[0], "read", True))
    later: list[int] = []
    unread.subscribe(later.append)
    assert seen == [0, 1, 2, 1]
    assert later == [1]


def test_select_is_shared_and_recomputes_only_for_fields_it_read(app: App) -> None:
    store = app.use(ItemsStore)
    name = store.select(lambda s: s.profile.name)
    tags = store.select(lambda s: len(s.profile.tags))
    a: list[str] = []
    b: list[str] = []
    name.subscribe(a.append)
    name.subscribe(b.append)
    tags.subscribe(lambda _: None)
    assert name.recomputations == 1
    store.patch({"count": 1})
    store.add("x")
    store.patch({"profile": {"tags": ["t"]}})
    assert name.recomputations == 1
    assert tags.recomputations == 2
    store.patch({"profile": {"name": "ann"}})
    assert name.recomputations == 2
    assert a == b == ["", "ann"]


def test_a_thousand_selections_only_the_reader_recomputes(app: App) -> None:
    fields = {f"f{i}": (int, 0) for i in range(1000)}
    from pydantic import create_model

    Wide = create_model("Wide", **fields)  # type: ignore[call-overload]

    class WideStore(Store[Wide]):  # type: ignore[valid-type]
        id = "wide"

    store = app.use(WideStore)
    selections = [store.select(lambda s, k=f"f{i}": getattr(s, k)) for i in range(1000)]
    for sel in selections:
        sel.subscribe(lambda _: None)
    store.patch({"f500": 1})
    assert [i for i, sel in enumerate(selections) if sel.recomputations > 1] == [500]


def test_select_with_custom_equality_and_whole_state_reads(app: App) -> None:
    store = app.use(ItemsStore)
    titles = store.select(lambda s: [i.title for i in s.items], equal=lambda a, b: len(a) == len(b))
    dumped = store.select(lambda s: s.model_dump()["count"])
    t: list[list[str]] = []
    d: list[int] = []
    titles.subscribe(t.append)
    dumped.subscribe(d.append)
    store.add("a")
    store.patch(lambda s: setattr(s.items[0], "title", "renamed"))
    store.patch({"count": 9})
    assert t == [[], ["a"]]
    assert d == [0, 9]


def test_select_function_errors_reach_the_observer(app: App) -> None:
    store = app.use(ItemsStore)
    errors: list[Exception] = []
    store.select(lambda s: 1 / s.count).subscribe(on_error=errors.append)
    assert isinstance(errors[0], ZeroDivisionError)


# ---- getters ----------------------------------------------------------------------------------------------


class CountingState(BaseModel):
    values: list[int] = []
    other: int = 0


class Counting(Store[CountingState]):
    id = "counting"
    calls: dict[str, int]

    def on_init(self) -> None:
        self.calls = {"total": 0, "double": 0, "with_counter": 0}

    @getter
    def total(self) -> int:
        self.calls["total"] += 1
        return sum(self.state.values)

    @getter
    def double(self) -> int:
        self.calls["double"] += 1
        return self.total * 2

    @getter
    def with_counter(self) -> int:
        self.calls["with_counter"] += 1
        return self.double + self.app.use(CounterStore).state.n


def test_getters_are_cached_until_state_changes(app: App) -> None:
    store = app.use(Counting)
    assert (store.total, store.total, store.double, store.double) == (0, 0, 0, 0)
    assert store.calls == {"total": 1, "double": 1, "with_counter": 0}
    store.patch(lambda s: s.values.append(5))
    assert store.double == 10
    assert store.total == 5
    assert store.calls == {"total": 2, "double": 2, "with_counter": 0}


def test_getters_across_stores_invalidate_correctly(app: App) -> None:
    store = app.use(Counting)
    counter = app.use(CounterStore)
    assert store.with_counter == 0
    assert store.with_counter == 0
    counter.inc(3)
    assert store.with_counter == 3
    assert store.calls["with_counter"] == 2
    assert store.calls["total"] == 1
    store.patch(lambda s: s.values.append(1))
    assert store.with_counter == 5


def test_getter_of_a_getter_of_another_store_invalidates_transitively(app: App) -> None:
    class Outer(Store[CounterState]):
        id = "outer"

        @getter
        def seen(self) -> int:
            return self.app.use(Counting).with_counter * 10

    outer = app.use(Outer)
    assert outer.seen == 0
    app.use(CounterStore).inc()
    assert outer.seen == 10


def test_getters_are_read_only_and_can_be_overridden_in_tests(app: App) -> None:
    store = app.use(Counting)
    with pytest.raises(AttributeError):
        store.total = 3  # type: ignore[misc]
    override_getter(store, "total", 42)
    assert store.total == 42
    assert store.double == 84
    reset_getter(store, "total")
    assert store.total == 0


# ---- app streams and isolation ----------------------------------------------------------------------------


def test_app_mutations_carry_every_store(app: App) -> None:
    seen: list[tuple[str, MutationKind]] = []
    app.mutations.subscribe(lambda e: seen.append((e.store_id, e.kind)))
    app.use(CounterStore).inc()
    app.use(ItemsStore).reset()
    assert seen == [("counter", MutationKind.PATCH_OBJECT), ("items", MutationKind.RESET)]


def test_two_apps_share_nothing() -> None:
    one, two = create_app(), create_app()
    a, b = one.use(ItemsStore), two.use(ItemsStore)
    a.add("only in one")
    assert b.state.items == []
    assert a.state.items == [Item(id=1, title="only in one")]
    # the read-only classes are immutable and built once per model class (issue 19: per-request apps)
    assert type(a.state) is type(b.state)
    assert a.state == ItemsState(items=[Item(id=1, title="only in one")])
    one.dispose()
    two.dispose()


def test_subscribe_callback_gets_the_event_and_that_commits_state(app: App) -> None:
    store = app.use(ItemsStore)
    got: list[tuple[MutationKind, Any, int]] = []
    store.subscribe(lambda e, s: got.append((e.kind, e.payload, len(s.items))))
    store.patch({"items": [{"id": 1, "title": "a"}]})
    assert got == [(MutationKind.PATCH_OBJECT, {"items": [{"id": 1, "title": "a"}]}, 1)]
