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

from quvel_store._actions import Action
from quvel_store._app import App
from quvel_store._draft import merged_state
from quvel_store._getters import Getter
from quvel_store._plugins import Plugin
from quvel_store._store import Store, getter_cache
from quvel_store.container import ServiceContainer
from quvel_store.errors import TestKitError

__all__ = ["RecordedCall", "TestApp", "TestKitError", "create_test_app", "override_getter", "reset_getter"]

StubSpec = bool | str | Iterable[str] | Callable[[Store[Any], str], bool]


def _members(cls: type, kind: type) -> set[str]:
    """Names of the ``kind`` (Getter or Action) descriptors a store class declares or inherits."""
    return {n for klass in cls.__mro__ for n, v in vars(klass).items() if isinstance(v, kind)}


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
        if initial_state is not None and not isinstance(initial_state, Mapping):
            raise TestKitError(
                f"initial_state maps store ids to partial states, got {type(initial_state).__name__}"
            )
        self._initial: dict[str, dict[str, Any]] = {}
        for sid, partial in (initial_state or {}).items():
            if not isinstance(sid, str) or not isinstance(partial, Mapping):
                raise TestKitError(
                    f"initial_state[{sid!r}] must map a store id (str) to a mapping of fields, "
                    f"got {type(partial).__name__}"
                )
            self._initial[sid] = dict(partial)
        self._stub_spec: bool | frozenset[str] | Callable[[Store[Any], str], bool]
        if isinstance(stub_actions, bool) or callable(stub_actions):
            self._stub_spec = stub_actions
        elif isinstance(stub_actions, str):
            # One name; frozenset("sync") would be {"s", "y", "n", "c"} and stub nothing.
            self._stub_spec = frozenset([stub_actions])
        else:
            try:
                names = frozenset(stub_actions)
            except TypeError:
                names = None
            if names is None or not all(isinstance(n, str) for n in names):
                raise TestKitError(
                    "stub_actions takes True/False, an action name, a list of names "
                    f"('add' or 'items.add'), or a function (store, name) -> bool; got {stub_actions!r}"
                )
            self._stub_spec = names
        self.calls: list[RecordedCall] = []
        super().__init__(container, stores=stores, plugins=plugins)
        self.runtime.initial_state = self._initial_state_for
        if self._stub_spec is not False:
            self.runtime.stub_action = self._stub_action

    def _initial_state_for(self, store: Store[Any], state: Any) -> Any:
        """The runtime's initial-state hook: ``initial_state`` merged over what the store starts from."""
        self._check_stub_names(store)
        data = self._initial.get(store.store_id)
        if not data:
            return state
        return merged_state(self.runtime.schema, store.store_id, state, data)

    def _check_stub_names(self, store: Store[Any]) -> None:
        """A qualified stub name (``"items.sync"``) must name an action of that store: a typo would
        otherwise let the real action run in a test that believes it is stubbed."""
        if not isinstance(self._stub_spec, frozenset):
            return
        cls = type(store)
        prefixes = {f"{cls.id}.", f"{store.store_id}."}
        actions = _members(cls, Action)
        for name in self._stub_spec:
            prefix = next((p for p in prefixes if name.startswith(p)), None)
            if prefix is not None and name[len(prefix) :] not in actions:
                raise TestKitError(
                    f"stub_actions names {name!r}, but store {store.store_id!r} has no action "
                    f"{name[len(prefix) :]!r} (its actions: {', '.join(sorted(actions)) or 'none'})"
                )

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
    if services is not None and not isinstance(services, Mapping):
        raise TestKitError(f"services maps names to services, got {type(services).__name__}")
    app = TestApp(
        container, initial_state=initial_state, stub_actions=stub_actions, stores=stores, plugins=plugins
    )
    for name, service in (services or {}).items():
        app.container.add_service(name, service, overwrite=True)
    return app


def _check_getter(store: Store[Any], name: str) -> None:
    getters = _members(type(store), Getter)
    if name not in getters:
        raise TestKitError(
            f"store {store.store_id!r} has no getter {name!r} "
            f"(its getters: {', '.join(sorted(getters)) or 'none'})"
        )


def _drop_cached_getters(store: Store[Any]) -> None:
    """Getters elsewhere may have cached a value computed from the getter being pinned or released
    (an overridden read records no dependency), so every cached getter value in the app is dropped."""
    for other in store.app.stores:
        getter_cache(other).values.clear()
    getter_cache(store).values.clear()


def override_getter(store: Store[Any], name: str, value: Any) -> None:
    """Make ``store.<name>`` return ``value`` until :func:`reset_getter`; getters that read it see
    ``value`` too."""
    _check_getter(store, name)
    getter_cache(store).overrides[name] = value
    _drop_cached_getters(store)


def reset_getter(store: Store[Any], name: str) -> None:
    """Undo :func:`override_getter`: ``store.<name>`` (and what reads it) is computed again."""
    _check_getter(store, name)
    getter_cache(store).overrides.pop(name, None)
    _drop_cached_getters(store)
