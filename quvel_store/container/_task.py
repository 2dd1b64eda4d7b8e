"""Observable task handles, after QuVel's TaskService without its UI parts (notifications, loaders).

``task = container.task.new_task(save_profile)``; ``await task.run(...)``; read ``task.state``
(``fresh | active | success | error``), ``task.result``, ``task.error`` and ``task.errors`` (the Laravel
field error bag of a :class:`ValidationFailed`), or subscribe to ``task.observe()``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

import reactivex
from reactivex import abc
from reactivex.subject import BehaviorSubject

from quvel_store.errors import TaskError, ValidationFailed

__all__ = ["Task", "TaskConcurrency", "TaskService", "TaskSnapshot", "TaskState"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

TaskState = Literal["fresh", "active", "success", "error"]
TaskConcurrency = Literal["drop", "switch", "parallel"]
"""What ``run()`` does while a run is active: ``drop`` the new call (it returns None), ``switch`` (cancel the
active run and start the new one), or run in ``parallel`` (only the latest run writes the task's state)."""


@dataclass(frozen=True)
class TaskSnapshot(Generic[T]):
    """The task's observable state at one moment."""

    state: TaskState
    result: T | None = None
    error: BaseException | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        return self.state == "active"


_Handler = Callable[[Any], Any]


class Task(Generic[P, T]):
    """One task handle: ``run()`` it any number of times, ``reset()`` it, observe its state."""

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str | None = None,
        should_run: Callable[[], bool | Awaitable[bool]] | None = None,
        on_success: Sequence[Callable[[T], Any]] = (),
        on_error: Sequence[Callable[[BaseException], Any]] = (),
        always: Sequence[Callable[[], Any]] = (),
        concurrency: TaskConcurrency = "drop",
    ) -> None:
        if not callable(fn):
            raise TaskError(f"new_task needs a callable, got {type(fn).__name__}")
        if concurrency not in ("drop", "switch", "parallel"):
            raise TaskError(f"concurrency must be 'drop', 'switch' or 'parallel', got {concurrency!r}")
        self._fn = fn
        self.name = name or getattr(fn, "__name__", "task")
        self._should_run = should_run
        self._on_success = tuple(on_success)
        self._on_error = tuple(on_error)
        self._always = tuple(always)
        self._concurrency: TaskConcurrency = concurrency
        self._subject: BehaviorSubject[TaskSnapshot[T]] = BehaviorSubject(TaskSnapshot("fresh"))
        self._generation = 0
        self._running: set[asyncio.Future[Any]] = set()

    # Observable state ---------------------------------------------------------------------------------------

    @property
    def snapshot(self) -> TaskSnapshot[T]:
        return self._subject.value

    @property
    def state(self) -> TaskState:
        return self._subject.value.state

    @property
    def result(self) -> T | None:
        return self._subject.value.result

    @property
    def error(self) -> BaseException | None:
        return self._subject.value.error

    @property
    def errors(self) -> dict[str, list[str]]:
        """The field error bag of the last failure (a 422 or a :class:`ValidationFailed`), else empty."""
        return dict(self._subject.value.errors)

    @property
    def is_active(self) -> bool:
        return self.state == "active"

    def observe(self) -> reactivex.Observable[TaskSnapshot[T]]:
        """Snapshots: the current one on subscribe, then one per state change.

        An observer whose ``on_next`` raises is logged and keeps its subscription; others are unaffected.
        """

        def subscribe(
            observer: abc.ObserverBase[TaskSnapshot[T]], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(snapshot: TaskSnapshot[T]) -> None:
                try:
                    observer.on_next(snapshot)
                except Exception:
                    logger.exception("task %r: an observer raised on %s", self.name, snapshot.state)

            return self._subject.subscribe(on_next, observer.on_error, observer.on_completed)

        return reactivex.create(subscribe)

    # Running ------------------------------------------------------------------------------------------------

    async def run(self, *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Run the task; returns its result, or None when it failed (see ``error``), was skipped by
        ``should_run``, or was dropped because a run was already active."""
        outcome = await self._run(args, kwargs, raise_errors=False)
        return outcome

    async def run_or_raise(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Like :meth:`run` but the task's exception propagates (the state still records it); a skipped
        or dropped run raises :class:`TaskError`."""
        return await self._run(args, kwargs, raise_errors=True)  # type: ignore[return-value]

    def reset(self) -> None:
        """Back to ``fresh`` with no result or error; an active run is cancelled."""
        self._generation += 1
        for running in list(self._running):
            running.cancel()
        self._emit(TaskSnapshot("fresh"))

    def dispose(self) -> None:
        """Cancel any active run and complete :meth:`observe`."""
        self.reset()
        self._subject.on_completed()

    async def _run(self, args: Any, kwargs: Any, *, raise_errors: bool) -> T | None:
        if self.is_active and self._concurrency == "drop":
            logger.debug("task %r already active; run dropped", self.name)
            if raise_errors:
                raise TaskError(f"task {self.name!r} is already running (concurrency='drop')")
            return None
        if self._should_run is not None:
            allowed = self._should_run()
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                if raise_errors:
                    raise TaskError(f"task {self.name!r} was not run: should_run returned false")
                return None
        if self._concurrency == "switch":
            for running in list(self._running):
                running.cancel()
        self._generation += 1
        generation = self._generation
        self._emit(TaskSnapshot("active"))  # as QuVel: the previous outcome is cleared when a run starts
        try:
            result = await self._call(args, kwargs)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                if generation == self._generation:  # the caller was cancelled: nothing finished
                    self._emit(TaskSnapshot("fresh"))
                raise
            # Our own run was cancelled by reset() or a 'switch' run; the caller is fine.
            if raise_errors:
                raise TaskError(f"task {self.name!r} was cancelled by reset() or a newer run") from None
            return None
        except Exception as exc:
            if generation == self._generation:
                bag = exc.errors if isinstance(exc, ValidationFailed) else {}
                self._emit(TaskSnapshot("error", error=exc, errors=bag))
                self._call_handlers(self._on_error, exc)
                await self._run_always()
            if raise_errors:
                raise
            return None
        if generation == self._generation:
            self._emit(TaskSnapshot("success", result=result))
            self._call_handlers(self._on_success, result)
            await self._run_always()
        return result

    async def _run_always(self) -> None:
        for handler in self._always:
            try:
                outcome = handler()
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("task %r: 'always' handler %r raised", self.name, handler)

    async def _call(self, args: Any, kwargs: Any) -> T:
        """Call the function; an async one runs as its own asyncio task so reset() can cancel just it."""
        value = self._fn(*args, **kwargs)
        if not inspect.isawaitable(value):
            return cast(T, value)
        inner: asyncio.Future[T] = asyncio.ensure_future(value)
        self._running.add(inner)
        try:
            return await inner
        finally:
            self._running.discard(inner)

    def _call_handlers(self, handlers: Sequence[_Handler], value: Any) -> None:
        for handler in handlers:
            try:
                handler(value)
            except Exception:
                logger.exception("task %r: handler %r raised", self.name, handler)

    def _emit(self, snapshot: TaskSnapshot[T]) -> None:
        if not self._subject.is_disposed:
            self._subject.on_next(snapshot)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} {self.state}>"


class TaskService:
    """Creates :class:`Task` handles; on container shutdown, cancels the runs still active."""

    def __init__(self) -> None:
        self._tasks: weakref.WeakSet[Task[Any, Any]] = weakref.WeakSet()

    @overload
    def new_task(
        self,
        fn: Callable[P, Awaitable[T]],
        *,
        name: str | None = None,
        should_run: Callable[[], bool | Awaitable[bool]] | None = None,
        on_success: Sequence[Callable[[T], Any]] = (),
        on_error: Sequence[Callable[[BaseException], Any]] = (),
        always: Sequence[Callable[[], Any]] = (),
        concurrency: TaskConcurrency = "drop",
    ) -> Task[P, T]: ...

    @overload
    def new_task(
        self,
        fn: Callable[P, T],
        *,
        name: str | None = None,
        should_run: Callable[[], bool | Awaitable[bool]] | None = None,
        on_success: Sequence[Callable[[T], Any]] = (),
        on_error: Sequence[Callable[[BaseException], Any]] = (),
        always: Sequence[Callable[[], Any]] = (),
        concurrency: TaskConcurrency = "drop",
    ) -> Task[P, T]: ...

    def new_task(
        self,
        fn: Callable[P, Any],
        *,
        name: str | None = None,
        should_run: Callable[[], bool | Awaitable[bool]] | None = None,
        on_success: Sequence[Callable[[Any], Any]] = (),
        on_error: Sequence[Callable[[BaseException], Any]] = (),
        always: Sequence[Callable[[], Any]] = (),
        concurrency: TaskConcurrency = "drop",
    ) -> Task[P, Any]:
        """A new handle for ``fn`` (sync or async). ``should_run`` can veto a run; ``on_success`` /
        ``on_error`` handlers get the result / exception, then ``always`` handlers (sync or async) run after
        either outcome; a handler's exception is logged, never raised."""
        task: Task[P, Any] = Task(
            fn,
            name=name,
            should_run=should_run,
            on_success=on_success,
            on_error=on_error,
            always=always,
            concurrency=concurrency,
        )
        self._tasks.add(task)
        return task

    def shutdown(self) -> None:
        """Container hook: cancel every active run and complete every task's Observable."""
        for task in list(self._tasks):
            task.dispose()
