"""``@getter``: derived values read as attributes, cached until a store they read commits.

:class:`GetterCache` (one per store) holds the cached values, which getters elsewhere read them (so a
commit drops those too) and the test kit's overrides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from quvel_store._runtime import running_loop

if TYPE_CHECKING:
    from quvel_store._runtime import Runtime
    from quvel_store._store import Store

__all__ = ["Getter", "GetterCache", "getter"]

T = TypeVar("T")
Reader = Callable[[Any, "Getter[Any]"], Any]


class GetterCache:
    """One store's cached getter values; ``read`` runs a getter with read tracking on a miss."""

    __slots__ = ("cacheable", "dependents", "overrides", "runtime", "store_id", "values")

    def __init__(self, store_id: str, runtime: Runtime, cacheable: Callable[[], bool]) -> None:
        self.store_id = store_id
        self.runtime = runtime
        self.cacheable = cacheable  # False while the store is mid-patch or disposed
        self.values: dict[str, tuple[Any, tuple[GetterCache, ...]]] = {}
        self.overrides: dict[str, Any] = {}
        self.dependents: set[tuple[GetterCache, str]] = set()  # getters elsewhere that read this store

    def read(self, store: Store[Any], getter: Getter[Any]) -> Any:
        name = getter.name
        runtime = self.runtime
        if running_loop() is not runtime.loop:
            runtime.check_thread(f"getter {self.store_id}.{name}")
        if self.overrides and name in self.overrides:
            return self.overrides[name]
        runtime = self.runtime
        tracking = runtime.tracking
        # a task inside a batch sees its own uncommitted writes: it neither uses nor fills the cache
        private = runtime.open_batches > 0 and runtime.in_batch()
        cached = None if private else self.values.get(name)
        if cached is not None:
            if tracking:
                tracking[-1].update(cached[1])
            return cached[0]
        marker = (self, name)
        evaluating = self.runtime.evaluating
        if marker in evaluating:
            raise RecursionError(f"getter {self.store_id}.{name} depends on itself")
        evaluating.add(marker)
        tracking.append(set())
        try:
            value = getter.fn(store)
        finally:
            deps = tuple(tracking.pop())
            # (the set may have been swapped by runtime.setting_up(); discard from the current one)
            self.runtime.evaluating.discard(marker)
        if not private and self.cacheable():
            self.values[name] = (value, deps)
            for cache in deps:
                if cache is not self:
                    cache.dependents.add(marker)
        if tracking:
            tracking[-1].update(deps)
        return value

    def invalidate(self) -> None:
        """The store committed: drop its cached values and those of getters elsewhere that read it."""
        if self.values:
            self.values.clear()
        dependents = self.dependents
        if dependents:
            for cache, name in dependents:
                cache.values.pop(name, None)
            dependents.clear()


class Getter(Generic[T]):
    """A cached derived value of a store (use through :func:`getter`).

    While the function runs, every store whose ``state`` it reads (directly, through other getters, or
    through other stores) is recorded; a commit to any of them drops the cached value.
    """

    __slots__ = ("__dict__", "fn", "name", "reader")

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name: str = fn.__name__
        self.__doc__ = fn.__doc__
        self.reader: Reader | None = None  # set by the Store class that declares (or inherits) it

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Getter[T]: ...

    @overload
    def __get__(self, obj: Store[Any], owner: type | None = None) -> T: ...

    def __get__(self, obj: Store[Any] | None, owner: type | None = None) -> T | Getter[T]:
        if obj is None:
            return self
        if self.reader is None:
            raise TypeError(f"getter {self.name!r} is only usable on a quvel_store.Store subclass")
        return self.reader(obj, self)  # type: ignore[no-any-return]

    def __set__(self, obj: Store[Any], value: Any) -> None:
        raise AttributeError(
            f"getter {self.name!r} is read-only; in tests use quvel_store.testing.override_getter()"
        )


def getter(fn: Callable[[Any], T]) -> Getter[T]:
    """Declare a store method as a cached getter, read as ``store.name`` (no call)."""
    return Getter(fn)
