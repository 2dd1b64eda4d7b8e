"""One store's observers: ``subscribe`` listeners, ``observe`` streams, ``select`` selections, and the
store's error stream; ``notify`` delivers one commit to them (called by the runtime's queue).

A commit can be made while earlier ones are still queued; observers must then start from the state
they last saw, not the newest one, so this object also tracks what has been delivered.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from quvel_store._events import MutationEvent, StoreErrorEvent

if TYPE_CHECKING:
    from quvel_store._runtime import Runtime
    from quvel_store._scope import Scope
    from quvel_store._select import Selection

__all__ = ["Subscriptions"]

logger = logging.getLogger(__name__)


class _Listener:
    __slots__ = ("active", "fn", "order")

    def __init__(self, fn: Callable[[MutationEvent, Any], object], order: int) -> None:
        self.fn = fn
        self.order = order
        self.active = True


class Subscriptions:
    """Everything that watches one store; owned by the store, driven by the runtime's queue."""

    def __init__(self, store_id: str, runtime: Runtime, scope: Scope, current: Callable[[], Any]) -> None:
        self.store_id = store_id
        self.runtime = runtime
        self.scope = scope  # the store's own scope (its subscriptions do not join it twice)
        self.current = current  # the store's current state (no read tracking)
        self.closed = False
        self.listeners: tuple[_Listener, ...] = ()
        self.selections: set[Selection[Any]] = set()
        self._errors: Subject[StoreErrorEvent] | None = None  # built when watched: most stores never are
        self.undelivered = 0  # commits queued and not yet delivered
        self.delivered: Any = None  # the state observers last saw, while commits are undelivered
        self._selections_by_top: dict[str, set[Selection[Any]]] = {}
        self._selections_all: set[Selection[Any]] = set()
        self._state_observers: list[abc.ObserverBase[Any]] = []
        # registration order, shared by listeners and selections: delivery follows it (see notify)
        self._next_order = itertools.count()
        self._order: dict[Selection[Any], int] = {}

    @property
    def errors(self) -> Subject[StoreErrorEvent]:
        """The error stream (built on first use; already completed if the store is closed)."""
        errors = self._errors
        if errors is None:
            errors = self._errors = Subject()
            if self.closed:
                errors.on_completed()
        return errors

    # ---- registration --------------------------------------------------------------------------------
    def adopt(self, disposable: abc.DisposableBase, detached: bool) -> None:
        """Tie a subscription to the scope active now (unless detached, or it is the store's own)."""
        if detached:
            return
        scope = self.runtime.scope_var.get()
        if scope is not None and scope is not self.scope:
            scope.add(disposable)

    def subscribe(
        self, callback: Callable[[MutationEvent, Any], object], detached: bool
    ) -> abc.DisposableBase:
        listener = _Listener(callback, next(self._next_order))
        self.listeners = (*self.listeners, listener)

        def remove() -> None:
            if listener.active:
                listener.active = False
                self.listeners = tuple(x for x in self.listeners if x is not listener)

        disposable = Disposable(remove)
        self.adopt(disposable, detached)
        return disposable

    def observe(self) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            # from another thread, attached on the loop: the replayed state is delivered there too
            return self.runtime.defer(lambda: attach(observer))

        def attach(observer: abc.ObserverBase[Any]) -> abc.DisposableBase:
            if self.closed:
                observer.on_completed()
                return Disposable()
            self._state_observers.append(observer)

            def forward(_event: MutationEvent, state: Any) -> None:
                observer.on_next(state)

            sub = self.subscribe(forward, detached=True)
            observer.on_next(self.replay_state())

            def dispose() -> None:
                sub.dispose()
                with contextlib.suppress(ValueError):
                    self._state_observers.remove(observer)

            disposable = Disposable(dispose)
            self.adopt(disposable, detached=False)
            return disposable

        return Observable(subscribe)

    def replay_state(self) -> Any:
        """The latest state already delivered to observers (what a new observer should start from)."""
        if self.undelivered and self.delivered is not None:
            return self.delivered
        return self.current()

    def reindex(
        self,
        selection: Selection[Any],
        old: frozenset[str] | None,
        new: frozenset[str] | None,
        remove: bool = False,
    ) -> None:
        """Move ``selection`` from the top-level fields ``old`` to ``new`` (None: the whole state)."""
        by_top = self._selections_by_top
        if old is None:
            self._selections_all.discard(selection)
        else:
            for top in old:
                group = by_top.get(top)
                if group is not None:
                    group.discard(selection)
                    if not group:
                        del by_top[top]
        if remove:
            self.selections.discard(selection)
            self._order.pop(selection, None)
            return
        if selection not in self.selections:
            self.selections.add(selection)
            self._order[selection] = next(self._next_order)
        if new is None:
            self._selections_all.add(selection)
        else:
            for top in new:
                by_top.setdefault(top, set()).add(selection)

    # ---- delivery (the runtime's queue calls this in commit order, never re-entrantly) ---------------
    def notify(self, event: MutationEvent, state: Any) -> None:
        """Deliver one commit: every listener (``subscribe``, ``observe``) and every selection it may
        change, together in registration order (a selection registers when its first observer
        subscribes). Something registered during this delivery first hears of the next commit."""
        self.undelivered -= 1
        self.delivered = state
        try:
            targets = self._targets(event.changed) if self.selections else None
            if not targets:
                for listener in self.listeners:
                    if listener.active:
                        try:
                            listener.fn(event, state)
                        except Exception as exc:
                            self.report("subscriber", exc)
                return
            order = self._order
            ordered = sorted(targets, key=order.__getitem__) if len(targets) > 1 else list(targets)
            changed = event.changed
            selections = self.selections
            i = 0
            for listener in self.listeners:
                mark = listener.order
                while i < len(ordered) and order.get(ordered[i], -1) < mark:
                    if ordered[i] in selections:
                        ordered[i].on_commit(state, changed)
                    i += 1
                if listener.active:
                    self._call(listener, event, state)
            for selection in ordered[i:]:
                if selection in selections:  # (a listener may have ended it during this delivery)
                    selection.on_commit(state, changed)
        finally:
            if not self.undelivered:
                self.delivered = None

    def _targets(self, changed: frozenset[tuple[str | int, ...]]) -> set[Selection[Any]]:
        """The selections a commit that wrote ``changed`` may change (by the top-level fields they read)."""
        if () in changed:
            return set(self.selections)
        targets = set(self._selections_all)
        by_top = self._selections_by_top
        for path in changed:
            hits = by_top.get(path[0])  # type: ignore[arg-type]
            if hits:
                targets.update(hits)
        return targets

    def _call(self, listener: _Listener, event: MutationEvent, state: Any) -> None:
        try:
            listener.fn(event, state)
        except Exception as exc:
            self.report("subscriber", exc)

    def report(self, source: str, error: BaseException, item: Any = None) -> None:
        """An error caught to keep going: to ``store.errors`` if watched, else to the log."""
        if self._errors is not None and self._errors.observers:
            logger.debug("store %r caught an error from %s: %r", self.store_id, source, error)
            self._errors.on_next(StoreErrorEvent(self.store_id, source, error, item))
        else:
            logger.error("store %r: %s raised %r", self.store_id, source, error, exc_info=error)

    # ---- teardown ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Complete every selection, observe stream and the error stream; drop the listeners."""
        self.closed = True
        for selection in list(self.selections):
            selection.complete()
        for observer in list(self._state_observers):
            with contextlib.suppress(Exception):
                observer.on_completed()
        self._state_observers.clear()
        for listener in self.listeners:
            listener.active = False
        self.listeners = ()
        if self._errors is not None:
            self._errors.on_completed()
