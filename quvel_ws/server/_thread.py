"""Run an async service (the server, the auth endpoint) on its own event loop in a daemon thread, so
sync tests, scripts and demos can use it with blocking calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

T = TypeVar("T")


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


class LoopThread(Generic[S]):
    """``target`` running on a private event loop in a daemon thread.

    ``start()`` starts the thread and the service (or the service again after ``stop()``), ``stop()``
    stops the service but keeps the thread, ``close()`` (or leaving the ``with`` block) ends both.
    """

    def __init__(self, target: S, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is not None:
            self._call(self.target.start())
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.target.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.target.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=f"quvel-{type(self.target).__name__}", daemon=True)
        self._thread = thread
        thread.start()
        if not ready.wait(self.timeout):
            raise TimeoutError(f"{type(self.target).__name__} did not start within {self.timeout}s")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop the service; the thread stays so ``start()`` can bring it back."""
        self._call(self.target.stop())

    def close(self) -> None:
        """Stop the service and end the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("the service thread is not running: call start() first")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the service's loop (its state is not safe to read from another thread)."""

        async def call() -> T:
            return fn()

        return self._call(call())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
