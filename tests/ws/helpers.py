"""Small waiting helpers: conditions, not sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc

T = TypeVar("T")


class Collector(Generic[T]):
    """Subscribes to an Observable and lets a test await items."""

    def __init__(self, source: Observable[T] | None = None) -> None:
        self.items: list[T] = []
        self.errors: list[Exception] = []
        self.completed = False
        self._changed = asyncio.Event()
        self.disposable: abc.DisposableBase | None = None
        if source is not None:
            self.disposable = source.subscribe(self.on_next, self.on_error, self.on_completed)

    def on_next(self, value: T) -> None:
        self.items.append(value)
        self._changed.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self._changed.set()

    def on_completed(self) -> None:
        self.completed = True
        self._changed.set()

    def dispose(self) -> None:
        if self.disposable is not None:
            self.disposable.dispose()

    async def wait(self, predicate: Callable[[list[T]], bool], within: float = 10.0) -> list[T]:
        async def loop() -> list[T]:
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()
            return self.items

        return await asyncio.wait_for(loop(), within)

    async def count(self, n: int, within: float = 10.0) -> list[T]:
        return await self.wait(lambda items: len(items) >= n, within)

    async def first(self, within: float = 10.0) -> T:
        return (await self.count(1, within))[0]


async def until(predicate: Callable[[], Any], within: float = 10.0, interval: float = 0.01) -> None:
    """Poll a cheap in-process condition (for state owned by another thread, e.g. an HTTP server)."""

    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 - the state lives in another thread
            await asyncio.sleep(interval)

    await asyncio.wait_for(loop(), within)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (the pusher SDK, Soketi restart) without blocking the loop."""
    return await asyncio.to_thread(fn, *args)
