"""Waiting for a condition instead of sleeping: the next value of an Observable, or a store state that
satisfies a predicate, with a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from reactivex import Observable, operators

T = TypeVar("T")


async def next_value(source: Observable[T], timeout: float = 10.0) -> T:  # noqa: ASYNC109
    """The next item ``source`` emits (its replayed current value, if it replays one)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def on_next(value: T) -> None:
        if not future.done():
            future.set_result(value)

    def on_error(error: Exception) -> None:
        if not future.done():
            future.set_exception(error)

    def on_completed() -> None:
        if not future.done():
            future.set_exception(EOFError("the Observable completed without a value"))

    subscription = source.subscribe(on_next, on_error, on_completed)
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        subscription.dispose()


async def wait_until(store: Any, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Wait until ``predicate(store.state)`` holds (checked on every state, the current one first) and
    return that state; ``TimeoutError`` names the store when it never does."""
    matching: Observable[Any] = store.observe().pipe(operators.filter(predicate))
    try:
        return await next_value(matching, timeout)
    except TimeoutError:
        raise TimeoutError(
            f"store {store.id!r} did not reach the expected state within {timeout}s; "
            f"last state: {store.state!r}"
        ) from None
