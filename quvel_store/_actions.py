"""``@action``: store methods that run with hooks, the action stream and (async) a concurrency policy."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from quvel_store._store import Store

RunAction = Callable[["Action[Any, Any]", tuple[Any, ...], dict[str, Any]], Any]
RunnerOf = Callable[[Any], RunAction]

__all__ = ["Action", "ActionCall", "AsyncAction", "Concurrency", "SyncAction", "action"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

Concurrency = Literal["merge", "switch", "concat", "exhaust"]
_POLICIES: frozenset[str] = frozenset({"merge", "switch", "concat", "exhaust"})


class ActionCall:
    """What an ``on_action`` hook receives before the action runs (Pinia's ``$onAction`` context).

    Register ``after(fn)`` to get the result (for async actions, when the task finishes) and
    ``on_error(fn)`` to get the exception; the action's own result and error are never altered.
    """

    __slots__ = ("after_callbacks", "args", "call_id", "error_callbacks", "kwargs", "name", "store")

    def __init__(
        self, store: Store[Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any], call_id: int
    ) -> None:
        self.store = store
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.call_id = call_id
        self.after_callbacks: list[Callable[[Any], object]] = []
        self.error_callbacks: list[Callable[[BaseException], object]] = []

    def after(self, callback: Callable[[Any], object]) -> None:
        self.after_callbacks.append(callback)

    def on_error(self, callback: Callable[[BaseException], object]) -> None:
        self.error_callbacks.append(callback)

    def __repr__(self) -> str:
        return f"ActionCall({self.store.store_id}.{self.name}, args={self.args!r}, kwargs={self.kwargs!r})"


class Action(Generic[P, R]):
    """Shared part of sync and async action descriptors."""

    is_async: bool = False

    def __init__(self, fn: Callable[..., Any], *, concurrency: Concurrency = "merge", atomic: bool = False):
        if concurrency not in _POLICIES:
            raise ValueError(f"concurrency must be one of {sorted(_POLICIES)}, not {concurrency!r}")
        self.fn = fn
        self.name: str = fn.__name__
        self.concurrency: Concurrency = concurrency
        self.atomic = atomic
        self.runner_of: RunnerOf | None = None  # set by the Store class that declares (or inherits) it
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _bind(self, obj: Store[Any]) -> Callable[..., Any]:
        if self.runner_of is None:
            raise TypeError(f"action {self.name!r} is only usable on a quvel_store.Store subclass")
        run = self.runner_of(obj)

        def bound(*args: Any, **kwargs: Any) -> Any:
            return run(self, args, kwargs)

        bound.__name__ = self.name
        bound.__qualname__ = f"{type(obj).__qualname__}.{self.name}"
        bound.__doc__ = self.fn.__doc__
        bound.__quvel_action__ = self  # type: ignore[attr-defined]
        obj.__dict__[self.name] = bound  # later lookups skip the descriptor
        return bound


class SyncAction(Action[P, R]):
    """A synchronous action: calling it runs it now and returns its result."""

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> SyncAction[P, R]: ...

    @overload
    def __get__(self, obj: Store[Any], owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: Store[Any] | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self._bind(obj)


class AsyncAction(Action[P, R]):
    """An async action: calling it starts a task on the running loop and returns it (await it or not)."""

    is_async = True

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> AsyncAction[P, R]: ...

    @overload
    def __get__(self, obj: Store[Any], owner: type | None = None) -> Callable[P, asyncio.Task[R]]: ...

    def __get__(self, obj: Store[Any] | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self._bind(obj)


class _ActionDecorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]
    ) -> AsyncAction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R]) -> SyncAction[P, R]: ...


@overload
def action(  # type: ignore[overload-overlap]
    fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /
) -> AsyncAction[P, R]: ...


@overload
def action(fn: Callable[Concatenate[Any, P], R], /) -> SyncAction[P, R]: ...


@overload
def action(*, concurrency: Concurrency = "merge", atomic: bool = False) -> _ActionDecorator: ...


def action(
    fn: Callable[..., Any] | None = None, /, *, concurrency: Concurrency = "merge", atomic: bool = False
) -> Any:
    """Declare a store method as an action (``@action`` or ``@action(concurrency=..., atomic=...)``).

    ``concurrency`` (async actions) decides what a call does while earlier calls still run: ``merge``
    runs them side by side, ``switch`` cancels the earlier ones, ``concat`` queues behind them, and
    ``exhaust`` ignores the new call and returns the running call's task. ``atomic=True`` makes all
    of the action's writes one commit that is rolled back if the action raises (for an async action,
    the writes of its own task across its awaits; other tasks' writes commit meanwhile, see batch()).
    """

    if concurrency not in _POLICIES:
        raise ValueError(f"concurrency must be one of {sorted(_POLICIES)}, not {concurrency!r}")

    def decorate(f: Callable[..., Any]) -> Any:
        if inspect.iscoroutinefunction(f):
            return AsyncAction(f, concurrency=concurrency, atomic=atomic)
        if concurrency != "merge":
            raise ValueError("a concurrency policy only applies to async actions")
        return SyncAction(f, atomic=atomic)

    if fn is not None:
        return decorate(fn)
    return decorate
