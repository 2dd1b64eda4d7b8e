"""Blocking calls into a :class:`~quvel_ws.WebSocketService` from threads other than its loop's."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from quvel_ws.client._echo import ChannelType
from quvel_ws.client._loop import LoopBridge

if TYPE_CHECKING:  # the service creates its ThreadSafe; this module never imports it at run time
    from quvel_ws.client._service import WebSocketService
    from quvel_ws.client._subscription import PresenceHandlers, Subscription

T = TypeVar("T")
Callback = Callable[[Any], Any]


class ThreadSafe:
    """Blocking calls into a :class:`WebSocketService` from threads other than its loop's.

    Each call runs on the service's loop (``asyncio.run_coroutine_threadsafe``) and waits for the result.
    Observables may also be subscribed from any thread (the registration is marshalled to the loop), but
    items still arrive on the loop thread: add ``observe_on(scheduler)`` to receive them elsewhere.
    """

    def __init__(self, service: WebSocketService, bridge: LoopBridge, timeout: float | None = 30.0) -> None:
        self._service = service
        self._bridge = bridge
        self.timeout = timeout

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the service's loop and return its result."""
        return self._bridge.run(coro, timeout if timeout is not None else self.timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Call ``fn(*args)`` on the service's loop and return its result."""

        async def run() -> T:
            return fn(*args)

        return self.run(run(), timeout)

    def subscribe(
        self,
        channel_name: str,
        type: ChannelType | str = ChannelType.PUBLIC,
        event: str | None = None,
        callback: Callback | None = None,
        presence_handlers: PresenceHandlers | None = None,
        **options: Any,
    ) -> Subscription:
        """``ws.subscribe`` from another thread; the callback runs on the loop thread."""
        return self.run(
            self._service.subscribe(channel_name, type, event, callback, presence_handlers, **options)
        )

    def unsubscribe(self, subscription: Subscription) -> None:
        self.call(subscription.unsubscribe)

    def connect(self, timeout: float | None = None) -> None:
        self.run(self._service.connect(timeout), None if timeout is None else timeout + 1)

    def disconnect(self) -> None:
        self.run(self._service.disconnect())

    def whisper(self, channel: str, event: str, data: Any = None) -> None:
        self.call(lambda: self._service.channel(channel).whisper(event, data))

    def leave(self, name: str) -> None:
        self.call(self._service.leave, name)

    def leave_channel(self, name: str) -> None:
        self.call(self._service.leave_channel, name)

    def leave_all(self) -> None:
        self.call(self._service.leave_all)

    def signin(self) -> None:
        self.call(self._service.signin)
