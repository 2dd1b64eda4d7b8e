"""``use_websockets(owner)``: QuVel's ``useWebSockets()`` composable, with a lifetime.

In QuVel a component calls ``const { subscribe, unsubscribe } = useWebSockets()`` and unsubscribes in
``onBeforeUnmount``. Here the owner (a store, or an ``app.scope()``) plays the component: what its
``subscribe`` opened ends when the store is disposed or the scope ends, without an unmount hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from reactivex.disposable import Disposable

from quvel_store._scope import Scope
from quvel_store._store import Store
from quvel_store.errors import StoreArgumentError, StoreDisposedError

if TYPE_CHECKING:
    from quvel_ws import PresenceHandlers, Subscription, WebSocketService

__all__ = ["WebSockets", "use_websockets"]


class WebSockets(NamedTuple):
    """What :func:`use_websockets` returns; unpack it like the seed's ``{ subscribe, unsubscribe }``."""

    subscribe: Callable[..., Any]
    """``await subscribe(channel_name, type="public", event=None, callback=None, presence_handlers=None,
    *, model=None, on_error=None, on_subscribed=None)``: ``container.ws.subscribe``, owned."""
    unsubscribe: Callable[[Subscription], None]
    unsubscribe_all: Callable[[], None]


class _Owned:
    """The subscriptions one owner opened through ``use_websockets``."""

    def __init__(self, ws: WebSocketService, what: str) -> None:
        self.ws = ws
        self.what = what
        self.subs: list[Subscription] = []
        self.ended = False

    async def subscribe(
        self,
        channel_name: str,
        type: str = "public",
        event: str | None = None,
        callback: Callable[[Any], Any] | None = None,
        presence_handlers: PresenceHandlers | None = None,
        **options: Any,
    ) -> Subscription:
        if self.ended:
            raise StoreDisposedError(f"use_websockets: {self.what} has ended; it cannot subscribe again")
        sub = await self.ws.subscribe(channel_name, type, event, callback, presence_handlers, **options)
        if self.ended:  # the owner ended while the subscription was being made
            sub.unsubscribe()
            raise StoreDisposedError(
                f"use_websockets: {self.what} ended while subscribing to {channel_name!r}"
            )
        self.subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.unsubscribe()
        if sub in self.subs:
            self.subs.remove(sub)

    def unsubscribe_all(self) -> None:
        subs, self.subs = self.subs, []
        for sub in reversed(subs):
            sub.unsubscribe()

    def end(self) -> None:
        self.ended = True
        self.unsubscribe_all()


def use_websockets(owner: Store[Any] | Scope) -> WebSockets:
    """``subscribe`` / ``unsubscribe`` / ``unsubscribe_all`` over the owner's ``container.ws``; every
    subscription made through them ends with ``owner`` (``store.dispose()``, ``scope.dispose()``)."""
    if isinstance(owner, Store):
        if owner.disposed:
            raise StoreDisposedError(f"use_websockets: store {owner.store_id!r} is disposed")
        owned = _Owned(owner.container.ws, f"store {owner.store_id!r}")
        owner.add_cleanup(owned.end)
    elif isinstance(owner, Scope):
        if owner.disposed:
            raise StoreDisposedError("use_websockets: the scope has ended")
        owned = _Owned(owner.app.container.ws, "the scope")
        owner.add(Disposable(owned.end))
    else:
        raise StoreArgumentError(
            f"use_websockets(owner) takes a store or an app.scope(), not {type(owner).__name__} {owner!r}"
        )
    return WebSockets(owned.subscribe, owned.unsubscribe, owned.unsubscribe_all)
