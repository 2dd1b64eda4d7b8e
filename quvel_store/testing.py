"""Test kit for apps built on quvel_store (like ``@pinia/testing``): a fresh app per test with initial
state, stubbed actions, injected services and getter overrides.

```python
app = create_test_app(initial_state={"items": {"items": []}}, stub_actions=["sync"], services={"clock": c})
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quvel_store._app import App
from quvel_store._draft import DraftModel, Txn, merge_into
from quvel_store._plugins import Plugin
from quvel_store._store import Store
from quvel_store.container import ServiceContainer

__all__ = ["RecordedCall", "TestApp", "create_test_app", "override_getter", "reset_getter"]

StubSpec = bool | Iterable[str] | Callable[[Store[Any], str], bool]


@dataclass(frozen=True)
class RecordedCall:
    """A call to a stubbed action: it did not run, but it is recorded here."""

    store_id: str
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class TestApp(App):
    """An :class:`App` whose stores start from ``initial_state`` and whose chosen actions are stubs."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        container: ServiceContainer | None = None,
        *,
        initial_state: Mapping[str, Mapping[str, Any]] | None = None,
        stub_actions: StubSpec = False,
        stores: Iterable[type[Store[Any]]] = (),
        plugins: Iterable[Plugin] = (),
    ) -> None:
        self._initial = {k: dict(v) for k, v in (initial_state or {}).items()}
        self._stub_spec: bool | frozenset[str] | Callable[[Store[Any], str], bool]
        if isinstance(stub_actions, bool) or callable(stub_actions):
            self._stub_spec = stub_actions
        else:
            self._stub_spec = frozenset(stub_actions)
        self.calls: list[RecordedCall] = []
        super().__init__(container, stores=stores, plugins=plugins)

    def _initial_state_for(self, store: Store[Any]) -> Any:
        state = super()._initial_state_for(store)
        data = self._initial.get(store.store_id)
        if not data:
            return state
        txn = Txn(self._schema, store.store_id)
        root = DraftModel(txn, None, None, state)
        try:
            merge_into(root, data)
            new, _ = root._q_finalize()
        except BaseException:
            txn.rollback(root)
            raise
        txn.close(root)
        return new

    def _stub_action(
        self, store: Store[Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bool:
        spec = self._stub_spec
        if spec is False:
            return False
        if spec is True:
            stub = True
        elif isinstance(spec, frozenset):
            stub = name in spec or f"{store.store_id}.{name}" in spec or f"{type(store).id}.{name}" in spec
        else:
            stub = bool(spec(store, name))
        if stub:
            self.calls.append(RecordedCall(store.store_id, name, args, dict(kwargs)))
        return stub

    def calls_to(self, store: Store[Any] | str, name: str) -> list[RecordedCall]:
        """The recorded calls of one stubbed action."""
        sid = store if isinstance(store, str) else store.store_id
        return [c for c in self.calls if c.store_id == sid and c.name == name]


def create_test_app(
    *,
    initial_state: Mapping[str, Mapping[str, Any]] | None = None,
    stub_actions: StubSpec = False,
    services: Mapping[str, object] | None = None,
    container: ServiceContainer | None = None,
    stores: Iterable[type[Store[Any]]] = (),
    plugins: Iterable[Plugin] = (),
) -> TestApp:
    """A fresh :class:`TestApp`.

    ``initial_state`` maps store ids to partial state merged over each store's initial state when it is
    created (validated). ``stub_actions``: ``True`` stubs every action, a list stubs those names
    (``"add"`` or ``"items.add"``), a function ``(store, name) -> bool`` decides; stubbed calls return
    None (async ones a finished task) and land in ``app.calls``. ``services`` are added to the
    container, replacing any of the same name.
    """
    app = TestApp(
        container, initial_state=initial_state, stub_actions=stub_actions, stores=stores, plugins=plugins
    )
    for name, service in (services or {}).items():
        app.container.add_service(name, service, overwrite=True)
    return app


def override_getter(store: Store[Any], name: str, value: Any) -> None:
    """Make ``store.<name>`` return ``value`` until :func:`reset_getter`."""
    store._getter_overrides[name] = value


def reset_getter(store: Store[Any], name: str) -> None:
    store._getter_overrides.pop(name, None)
