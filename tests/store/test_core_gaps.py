"""Bad input to the store core that used to be accepted silently or escape untyped: now refused at the call.

Found by the audit of issue 2 (each was a strict xfail until its fix landed): every case raises a typed
error from the store's hierarchy and leaves what the app and its stores held unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
import reactivex as rx
from pydantic import BaseModel

from quvel_store import (
    App,
    InvalidStoreKeyError,
    PluginError,
    SnapshotError,
    StateMutationError,
    Store,
    StoreArgumentError,
    StoreError,
    create_app,
    getter,
)
from tests.store.models import CounterStore, ItemsStore


class N(BaseModel):
    n: int = 0
    blob: bytes = b""


class Impure(Store[N]):
    id = "impure"

    @getter
    def sneaky(self) -> int:
        self.patch({"n": self.state.n + 1})  # a getter must not write
        return self.state.n


@pytest.mark.parametrize("call", ["subscribe", "select", "on_action", "connect_handler"])
def test_non_callables_are_refused_at_the_call(app: App, call: str) -> None:
    store = app.use(CounterStore)
    not_callable: Any = 5
    register = (
        (lambda: store.connect(rx.of(1), not_callable))
        if call == "connect_handler"
        else (lambda: getattr(store, call)(not_callable))
    )
    with pytest.raises(StoreArgumentError, match="callable"):
        register()
    # nothing was registered: commits still go through and nobody was added
    assert store._subs.listeners == ()
    assert store._actions.hooks == ()
    assert not store._subs.selections
    assert not store._connections.live
    store.inc()
    assert store.state.n == 1


def test_connect_to_something_that_is_no_observable_is_a_type_error(app: App) -> None:
    store = app.use(CounterStore)
    not_observable: Any = 5
    with pytest.raises(StoreArgumentError, match="Observable"):
        store.connect(not_observable, lambda item: None)
    assert not store._connections.live


def test_a_getter_that_writes_is_refused_and_changes_nothing(app: App) -> None:
    store = app.use(Impure)
    with pytest.raises(StateMutationError, match=r"getter impure\.sneaky"):
        _ = store.sneaky
    assert store.state.n == 0


class Reaching(Store[N]):
    id = "reaching"

    @getter
    def resets_counter(self) -> int:
        self.app.use(CounterStore).inc()  # a write to another store, through an action
        return 0

    @getter
    def replaces_itself(self) -> int:
        self.replace(N(n=7))
        return 0


def test_a_getter_may_not_write_any_store_by_any_route(app: App) -> None:
    counter = app.use(CounterStore)
    store = app.use(Reaching)
    for name in ("resets_counter", "replaces_itself"):
        with pytest.raises(StateMutationError, match="getters must not change state"):
            getattr(store, name)
    assert counter.state.n == 0
    assert store.state.n == 0
    counter.inc()  # writes outside a getter still work: the refusal left no state behind
    store.patch({"n": 1})
    assert (counter.state.n, store.state.n) == (1, 1)


@pytest.mark.parametrize("key", [5, "", "a:b"], ids=repr)
def test_bad_store_keys_are_refused(app: App, key: Any) -> None:
    expected = StoreArgumentError if not isinstance(key, str) else InvalidStoreKeyError
    with pytest.raises(expected, match="key"):
        app.use(CounterStore, key=key)
    assert app.stores == ()
    assert app.use(CounterStore, key="a").store_id == "counter:a"  # a good key still works


def test_create_app_refuses_a_container_that_is_no_container() -> None:
    not_a_container: Any = 5
    with pytest.raises(StoreArgumentError, match="ServiceContainer"):
        create_app(container=not_a_container)
    with pytest.raises(StoreArgumentError, match="ServiceContainer"):
        App(not_a_container)


def test_a_state_that_cannot_be_json_is_a_typed_snapshot_error(app: App) -> None:
    store = app.use(Impure)
    store.patch({"blob": b"\xff"})
    with pytest.raises(StoreError, match="impure") as caught:
        app.snapshot()
    assert isinstance(caught.value, SnapshotError)
    assert caught.value.store_id == "impure"
    assert store.state.blob == b"\xff"  # the snapshot changed nothing


def test_a_plugin_attribute_may_not_replace_an_action(app: App) -> None:
    app.use_plugin(lambda ctx: {"inc": 5})
    with pytest.raises(PluginError, match="inc"):
        app.use(CounterStore)
    assert app.stores == ()


def test_a_refused_plugin_changes_nothing_on_a_live_store(app: App) -> None:
    store = app.use(CounterStore)
    with pytest.raises(PluginError, match="action 'inc'"):
        app.use_plugin(lambda ctx: {"extra": 1, "inc": 5})
    assert not hasattr(store, "extra")  # checked before anything was set
    store.inc()
    assert store.state.n == 1


def test_a_plugin_attribute_named_like_a_getter_is_a_plugin_error(app: App) -> None:
    app.use_plugin(lambda ctx: {"unread": 5})
    with pytest.raises(PluginError, match="unread"):
        app.use(ItemsStore)


class SelfLoading(Store[N]):
    id = "self_loading"

    def on_init(self) -> None:
        self.patch({"n": 3})  # set-up, not a getter's write


class UsesAnother(Store[N]):
    id = "uses_another"

    @getter
    def other_n(self) -> int:
        return self.app.use(SelfLoading).state.n


def test_a_store_first_used_inside_a_getter_may_still_set_itself_up(app: App) -> None:
    # Its on_init (or a plugin restoring saved state) runs inside the getter but is not the getter's write.
    app.use_plugin(lambda ctx: ctx.store.patch({"n": 2}) if ctx.store.store_id == "self_loading" else None)
    assert app.use(UsesAnother).other_n == 3
    with pytest.raises(StateMutationError):
        _ = app.use(Impure).sneaky  # the guard is back once the store is made
