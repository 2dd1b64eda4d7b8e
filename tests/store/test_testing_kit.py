"""The user-facing test kit refuses what it cannot use, and pinned getters reach what reads them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import Store, StoreError, getter
from quvel_store.testing import TestKitError, create_test_app, override_getter, reset_getter
from tests.store.models import CounterStore, ItemsStore


class N(BaseModel):
    n: int = 1


class Doubler(Store[N]):
    id = "doubler"

    @getter
    def double(self) -> int:
        return self.state.n * 2

    @getter
    def label(self) -> str:
        return f"double={self.double}"


class Reader(Store[N]):
    id = "reader"

    @getter
    def seen(self) -> int:
        return self.app.use(Doubler).double


def test_override_reaches_getters_that_read_it_and_reset_restores_them() -> None:
    app = create_test_app()
    doubler, reader = app.use(Doubler), app.use(Reader)
    assert (doubler.label, reader.seen) == ("double=2", 2)  # cached before the override
    override_getter(doubler, "double", 99)
    assert (doubler.double, doubler.label, reader.seen) == (99, "double=99", 99)
    reset_getter(doubler, "double")
    assert (doubler.double, doubler.label, reader.seen) == (2, "double=2", 2)
    doubler.patch({"n": 5})
    assert (doubler.label, reader.seen) == ("double=10", 10)
    app.dispose()


def test_override_of_a_name_that_is_no_getter_is_refused() -> None:
    app = create_test_app()
    doubler = app.use(Doubler)
    with pytest.raises(TestKitError, match=r"no getter 'dobule'.*double, label"):
        override_getter(doubler, "dobule", 1)
    with pytest.raises(TestKitError):
        reset_getter(doubler, "n")
    assert doubler.double == 2
    app.dispose()


def test_a_single_action_name_is_one_name_not_its_letters() -> None:
    app = create_test_app(stub_actions="add")
    items = app.use(ItemsStore)
    assert items.add("stubbed") is None
    assert items.state.items == []
    assert app.use(CounterStore).inc() is None
    assert app.use(CounterStore).state.n == 1  # not stubbed
    app.dispose()


def test_a_qualified_stub_name_with_a_typo_fails_when_its_store_is_created() -> None:
    app = create_test_app(stub_actions=["items.addd", "counter.inc"])
    with pytest.raises(TestKitError, match=r"'items\.addd'.*no action 'addd'"):
        app.use(ItemsStore)
    counter = app.use(CounterStore)
    counter.inc()
    assert counter.state.n == 0  # the correct name still stubs
    app.dispose()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_state": 5},
        {"initial_state": {"items": 5}},
        {"initial_state": [("items", {})]},
        {"stub_actions": 5},
        {"stub_actions": [1, 2]},
        {"services": 5},
        {"services": ["clock"]},
    ],
    ids=repr,
)
def test_wrong_argument_types_are_typed_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TestKitError) as caught:
        create_test_app(**kwargs)
    assert isinstance(caught.value, StoreError)
    assert isinstance(caught.value, TypeError)
