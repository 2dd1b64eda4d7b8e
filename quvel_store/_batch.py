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
import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from quvel_store._draft import Txn, merge_into, new_model_draft
from quvel_store._events import MutationKind
from quvel_store._schema import StateSchema
from quvel_store._select import paths_overlap
from quvel_store.errors import TransactionConflictError

if TYPE_CHECKING:
    from quvel_store._runtime import Runtime

__all__ = ["Batch", "Savepoint", "Transactions", "current_task", "overlapping", "replay"]

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


class Transactions:
    """The outermost batches open on one store (one per task at most), and how they open, nest and end.

    ``batches`` is a plain list the store also holds, so its hot paths test ``if batches:`` and pay
    nothing more while no batch is open.
    """

    __slots__ = ("batches", "key", "runtime")

    def __init__(self, runtime: Runtime, key: Any) -> None:
        self.runtime = runtime
        self.key = key  # the store: the key of this store's batch in the runtime's context variable
        self.batches: list[Batch] = []

    def mine(self) -> Batch | None:
        """The batch the running task holds open on this store."""
        return self.runtime.batch_of(self.key) if self.batches else None

    @contextlib.contextmanager
    def hold(self, committed: BaseModel) -> Iterator[Batch | None]:
        """Open this task's batch (yields it) or, nested, a savepoint of it (yields None).

        The caller commits a yielded batch's writes after the block, if it ended without raising.
        """
        mine = self.mine()
        if mine is not None:
            savepoint = mine.savepoint()
            try:
                yield None
            except BaseException:
                if mine.open:
                    savepoint.rollback()
                raise
            return
        batch = Batch(committed, current_task())
        var = self.runtime.batch_var
        held = var.get()
        token = var.set({self.key: batch} if held is None else {**held, self.key: batch})
        self.batches.append(batch)
        self.runtime.open_batches += 1
        try:
            yield batch
        finally:
            self.close(batch, token)

    def close(self, batch: Batch, token: contextvars.Token[Any] | None) -> None:
        if batch.open:
            batch.open = False
            self.batches.remove(batch)
            self.runtime.open_batches -= 1
        if token is not None:
            # (ended in another context than it began: batch.open = False is enough)
            with contextlib.suppress(ValueError):
                self.runtime.batch_var.reset(token)

    def close_all(self) -> None:
        for batch in tuple(self.batches):
            self.close(batch, None)

    def settle(
        self,
        batch: Batch,
        state: BaseModel,
        schema: StateSchema,
        store_id: str,
        initial: Callable[[], BaseModel],
    ) -> Any:
        """The state the ended ``batch`` commits, on top of ``state`` (what other tasks committed
        meanwhile); TransactionConflictError when they wrote a path the batch wrote too."""
        if state is batch.start:
            return batch.work
        contested = overlapping(batch)
        if contested:
            raise TransactionConflictError(store_id, contested)
        return replay(schema, store_id, state, batch, initial)
