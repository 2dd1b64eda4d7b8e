"""Errors of the store core (state, actions, lifecycle, hydration, threads); all are :class:`QuvelError`.

They live beside :mod:`quvel_store.errors` (the container's) and are re-exported from ``quvel_store``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from quvel_store.errors import QuvelError

__all__ = [
    "ActionError",
    "HydrationError",
    "InvalidStoreKeyError",
    "LoopBindingError",
    "PluginError",
    "SnapshotError",
    "StateMutationError",
    "StateValidationError",
    "StoreArgumentError",
    "StoreDefinitionError",
    "StoreDisposedError",
    "StoreError",
]

Loc = tuple[str | int, ...]


def _format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "<root>"


class StoreError(QuvelError):
    """Base of the store core's errors."""


class StoreDefinitionError(StoreError, TypeError):
    """A ``Store`` subclass is declared wrongly (no ``id``, no state model, a ':' in the id...)."""


class StoreArgumentError(StoreError, TypeError):
    """An argument to the store API has the wrong kind (a callback that is not callable, a source that is
    not an Observable, a container that is not a ``ServiceContainer``); refused at the call, nothing kept."""


class InvalidStoreKeyError(StoreError, ValueError):
    """``app.use(StoreClass, key=...)`` with a key that is not a non-empty str without ':'; no store made."""


class SnapshotError(StoreError, ValueError):
    """``app.snapshot()`` met a state it cannot dump as JSON; ``store_id`` names it, ``__cause__`` is why."""

    def __init__(self, store_id: str, message: str) -> None:
        self.store_id = store_id
        super().__init__(message)


class StateValidationError(StoreError, ValueError):
    """A write (patch, replace, hydrate, draft assignment) does not fit the store's state model.

    ``errors`` holds one dict per problem with ``loc`` (a tuple path from the state root), ``msg`` and
    ``type``, in pydantic's shape. Nothing was written: the store keeps the state it had.
    """

    def __init__(self, store_id: str, errors: Iterable[Mapping[str, Any]], *, what: str = "write") -> None:
        self.store_id = store_id
        self.errors: list[dict[str, Any]] = [
            {"loc": tuple(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors
        ]
        lines = [f"{_format_loc(e['loc'])}: {e['msg']} [type={e['type']}]" for e in self.errors]
        detail = "; ".join(lines) or "invalid state"
        super().__init__(f"store {store_id!r}: invalid {what}: {detail} (the state was left unchanged)")

    @property
    def fields(self) -> list[str]:
        """Dotted paths of the offending fields, e.g. ``["items[0].title"]``."""
        return [_format_loc(e["loc"]) for e in self.errors]


class HydrationError(StateValidationError):
    """``app.hydrate(data)`` found invalid data; no store was changed. ``by_store`` maps id -> errors."""

    def __init__(self, by_store: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        self.by_store: dict[str, list[dict[str, Any]]] = {}
        merged: list[dict[str, Any]] = []
        for sid, errs in by_store.items():
            copied = [dict(e) for e in errs]
            self.by_store[sid] = copied
            merged.extend(copied)
        first = next(iter(self.by_store), "?")
        super().__init__(first, merged, what="hydration data")
        if len(self.by_store) > 1:
            self.args = (f"{self.args[0]} (also invalid: {', '.join(list(self.by_store)[1:])})",)


class StateMutationError(StoreError, TypeError):
    """State snapshots are read-only, and drafts die with their patch: write through ``store.patch``."""


class StoreDisposedError(StoreError, RuntimeError):
    """The store (or its app) was disposed; get a fresh one with ``app.use(StoreClass)``."""


class ActionError(StoreError):
    """An action cannot run here (e.g. an async action called with no running event loop)."""


class PluginError(StoreError):
    """A plugin raised while it was applied to a store; ``__cause__`` is the plugin's exception."""


class LoopBindingError(StoreError, RuntimeError):
    """The app is bound to another event loop, or to none yet when a thread-safe call needs one."""
