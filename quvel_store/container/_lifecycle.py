"""The container's lifecycle bookkeeping: one entry per held service (which hooks ran), a boot or shutdown
in progress, and running a service's ``register`` / ``boot`` / ``shutdown`` hook from async or sync code."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from quvel_store.errors import ServiceLifecycleError

__all__ = [
    "Entry",
    "Hook",
    "Running",
    "drive_sync",
    "hook_done",
    "hook_of",
    "is_async",
    "mark_done",
    "run_sync",
]

Hook = Literal["register", "boot", "shutdown"]


@dataclass
class Entry:
    """One held service and which of its hooks have run (each runs at most once)."""

    service: object
    registered: bool = False
    booted: bool = False
    shut_down: bool = False


class Running:
    """A boot or shutdown in progress: which task runs it, and an event other callers wait on."""

    def __init__(self) -> None:
        self.task = _current_task()
        self.event = asyncio.Event()
        self.done = False
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None) -> None:
        self.done = True
        self.error = error
        self.event.set()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def hook_of(entry: Entry, hook: Hook) -> Callable[..., Any] | None:
    fn = getattr(entry.service, hook, None)
    return fn if callable(fn) else None


def is_async(fn: Callable[..., Any] | None) -> bool:
    return fn is not None and (
        inspect.iscoroutinefunction(fn)
        or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
        )
    )


def hook_done(entry: Entry, hook: Hook) -> bool:
    return {"register": entry.registered, "boot": entry.booted, "shutdown": entry.shut_down}[hook]


def mark_done(entry: Entry, hook: Hook) -> None:
    if hook == "register":
        entry.registered = True
    elif hook == "boot":
        entry.booted = True
    else:
        entry.shut_down = True


def drive_sync(coro: Awaitable[None]) -> None:
    """Drive a coroutine that never suspends (all its hooks are sync) without an event loop."""
    assert inspect.iscoroutine(coro)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise ServiceLifecycleError("a service hook returned an awaitable from a sync hook; make the hook async")


def run_sync(coro: Awaitable[None], what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_await(coro))
        return
    assert inspect.iscoroutine(coro)
    coro.close()
    raise ServiceLifecycleError(
        f"{what}() cannot run inside a running event loop; use 'async with container:' or "
        f"'await container.{what.removesuffix('_sync')}()'"
    )


async def _await(aw: Awaitable[None]) -> None:
    await aw
