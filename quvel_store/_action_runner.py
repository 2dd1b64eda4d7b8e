"""Running one store's actions: ``on_action`` hooks, the app's action stream, test stubs, and for async
actions the task, its concurrency policy (merge / switch / concat / exhaust) and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reactivex import abc
from reactivex.disposable import Disposable

from quvel_store._actions import Action, ActionCall
from quvel_store._events import ActionEvent, ActionPhase
from quvel_store._runtime import running_loop
from quvel_store.errors import ActionError, LoopBindingError, StoreDisposedError

if TYPE_CHECKING:
    from quvel_store._runtime import Runtime
    from quvel_store._scope import Scope
    from quvel_store._store import Store
    from quvel_store._subscriptions import Subscriptions

__all__ = ["ActionRunner"]

logger = logging.getLogger(__name__)


class _ActionSlot:
    """Per store and async action: the calls in flight (for switch/exhaust) and the queue tail (concat)."""

    __slots__ = ("running", "tail")

    def __init__(self) -> None:
        self.running: list[asyncio.Task[Any]] = []
        self.tail: asyncio.Task[Any] | None = None


class ActionRunner:
    """One store's actions: runs them, tells hooks and the action stream, owns the async ones' tasks."""

    def __init__(self, store: Store[Any], runtime: Runtime, subs: Subscriptions, scope: Scope) -> None:
        self.store = store
        self.scope = scope
        self.store_id = store.store_id
        self.runtime = runtime
        self.subs = subs
        self.hooks: tuple[Callable[[ActionCall], object], ...] = ()
        self._slots: dict[str, _ActionSlot] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_hook(self, callback: Callable[[ActionCall], object]) -> abc.DisposableBase:
        self.hooks = (*self.hooks, callback)

        def remove() -> None:
            hooks = list(self.hooks)
            with contextlib.suppress(ValueError):
                hooks.remove(callback)
            self.hooks = tuple(hooks)

        return Disposable(remove)

    def close(self) -> None:
        """The store is disposed: cancel its running async actions and forget the hooks."""
        for task in list(self._tasks):
            task.cancel()
        self.hooks = ()

    def run(self, action: Action[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        store = self.store
        if store.disposed:
            raise StoreDisposedError(f"store {self.store_id!r} is disposed; get a new one with app.use()")
        runtime = self.runtime
        if running_loop() is not runtime.loop:
            runtime.check_thread(f"action {self.store_id}.{action.name}()")
        stub = runtime.stub_action
        if stub is not None and stub(store, action.name, args, kwargs):
            return _completed_task(None) if action.is_async else None
        if action.is_async:
            return self._start_async(action, args, kwargs)
        call_id = next(runtime.call_ids)
        if runtime.record_call is not None:
            runtime.record_call((call_id, args, kwargs, self.store_id, action.name, runtime.action_var.get()))
        actions = runtime.actions
        # Nobody watching (the usual case in a hot loop): no ActionCall, no ActionEvent, no calls.
        call = self._started(action.name, args, kwargs, call_id) if self.hooks or actions.observers else None
        token = runtime.action_var.set((store, action.name, call_id))
        scope_token = runtime.scope_var.set(self.scope)  # what the action subscribes to is the store's
        try:
            if action.atomic:
                with store.batch():
                    result = action.fn(store, *args, **kwargs)
            else:
                result = action.fn(store, *args, **kwargs)
        except BaseException as exc:
            runtime.scope_var.reset(scope_token)
            runtime.action_var.reset(token)
            if call is not None or actions.observers:
                self._failed(call, action.name, args, kwargs, call_id=call_id, error=exc)
            raise
        runtime.scope_var.reset(scope_token)
        runtime.action_var.reset(token)
        if call is not None or actions.observers:
            self._succeeded(call, action.name, args, kwargs, call_id=call_id, result=result)
        return result

    def _started(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], call_id: int
    ) -> ActionCall | None:
        call: ActionCall | None = None
        if self.hooks:
            call = ActionCall(self.store, name, args, kwargs, call_id)
            for hook in self.hooks:
                try:
                    hook(call)
                except Exception as exc:
                    self.subs.report("hook", exc)
        if self.runtime.actions.observers:
            self.runtime.emit_action(
                ActionEvent(ActionPhase.START, self.store_id, name, call_id, args, kwargs)
            )
        return call

    def _succeeded(
        self,
        call: ActionCall | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: int,
        result: Any,
    ) -> None:
        if call is not None:
            for cb in call.after_callbacks:
                try:
                    cb(result)
                except Exception as exc:
                    self.subs.report("hook", exc)
        if self.runtime.actions.observers:
            self.runtime.emit_action(
                ActionEvent(ActionPhase.SUCCESS, self.store_id, name, call_id, args, kwargs, result=result)
            )

    def _failed(
        self,
        call: ActionCall | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: int,
        error: BaseException,
    ) -> None:
        if call is not None:
            for cb in call.error_callbacks:
                try:
                    cb(error)
                except Exception as exc:
                    self.subs.report("hook", exc)
        if self.runtime.actions.observers:
            self.runtime.emit_action(
                ActionEvent(ActionPhase.ERROR, self.store_id, name, call_id, args, kwargs, error=error)
            )

    def _start_async(
        self, action: Action[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Task[Any]:
        runtime = self.runtime
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ActionError(
                f"async action {self.store_id}.{action.name} needs a running event loop; call it from async "
                f"code, or from another thread with app.call_threadsafe(store.{action.name}, ...)"
            ) from None
        slot = self._slots.get(action.name)
        if slot is None:
            slot = self._slots[action.name] = _ActionSlot()
        policy = action.concurrency
        if policy == "exhaust" and slot.running:
            return slot.running[0]
        if policy == "switch":
            for running in slot.running:
                running.cancel()
        previous = slot.tail if policy == "concat" else None
        call_id = next(runtime.call_ids)
        if runtime.record_call is not None:
            runtime.record_call((call_id, args, kwargs, self.store_id, action.name, runtime.action_var.get()))
        call = self._started(action.name, args, kwargs, call_id)
        task = loop.create_task(
            self._async_body(action, call, args, kwargs, call_id=call_id, previous=previous)
        )
        slot.running.append(task)
        if policy == "concat":
            slot.tail = task
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            with contextlib.suppress(ValueError):
                slot.running.remove(t)
            if slot.tail is t:
                slot.tail = None
            if not t.cancelled() and t.exception() is not None:
                logger.debug("async action %s.%s failed: %r", self.store_id, action.name, t.exception())

        task.add_done_callback(done)
        return task

    async def _async_body(
        self,
        action: Action[Any, Any],
        call: ActionCall | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: int,
        previous: asyncio.Task[Any] | None,
    ) -> Any:
        try:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            # (the task runs in its own copy of the context: nothing to reset afterwards)
            self.runtime.action_var.set((self.store, action.name, call_id))
            self.runtime.scope_var.set(self.scope)
            if action.atomic:
                with self.store.batch():
                    result = await action.fn(self.store, *args, **kwargs)
            else:
                result = await action.fn(self.store, *args, **kwargs)
        except BaseException as exc:
            self._failed(call, action.name, args, kwargs, call_id=call_id, error=exc)
            raise
        self._succeeded(call, action.name, args, kwargs, call_id=call_id, result=result)
        return result


def _completed_task(value: Any) -> asyncio.Task[Any]:
    async def done() -> Any:
        return value

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise LoopBindingError("a stubbed async action still needs a running event loop") from None
    return loop.create_task(done())
