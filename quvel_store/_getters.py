"""``@getter``: derived values read as attributes, cached until a store they read commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    from quvel_store._store import Store

__all__ = ["Getter", "getter"]

T = TypeVar("T")


class Getter(Generic[T]):
    """A cached derived value of a store (use through :func:`getter`).

    While the function runs, every store whose ``state`` it reads (directly, through other getters, or
    through other stores) is recorded; a commit to any of them drops the cached value.
    """

    __slots__ = ("__dict__", "fn", "name")

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name: str = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Getter[T]: ...

    @overload
    def __get__(self, obj: Store[Any], owner: type | None = None) -> T: ...

    def __get__(self, obj: Store[Any] | None, owner: type | None = None) -> T | Getter[T]:
        if obj is None:
            return self
        return obj._read_getter(self)  # type: ignore[no-any-return]

    def __set__(self, obj: Store[Any], value: Any) -> None:
        raise AttributeError(
            f"getter {self.name!r} is read-only; in tests use quvel_store.testing.override_getter()"
        )


def getter(fn: Callable[[Any], T]) -> Getter[T]:
    """Declare a store method as a cached getter, read as ``store.name`` (no call)."""
    return Getter(fn)
