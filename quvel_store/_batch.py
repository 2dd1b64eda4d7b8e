"""Per-task transactions: what ``store.batch()`` and atomic actions hold while they are open.

A batch belongs to the task that opened it (and to what that task calls synchronously): its writes go
to the batch's private working state, which only that task sees through ``store.state``; other tasks
keep reading and committing the store's committed state. A nested batch (or nested atomic action) in
the same task is a savepoint: if it raises, exactly its own writes are undone and the outer batch goes
on. When the outermost batch ends it commits once. If another task committed to the store meanwhile,
the batch's writes are replayed on top of that commit, unless the two wrote an overlapping path: then
:class:`~quvel_store.errors.TransactionConflictError` is raised and the batch is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from quvel_store._draft import Txn, merge_into, new_model_draft
from quvel_store._events import MutationKind
from quvel_store._schema import StateSchema
from quvel_store._select import paths_overlap
from quvel_store.errors import TransactionConflictError

__all__ = ["Batch", "Savepoint", "current_task", "overlapping", "replay"]

Loc = tuple[str | int, ...]
_WHOLE_STATE = (MutationKind.REPLACE, MutationKind.RESET, MutationKind.HYDRATE)


def current_task() -> asyncio.Task[Any] | None:
    """The running task, or None outside one (plain sync code, another thread)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class Batch:
    """One open outermost batch on one store, owned by one task."""

    __slots__ = ("changed", "foreign", "open", "start", "task", "work", "writes")

    def __init__(self, start: BaseModel, task: asyncio.Task[Any] | None) -> None:
        self.start = start  # the committed state when the batch opened
        self.work: Any = start  # the batch's own state: start + its writes (seen only by its task)
        self.task = task
        self.open = True
        self.writes: list[tuple[MutationKind, Any]] = []
        self.changed: set[Loc] = set()
        self.foreign: set[Loc] = set()  # paths other tasks committed while this batch was open

    def savepoint(self) -> Savepoint:
        return Savepoint(self)


class Savepoint:
    """Where a nested batch began: rolling back to it undoes exactly the nested batch's writes."""

    __slots__ = ("batch", "changed", "count", "work")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.work = batch.work
        self.count = len(batch.writes)
        self.changed = set(batch.changed)

    def rollback(self) -> None:
        batch = self.batch
        batch.work = self.work
        del batch.writes[self.count :]
        batch.changed = self.changed


def overlapping(batch: Batch) -> list[Loc]:
    """The paths the batch wrote that another task's commit also wrote (empty: no conflict)."""
    foreign = batch.foreign
    return [path for path in batch.changed if paths_overlap((path,), foreign)]


def replay(
    schema: StateSchema,
    store_id: str,
    state: BaseModel,
    batch: Batch,
    initial: Callable[[], BaseModel],
) -> Any:
    """The batch's writes applied again, in order, on top of ``state`` (the newer committed state).

    Patch functions run a second time here, on the newer state (they are reducers of the draft they get).
    A write that no longer validates turns into a TransactionConflictError; ``state`` is left as it was.
    """
    for kind, payload in batch.writes:
        if kind in _WHOLE_STATE:
            state = initial() if kind is MutationKind.RESET else payload
            continue
        txn = Txn(schema, store_id)
        root = new_model_draft(txn, None, None, state)
        try:
            if isinstance(payload, Mapping):
                merge_into(root, payload)
            else:
                payload(root)
            state = txn.finish(root)
        except Exception as exc:
            txn.rollback(root)
            raise TransactionConflictError(
                store_id, batch.foreign, f" and the batch's {kind.value} no longer applies on top ({exc})"
            ) from exc
        txn.close(root)
        del root
    return state
