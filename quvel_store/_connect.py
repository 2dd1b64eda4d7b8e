"""``store.connect(source, ...)``: Observables folded into a store, owned by it until it is disposed."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from quvel_store._runtime import running_loop

if TYPE_CHECKING:
    from quvel_store._runtime import Runtime
    from quvel_store._store import Store
    from quvel_store._subscriptions import Subscriptions

__all__ = ["Connections"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Connections:
    """One store's live ``connect`` subscriptions (ending them is what releases, e.g., a channel)."""

    def __init__(self, store: Store[Any], runtime: Runtime, subs: Subscriptions) -> None:
        self.store = store
        self.runtime = runtime
        self.subs = subs
        self.live: set[abc.DisposableBase] = set()

    def connect(
        self,
        source: Observable[T],
        handler: Callable[[T], object] | None,
        reducer: Callable[[Any, T], object] | None,
    ) -> abc.DisposableBase:
        """Subscribe to ``source`` (arguments already checked by ``Store.connect``)."""
        store = self.store
        runtime = self.runtime
        report = self.subs.report

        def process(item: T) -> None:
            if store.disposed:
                return
            try:
                if reducer is not None:
                    store.patch(lambda draft: reducer(draft, item))
                    return
                result = handler(item)  # type: ignore[misc]
            except Exception as exc:
                report("connect", exc, item)
                return
            if result is not None and inspect.isawaitable(result):
                self._watch_awaitable(result, item)

        def on_next(item: T) -> None:
            loop = runtime.loop
            if running_loop() is not loop and (loop := runtime.foreign_loop()) is not None:
                try:
                    loop.call_soon_threadsafe(process, item)
                except RuntimeError:
                    logger.warning("store %r dropped an item: its event loop is closed", store.store_id)
                return
            if reducer is not None or store.disposed:
                process(item)
                return
            # process(item) for a handler, inlined: this runs once per item of the stream
            try:
                result = handler(item)  # type: ignore[misc]
            except Exception as exc:
                report("connect", exc, item)
                return
            if result is not None and inspect.isawaitable(result):
                self._watch_awaitable(result, item)

        finished: list[bool] = []
        handles: list[abc.DisposableBase] = []

        def release() -> None:
            finished.append(True)
            for handle in handles:
                self.live.discard(handle)

        def on_error(error: Exception) -> None:
            report("connect", error)
            release()

        subscription = source.subscribe(on_next, on_error, release)

        def end() -> None:
            subscription.dispose()
            release()

        handle = Disposable(end)
        handles.append(handle)
        if not finished:
            self.live.add(handle)
        return handle

    def _watch_awaitable(self, result: Awaitable[Any], item: Any) -> None:
        future = asyncio.ensure_future(result)

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is not None:
                self.subs.report("connect", cast(BaseException, f.exception()), item)

        future.add_done_callback(done)

    def close(self) -> None:
        """End every connection (the store is disposed)."""
        for handle in list(self.live):
            handle.dispose()
        self.live.clear()
