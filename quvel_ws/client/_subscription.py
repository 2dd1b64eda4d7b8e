"""What ``await ws.subscribe(...)`` returns, and Echo's presence callbacks for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reactivex import abc

from quvel_ws.client._channels import Channel
from quvel_ws.protocol import Member

if TYPE_CHECKING:  # a Subscription only keeps a reference to its service
    from quvel_ws.client._service import WebSocketService


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
