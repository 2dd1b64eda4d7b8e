"""``store.select(fn)``: a shared, replaying, distinct-until-changed Observable of ``fn(state)``.

While ``fn`` runs it sees the state through a tracker that records which field paths it reads. A
commit reports the paths it wrote; a selection recomputes only when one of them overlaps a path it
read, so with 1,000 selections on a store a write to one field recomputes only the ones reading it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel
from reactivex import Observable, abc
from reactivex.disposable import Disposable

if TYPE_CHECKING:
    from quvel_store._subscriptions import Subscriptions

__all__ = ["Selection", "paths_overlap"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Loc = tuple[str | int, ...]
ROOT: Loc = ()


def paths_overlap(read: Iterable[Loc], written: Iterable[Loc]) -> bool:
    """Whether a write to any of ``written`` can change a value read at any of ``read``."""
    written = tuple(written)
    for r in read:
        for w in written:
            n = min(len(r), len(w))
            if r[:n] == w[:n]:
                return True
    return False


class _Tracker:
    """Read-through view of a model that records the field paths read from it."""

    __slots__ = ("_t_deps", "_t_obj", "_t_path")
    _t_deps: set[Loc]
    _t_obj: BaseModel
    _t_path: Loc

    def __init__(self, obj: BaseModel, path: Loc, deps: set[Loc]) -> None:
        object.__setattr__(self, "_t_obj", obj)
        object.__setattr__(self, "_t_path", path)
        object.__setattr__(self, "_t_deps", deps)

    def __getattr__(self, name: str) -> Any:
        obj = self._t_obj
        if name in type(obj).model_fields:
            value = obj.__dict__[name]
            path = (*self._t_path, name)
            if isinstance(value, BaseModel):
                return _Tracker(value, path, self._t_deps)
            self._t_deps.add(path)
            return value
        # A method, property or pydantic API: it may read anything below this point.
        self._t_deps.add(self._t_path)
        return getattr(obj, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type[Any]:
        return type(self._t_obj)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._t_obj, name, value)  # frozen: raises StateMutationError

    def _t_whole(self) -> BaseModel:
        self._t_deps.add(self._t_path)
        obj: BaseModel = self._t_obj
        return obj

    def __eq__(self, other: object) -> bool:
        return bool(self._t_whole() == _unwrap(other))

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Any:
        return iter(self._t_whole())

    def __repr__(self) -> str:
        return repr(self._t_whole())


def _unwrap(value: Any) -> Any:
    if type(value) is _Tracker:
        return value._t_whole()
    if type(value) is tuple:
        return tuple(_unwrap(v) for v in value)
    if type(value) is list:
        return [_unwrap(v) for v in value]
    if type(value) is dict:
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def evaluate(fn: Callable[[Any], T], state: BaseModel) -> tuple[T, frozenset[Loc]]:
    """Run ``fn`` on a tracker of ``state``; returns its (unwrapped) value and the paths it read."""
    deps: set[Loc] = set()
    value = _unwrap(fn(_Tracker(state, ROOT, deps)))
    return value, frozenset(deps)


def _default_equal(a: Any, b: Any) -> bool:
    return a is b or bool(a == b)


class Selection(Observable[T], Generic[T]):
    """The Observable returned by ``store.select``: one shared computation, replaying its value."""

    def __init__(self, subs: Subscriptions, fn: Callable[[Any], T], equal: Callable[[T, T], bool] | None):
        super().__init__()
        self._subs = subs
        self._fn = fn
        self._equal = equal or _default_equal
        self._observers: list[abc.ObserverBase[T]] = []
        self._value: Any = None
        self._deps: frozenset[Loc] = frozenset()
        self._tops: frozenset[str] | None = None  # None: depends on the whole state
        self._active = False
        self.recomputations = 0

    # ---- driven by the store's Subscriptions (on_commit, complete) ------------------------------------
    def _compute(self, state: BaseModel) -> Any:
        self.recomputations += 1
        value, deps = evaluate(self._fn, state)
        self._deps = deps
        tops: frozenset[str] | None = None if ROOT in deps or not deps else frozenset(str(d[0]) for d in deps)
        if tops != self._tops:
            self._subs.reindex(self, self._tops, tops)
            self._tops = tops
        return value

    def on_commit(self, state: BaseModel, changed: frozenset[Loc]) -> None:
        """Internal: a commit that wrote ``changed`` was delivered; recompute if it may matter."""
        if self._tops is not None and not paths_overlap(self._deps, changed):
            return
        try:
            value = self._compute(state)
        except Exception as exc:
            self._emit_error(exc)
            return
        if self._equal(value, self._value):
            return
        self._value = value
        for observer in tuple(self._observers):
            try:
                observer.on_next(value)
            except Exception as exc:
                self._subs.report("subscriber", exc)

    def _emit_error(self, exc: Exception) -> None:
        observers = tuple(self._observers)
        self._deactivate()
        self._observers.clear()
        for observer in observers:
            observer.on_error(exc)

    def complete(self) -> None:
        """Internal: the store is disposed; complete every subscriber."""
        observers = tuple(self._observers)
        self._deactivate()
        self._observers.clear()
        for observer in observers:
            observer.on_completed()

    def _deactivate(self) -> None:
        if self._active:
            self._active = False
            self._subs.reindex(self, self._tops, None, remove=True)
            self._tops = None
            self._value = None
            self._deps = frozenset()

    # ---- Observable -----------------------------------------------------------------------------------
    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        # a subscriber on another thread is attached on the loop: its first value is delivered there too
        return self._subs.runtime.defer(lambda: self._attach(observer))

    def _attach(self, observer: abc.ObserverBase[T]) -> abc.DisposableBase:
        subs = self._subs
        if subs.closed:
            observer.on_completed()
            return Disposable()
        if not self._active:
            try:
                self._value = self._compute(subs.replay_state())
            except Exception as exc:
                observer.on_error(exc)
                return Disposable()
            self._active = True
            if self._tops is None:
                subs.reindex(self, None, None)
        self._observers.append(observer)
        observer.on_next(self._value)

        def dispose() -> None:
            try:
                self._observers.remove(observer)
            except ValueError:
                return
            if not self._observers:
                self._deactivate()

        disposable = Disposable(dispose)
        subs.adopt(disposable, detached=False)
        return disposable
