"""The store runtime: what an app's stores share while they run (one per :class:`App`).

It is the seam for commit, transaction and notification: the notification queue (commits are
delivered in commit order, never re-entrantly), the read tracking of getters and the guard against
writes while one runs, the current action and scope (context variables), the app-wide mutation and
action streams, the event loop / thread the app belongs to, and the hooks the test kit sets. Stores
and the app call its methods; nothing else in it is reached from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from reactivex import abc
from reactivex.disposable import SingleAssignmentDisposable
from reactivex.subject import Subject

from quvel_store._batch import Batch, current_task
from quvel_store._events import ActionEvent, MutationEvent
from quvel_store._schema import StateSchema
from quvel_store.errors import LoopBindingError, StateMutationError

if TYPE_CHECKING:
    from quvel_store._getters import GetterCache
    from quvel_store._scope import Scope
    from quvel_store._store import Store
    from quvel_store._subscriptions import Subscriptions

__all__ = ["Runtime", "running_loop"]

# The running loop of the calling thread, or None: asyncio's C fast path for "am I on a loop?"
# (get_running_loop() raises instead, which costs more than the whole check on the no-loop path).
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop

StubHook = Callable[["Store[Any]", str, tuple[Any, ...], dict[str, Any]], bool]
InitialStateHook = Callable[["Store[Any]", Any], Any]
# (call_id, args, kwargs, store_id, action name, the calling action's (store, name, call_id) or None)
RecordedCall = tuple[int, tuple[Any, ...], dict[str, Any], str, str, "tuple[Store[Any], str, int] | None"]
RecordCallHook = Callable[[RecordedCall], object]


class Runtime:
    """Shared machinery of one app's stores; see the module docstring."""

    def __init__(self) -> None:
        self.schema = StateSchema()
        self.stores: dict[str, Store[Any]] = {}
        # notification queue: (the store's subscriptions, event, state as of that commit)
        self.queue: deque[tuple[Subscriptions, MutationEvent, Any]] = deque()
        self.draining = False
        # getter evaluation: one set of read getter caches per getter running, innermost last
        self.tracking: list[set[GetterCache]] = []
        self.evaluating: set[tuple[GetterCache, str]] = set()
        self.call_ids = itertools.count(1)
        self.action_var: contextvars.ContextVar[tuple[Store[Any], str, int] | None] = contextvars.ContextVar(
            f"quvel_store_action_{id(self):x}", default=None
        )
        self.scope_var: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
            f"quvel_store_scope_{id(self):x}", default=None
        )
        # the batches open in this task, per store (see _batch.py); open_batches counts them app-wide so
        # the common case (none open) costs one integer test
        self.batch_var: contextvars.ContextVar[Mapping[Store[Any], Batch] | None] = contextvars.ContextVar(
            f"quvel_store_batch_{id(self):x}", default=None
        )
        self.open_batches = 0
        self.mutations: Subject[MutationEvent] = Subject()
        self.actions: Subject[ActionEvent] = Subject()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id: int | None = None  # the owner loop's thread, once it has been seen running
        self.started = False  # the owner loop has run (so, when not running now, it has stopped)
        # test hooks (quvel_store.testing): None means "not stubbed" / "start from initial_state()"
        self.stub_action: StubHook | None = None
        self.initial_state: InitialStateHook | None = None
        # called with one RecordedCall tuple as each action call starts (one argument, so it can be a
        # bounded deque's append): a recorder (quvel_store.history) labels commits with their calls
        # (and the outermost call that led to them) without an ActionCall per call; None: nobody records
        self.record_call: RecordCallHook | None = None

    def batch_of(self, store: Store[Any]) -> Batch | None:
        """The batch the running task holds open on ``store`` (a child task does not inherit it)."""
        held = self.batch_var.get()
        if held is None:
            return None
        batch = held.get(store)
        if batch is None or not batch.open or batch.task is not current_task():
            return None
        return batch

    def in_batch(self) -> bool:
        """Whether the running task holds a batch open on any store (its getters then skip the cache)."""
        held = self.batch_var.get()
        if not held:
            return False
        task = current_task()
        return any(batch.open and batch.task is task for batch in held.values())

    def forget(self, store: Store[Any]) -> None:
        """A disposed store leaves the registry (a later ``app.use`` builds a fresh one)."""
        if self.stores.get(store.store_id) is store:
            del self.stores[store.store_id]

    # ---- notification queue -------------------------------------------------------------------------
    def drain(self) -> None:
        """Deliver queued commits in order; a commit made by a subscriber is queued behind the current
        one and delivered after it, never inside it."""
        queue = self.queue
        mutations = self.mutations
        self.draining = True
        try:
            while queue:
                target, event, state = queue.popleft()
                target.notify(event, state)
                if mutations.observers:
                    try:
                        mutations.on_next(event)
                    except Exception as exc:
                        target.report("subscriber", exc)
                del target, event, state  # the state must not stay referenced (in-place appends count refs)
        finally:
            self.draining = False

    @contextlib.contextmanager
    def holding_delivery(self) -> Iterator[None]:
        """Queue every commit made inside the block and deliver them after it (all-or-nothing writes)."""
        was_draining = self.draining
        self.draining = True
        try:
            yield
        finally:
            self.draining = was_draining
        if not was_draining and self.queue:
            self.drain()

    def emit_action(self, event: ActionEvent) -> None:
        if self.actions.observers:
            self.actions.on_next(event)

    # ---- getter evaluation --------------------------------------------------------------------------
    def refuse_write_in_getter(self, target: str) -> None:
        """Getters derive values; a write while one runs would change state during a read."""
        cache, name = next(iter(self.evaluating))
        raise StateMutationError(
            f"getter {cache.store_id}.{name} tried to write to store {target!r} while it was being read; "
            f"getters must not change state: do the write in an action and keep the getter pure"
        )

    @contextlib.contextmanager
    def setting_up(self) -> Iterator[None]:
        """A store first used inside a getter is being set up, not written by the getter: its plugins
        and on_init may patch it (restoring persisted state, say), so the getter-write guard pauses."""
        evaluating, self.evaluating = self.evaluating, set()
        try:
            yield
        finally:
            self.evaluating = evaluating

    # ---- event loop ownership (THE rule; docs/threads.md explains it to users) ----------------------
    # An app belongs to the event loop it is bound to: explicitly with app.bind_loop(loop), from any
    # thread, or on its first use inside a running loop. Code that reads or writes store state runs on
    # that loop. While the loop runs, any other thread is refused (LoopBindingError naming
    # call_threadsafe), and so is code running on another loop. While it is not running (before it
    # starts, between run_until_complete calls) nothing else can be touching the app, so any thread may.
    # A closed loop owns nothing: the next use inside a running loop binds again.
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Belong to ``loop``; callable from any thread (a loop not running yet reports when it starts)."""
        if self.loop is loop:
            return
        self.loop = loop
        self.thread_id = None
        self.started = False
        if running_loop() is loop:
            self._loop_started()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._loop_started)

    def _loop_started(self) -> None:
        self.thread_id = threading.get_ident()
        self.started = True

    def foreign_loop(self) -> asyncio.AbstractEventLoop | None:
        """The owner loop when the caller may not touch state here (another thread while it runs, or
        another running loop); None when it may (binding to the running loop if the app has no open one)."""
        running = running_loop()
        loop = self.loop
        if running is loop:
            return None
        if loop is None or loop.is_closed():
            if running is not None:
                self.bind(running)
            return None
        if running is not None or loop.is_running():
            return loop
        return None

    def check_thread(self, what: str) -> None:
        """Raise :class:`LoopBindingError` unless the caller may touch state now (see the rule above).

        Every entry point that reads or writes store state calls this (or tests ``running_loop() is
        runtime.loop`` first, the common case, and calls it otherwise)."""
        if running_loop() is self.loop:
            return
        loop = self.foreign_loop()
        if loop is None:
            return
        if running_loop() is not None:
            raise LoopBindingError(
                f"{what}: this app belongs to another event loop ({loop!r}); use it from there, or from "
                f"this loop's thread through app.call_threadsafe(...)"
            )
        raise LoopBindingError(
            f"{what} from thread {threading.current_thread().name!r}: this app belongs to an event loop "
            f"running in another thread; call it there through app.call_threadsafe(fn, *args)"
        )

    def defer(self, fn: Callable[[], abc.DisposableBase]) -> abc.DisposableBase:
        """Run ``fn`` (which subscribes something) on the owner loop when the caller is elsewhere, so its
        callbacks (a replayed first value included) run on the loop thread; the disposable works from
        any thread."""
        loop = self.foreign_loop()
        if loop is None:
            return fn()
        holder = SingleAssignmentDisposable()

        def run() -> None:
            if not holder.is_disposed:
                holder.disposable = fn()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError as exc:
            raise LoopBindingError(f"the app's event loop cannot take calls: {exc}") from exc
        return holder
