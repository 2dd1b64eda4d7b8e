"""The records the store emits: one ``MutationEvent`` per commit, ``ActionEvent``s around actions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["ActionEvent", "ActionPhase", "MutationEvent", "MutationKind", "StoreErrorEvent"]

Loc = tuple[str | int, ...]


class MutationKind(enum.StrEnum):
    """What kind of write made a commit."""

    PATCH_OBJECT = "patch_object"  # store.patch({...})
    PATCH_FUNCTION = "patch_function"  # store.patch(fn)
    REPLACE = "replace"  # store.replace(state)
    RESET = "reset"  # store.reset()
    HYDRATE = "hydrate"  # app.hydrate(data)
    BATCH = "batch"  # with store.batch(): several writes, one commit


class MutationEvent(NamedTuple):
    """One commit of one store (an immutable record shared by every subscriber).

    ``payload`` is the patch mapping, the patch function, the new state (replace/hydrate), or for a
    batch the tuple of ``(kind, payload)`` of each write. ``action``/``action_id`` name the action that
    made the commit, if any. ``changed`` holds the paths written (``()`` means the whole state).
    """

    kind: MutationKind
    store_id: str
    payload: Any = None
    action: str | None = None
    action_id: int | None = None
    changed: frozenset[Loc] = frozenset()


class ActionPhase(enum.StrEnum):
    START = "start"
    SUCCESS = "success"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """An action call starting, or ending with a result or an error (``app.actions`` carries these)."""

    phase: ActionPhase
    store_id: str
    name: str
    call_id: int
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class StoreErrorEvent:
    """An error the store caught so that its streams keep flowing (``store.errors`` carries these).

    ``source`` is ``"connect"`` (a handler raised on ``item``, or the stream errored), ``"subscriber"``
    (a subscribe/observe callback raised), ``"hook"`` (an on_action hook raised) or ``"lifecycle"``.
    """

    store_id: str
    source: str
    error: BaseException
    item: Any = None
