"""What ``await ws.subscribe(...)`` returns, and Echo's presence callbacks for it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from reactivex import abc
from reactivex.disposable import CompositeDisposable

from quvel_ws.client._channels import Channel, PresenceChannel
from quvel_ws.client._retry import is_transient
from quvel_ws.errors import NotConnected, SubscriptionError, WsError
from quvel_ws.protocol import Member, SubscriptionSucceeded

if TYPE_CHECKING:  # a Subscription only keeps a reference to its service
    from quvel_ws.client._service import WebSocketService


class Owner(Protocol):
    """What ``ws.owner()`` returns: whatever holds the things opened now and ends them later (a
    ``CompositeDisposable``, quvel_store's store or scope)."""

    def add(self, item: abc.DisposableBase, /) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceHandlers:
    """Echo's ``here``/``joining``/``leaving`` for ``subscribe``: ``on_here`` gets the member list on
    every (re-)subscription, the others one :class:`Member` (``.id`` a string, ``.info`` the user_info)."""

    on_here: Callable[[list[Member]], Any] | None = None
    on_joining: Callable[[Member], Any] | None = None
    on_leaving: Callable[[Member], Any] | None = None


class Subscription(abc.DisposableBase):
    """What ``await ws.subscribe(...)`` returns: ``unsubscribe()`` releases everything it registered.

    It is also a reactivex Disposable (``dispose()`` is ``unsubscribe()``, so a store's ``add_cleanup``,
    a ``CompositeDisposable`` or a scope can own it) and a sync and async context manager that
    unsubscribes on exit (``with await ws.subscribe(...) as sub:`` / ``async with``).
    """

    def __init__(
        self,
        service: WebSocketService,
        channel: Channel,
        disposable: abc.DisposableBase | None,
        run_on_loop: Callable[[Callable[[], Any]], None] | None = None,
    ) -> None:
        self.service = service
        self.channel = channel
        self._disposable = disposable
        self._run_on_loop = run_on_loop

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def active(self) -> bool:
        return self._disposable is not None

    @property
    def ready(self) -> Awaitable[SubscriptionSucceeded]:
        """``await sub.ready``: the server's confirmation (``await ws.subscribe(...)`` itself returns at
        once). Raises the :class:`~quvel_ws.errors.SubscriptionError` of a failure that is not retried on
        a timer, or :class:`~quvel_ws.errors.NotConnected` if the channel is left first."""
        return self._wait_ready()

    async def _wait_ready(self) -> SubscriptionSucceeded:
        if not self.active:
            raise NotConnected(f"{self.name!r}: this subscription was already unsubscribed")
        done: asyncio.Future[SubscriptionSucceeded] = asyncio.get_running_loop().create_future()

        def confirmed(event: SubscriptionSucceeded) -> None:
            if not done.done():
                done.set_result(event)

        def failed(error: WsError) -> None:
            if isinstance(error, SubscriptionError) and not is_transient(error) and not done.done():
                done.set_exception(error)

        def left() -> None:
            if not done.done():
                done.set_exception(NotConnected(f"{self.name!r} was left before the server confirmed it"))

        watching = CompositeDisposable(
            self.channel.subscribed.subscribe(on_next=confirmed, on_completed=left),
            self.channel.errors.subscribe(on_next=failed, on_completed=left),
        )
        try:
            return await done
        finally:
            watching.dispose()

    def unsubscribe(self) -> None:
        """Idempotent. The channel leaves the server when nothing else uses it."""
        disposable, self._disposable = self._disposable, None
        if disposable is not None:
            if self._run_on_loop is None:
                disposable.dispose()
            else:
                self._run_on_loop(disposable.dispose)

    def dispose(self) -> None:
        """The reactivex Disposable protocol: the same as :meth:`unsubscribe`."""
        self.unsubscribe()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        return f"<Subscription {self.name!r}{'' if self.active else ' (inactive)'}>"


Wrap = Callable[[Channel, "str | None", Callable[[Any], Any]], Callable[[Any], None]]


def subscription_parts(
    ch: Channel,
    event: str | None,
    callback: Callable[[Any], Any] | None,
    handlers: PresenceHandlers | None,
    *,
    model: Any,
    wrap: Wrap,
) -> list[abc.DisposableBase]:
    """The callback and presence-handler subscriptions behind one ``ws.subscribe(...)`` handle;
    ``wrap(channel, what, fn)`` turns a plain callback into an observer (awaitables run as tasks)."""
    parts: list[abc.DisposableBase] = []
    if callback is not None:
        source = ch.notifications(model) if event is None else ch.listen(event, model)
        parts.append(source.subscribe(on_next=wrap(ch, event, callback)))
    if handlers is None:
        return parts
    if not isinstance(ch, PresenceChannel):
        raise TypeError(f"presence handlers need a presence channel, not {ch.name!r}")
    if handlers.on_here is not None:
        here = handlers.on_here
        parts.append(ch.subscribed.subscribe(on_next=wrap(ch, "here", lambda s: here(list(s.members or ())))))
    if handlers.on_joining is not None:
        parts.append(ch.joining.subscribe(on_next=wrap(ch, "joining", handlers.on_joining)))
    if handlers.on_leaving is not None:
        parts.append(ch.leaving.subscribe(on_next=wrap(ch, "leaving", handlers.on_leaving)))
    return parts
