"""Issue 10, case 6: Pinia habits (redefined store classes, assignment through the store, early hydrate)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import (
    HydrationError,
    MutationKind,
    PluginError,
    StateValidationError,
    Store,
    StoreDefinitionError,
    action,
    create_app,
    getter,
)


class Count(BaseModel):
    count: int = 0
    profile: dict[str, str] = {}


def _define_counter(step: int) -> type[Store[Count]]:
    """The same class statement run again (a notebook cell, a reload): same module, same qualname."""

    class Counter(Store[Count]):
        id = "counter"

        @getter
        def doubled(self) -> int:
            return self.state.count * 2 * step

        @action
        def bump(self) -> None:
            self.patch({"count": self.state.count + step})

    return Counter


def test_redefining_a_store_class_replaces_it_and_keeps_state_and_subscribers() -> None:
    app = create_app()
    first = app.use(_define_counter(1))
    first.bump()
    seen: list[int] = []
    first.subscribe(lambda e, s: seen.append(s.count))
    assert first.doubled == 2
    second_cls = _define_counter(10)
    second = app.use(second_cls)  # raised "taken by Counter, not Counter" before
    assert second is first
    assert type(second) is second_cls
    assert second.state.count == 1
    assert second.doubled == 20  # the new getter
    second.bump()  # the new action
    assert second.state.count == 11
    assert seen == [11]


def test_a_redefined_state_model_keeps_what_still_validates() -> None:
    app = create_app()

    class Old(BaseModel):
        count: int = 0
        name: str = ""
        gone: int = 0

    class New(BaseModel):
        count: int = 0
        name: int = 7  # no longer a str: takes the default
        added: bool = True

    def define(model: type[BaseModel]) -> type[Store[Any]]:
        class Counter(Store[Any]):
            id = "counter"
            state_model = model

        return Counter

    store = app.use(define(Old))
    store.patch({"count": 3, "name": "ann", "gone": 1})
    events: list[Any] = []
    store.subscribe(lambda e, s: events.append(e.kind))
    app.use(define(New))
    assert store.state.model_dump() == {"count": 3, "name": 7, "added": True}
    assert events == [MutationKind.REPLACE]

    class Required(BaseModel):
        must: int

    with pytest.raises(StoreDefinitionError, match="must"):
        app.use(define(Required))
    assert store.state.model_dump() == {"count": 3, "name": 7, "added": True}


def test_another_class_with_a_taken_id_is_still_refused() -> None:
    app = create_app()
    app.use(_define_counter(1))

    class Counter(Store[Count]):  # another qualname: not a redefinition
        id = "counter"

    with pytest.raises(StoreDefinitionError, match="two store classes use id 'counter'"):
        app.use(Counter)


def test_assigning_a_state_field_through_the_store_commits_a_patch() -> None:
    store = create_app().use(_define_counter(1))
    events: list[Any] = []
    store.subscribe(lambda e, s: events.append((e.kind, e.payload)))
    store.count = 3  # type: ignore[attr-defined]
    assert store.state.count == 3
    assert store.count == 3  # type: ignore[attr-defined]
    assert "count" not in vars(store)
    assert events == [(MutationKind.PATCH_OBJECT, {"count": 3})]
    store.profile = {"a": "1"}  # type: ignore[attr-defined]
    store.profile = {"b": "2"}  # type: ignore[attr-defined]  # replaces, as an assignment does
    assert store.state.profile == {"b": "2"}
    with pytest.raises(StateValidationError):
        store.count = "many"  # type: ignore[attr-defined]
    assert store.state.count == 3


def test_a_plugin_may_not_take_a_state_field_name() -> None:
    app = create_app()
    app.use(_define_counter(1))
    with pytest.raises(PluginError, match="state field"):
        app.use_plugin(lambda ctx: {"count": 5})


def test_hydrate_before_the_class_is_known_waits_for_first_use() -> None:
    server = create_app()
    server.use(_define_counter(1)).patch({"count": 4})
    client = create_app()
    client.hydrate(server.snapshot())  # raised HydrationError before: the class was not registered
    assert client.snapshot() == {"counter": {"count": 4, "profile": {}}}
    assert client.use(_define_counter(1)).state.count == 4


def test_early_hydrated_state_that_does_not_validate_names_store_and_field_on_first_use() -> None:
    client = create_app()
    client.hydrate({"counter": {"count": "many"}})
    with pytest.raises(HydrationError) as info:
        client.use(_define_counter(1))
    assert "counter" in str(info.value)
    assert "count" in str(info.value)
    assert client.get("counter") is None
    assert client.use(_define_counter(1)).state.count == 0
