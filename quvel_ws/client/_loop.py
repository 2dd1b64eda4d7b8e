"""The one bridge from other threads onto the service's asyncio loop.

A service is bound to the loop of the first coroutine that uses it (or the ``loop=`` it was given).
Work that must run there goes through :class:`LoopBridge`: :meth:`~LoopBridge.call` (fire and forget),
:meth:`~LoopBridge.attach` (register now, dispose from anywhere) and :meth:`~LoopBridge.run` (block
another thread until a coroutine finishes on the loop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from reactivex import abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable

from quvel_ws.errors import ServiceShutDown, WsError

T = TypeVar("T")


class LoopBridge:
    """Binds a service to one loop and runs work there, from whichever thread asks."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self._thread_id: int | None = None
        self.closed = False

    def bind(self) -> asyncio.AbstractEventLoop:
        """The service's loop, bound now to the running one if it has none yet."""
        if self.closed:
            raise ServiceShutDown()
        if self.loop is None:
            try:
                self.loop = asyncio.get_running_loop()
            except RuntimeError:
                raise WsError(
                    "WebSocketService is used first outside its asyncio loop: make the first call "
                    "(connect, subscribe, channel(...).subscribe) inside a coroutine, or pass loop="
                ) from None
        if self._thread_id is None and self.loop.is_running():
            try:
                if asyncio.get_running_loop() is self.loop:
                    self._thread_id = threading.get_ident()
            except RuntimeError:
                pass
        return self.loop

    def on_loop_thread(self) -> bool:
        loop = self.bind()
        if self._thread_id is None:
            try:
                return asyncio.get_running_loop() is loop
            except RuntimeError:
                return False
        return threading.get_ident() == self._thread_id

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the loop: now when already there (or never bound, or closed), else soon."""
        if self.loop is None or self.closed or self.on_loop_thread():
            fn()
        else:
            self.loop.call_soon_threadsafe(fn)

    def attach(self, attach: Callable[[], abc.DisposableBase]) -> abc.DisposableBase:
        """Run ``attach`` on the loop (now if already there); the disposable works from any thread."""
        if self.closed or self.on_loop_thread():
            return attach()
        holder = SingleAssignmentDisposable()

        def run() -> None:
            if not holder.is_disposed:
                holder.disposable = attach()

        self.call(run)
        return Disposable(lambda: self.call(holder.dispose))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop from another thread and wait for its result."""
        loop = self.loop
        try:
            if loop is None:
                raise WsError(
                    "the service is not bound to a loop yet: create it with loop=, or use it once "
                    "from a coroutine on that loop"
                )
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                raise WsError(
                    "ws.threadsafe called from the service's own loop (it would deadlock); await the "
                    "async API instead"
                )
            if loop.is_closed():
                raise WsError(
                    "ws.threadsafe called after the service's loop was closed: nothing would ever run "
                    "the call; keep the loop running until the service is shut down"
                )
        except WsError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
