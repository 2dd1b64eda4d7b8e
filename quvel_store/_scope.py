"""``Scope``: a group of subscriptions that end together (Vue's effect scope)."""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING

from reactivex import abc

if TYPE_CHECKING:
    from quvel_store._app import App

__all__ = ["Scope"]

logger = logging.getLogger(__name__)


class Scope:
    """A group of subscriptions that end together (Vue's effect scope).

    While a scope is active (``with scope:``), non-detached ``subscribe``/``on_action``/``observe``/
    ``select`` subscriptions also join it; ``scope.dispose()`` ends them all. Each store has one: what
    it subscribes to in ``on_init`` or its actions ends when it is disposed.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._var = app.runtime.scope_var
        self._disposables: list[abc.DisposableBase] = []
        self._tokens: list[contextvars.Token[Scope | None]] = []
        self.disposed = False

    def add(self, disposable: abc.DisposableBase) -> None:
        if self.disposed:
            disposable.dispose()
        else:
            self._disposables.append(disposable)

    def dispose(self) -> None:
        self.disposed = True
        items, self._disposables = self._disposables, []
        for d in reversed(items):
            try:
                d.dispose()
            except Exception:
                logger.exception("disposing a subscription of a scope failed")

    def __enter__(self) -> Scope:
        self._tokens.append(self._var.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._tokens.pop())
