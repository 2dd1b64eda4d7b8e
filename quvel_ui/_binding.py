"""What both bindings share: one subscription from an Observable (usually ``store.select(...)``) to a
UI target, which stops by itself once the UI object it feeds is gone."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reactivex import Observable
from reactivex.abc import DisposableBase

from quvel_store import QuvelError

__all__ = ["Binding", "BindingError", "Target"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Where a value goes: the name of an attribute to assign (a Textual reactive, a NiceGUI ``text``), or a
#: function called with the value.
Target = str | Callable[[T], object]


class BindingError(QuvelError, TypeError):
    """A binding was set up wrongly (no Observable, a target that is neither a name nor a function, a
    UI object that is not mounted yet); nothing was subscribed."""


def resolve_target(owner: object, target: Target[T]) -> Callable[[T], object]:
    """``target`` as a function of the value; an attribute name must already exist on ``owner``."""
    if isinstance(target, str):
        if not hasattr(owner, target):
            raise BindingError(f"{type(owner).__name__} has no attribute {target!r} to bind to")

        def assign(value: T) -> None:
            setattr(owner, target, value)

        return assign
    if callable(target):
        return target
    raise BindingError(
        f"a binding target is an attribute name or a callable, got {type(target).__name__} {target!r}"
    )


class Binding(Generic[T]):
    """``source`` feeding ``apply`` while ``alive()`` holds.

    Values are applied on the thread that made the binding (the UI's loop): quvel delivers commits on
    the app's loop, which must be the UI's loop, but an Observable from elsewhere (a worker thread)
    is hopped over with ``call_soon_threadsafe``. The first value seen after the owner is gone ends
    the binding instead of touching a dead widget. Errors from the source are logged, not raised into
    the UI; an error raised by ``apply`` reaches the store, which reports it on ``store.errors``.
    """

    def __init__(
        self,
        source: Observable[T],
        apply: Callable[[T], object],
        *,
        alive: Callable[[], bool],
        name: str,
    ) -> None:
        if not isinstance(source, Observable):
            raise BindingError(
                f"bind() needs an Observable such as store.select(fn), got {type(source).__name__}"
            )
        self.name = name
        self.values = 0
        self._apply = apply
        self._alive = alive
        self._thread = threading.get_ident()
        self._loop = asyncio.get_running_loop()
        self._disposed = False
        self._subscription: DisposableBase | None = None
        subscription = source.subscribe(self._on_next, self._on_error)
        if self._disposed:  # the replayed first value found the owner already gone
            subscription.dispose()
        else:
            self._subscription = subscription

    @property
    def disposed(self) -> bool:
        return self._disposed

    def dispose(self) -> None:
        """End the subscription (idempotent)."""
        self._disposed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()

    def _on_next(self, value: T) -> None:
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._on_next, value)
            return
        if self._disposed:
            return
        if not self._alive():
            logger.debug("binding %s: its owner is gone; unsubscribing", self.name)
            self.dispose()
            return
        self.values += 1
        self._apply(value)

    def _on_error(self, error: Exception) -> None:
        logger.warning("binding %s: the source failed: %r", self.name, error)


def describe(owner: Any, target: object) -> str:
    return (
        f"{type(owner).__name__}.{target if isinstance(target, str) else getattr(target, '__name__', 'fn')}"
    )
