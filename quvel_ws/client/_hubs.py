"""Channel hubs: the live sinks of each subscribed channel, reference-counted onto one server
subscription, and the one way a value reaches a sink (:meth:`ChannelHubs.deliver`).

The first sink of a channel subscribes it on the server and the last one leaving unsubscribes it,
so leaving and rejoining never duplicates a handler. Everything here runs on the service's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationError
from reactivex import abc
from reactivex.disposable import Disposable

from quvel_ws.client._roster import Roster
from quvel_ws.errors import CallbackError, PayloadValidationError, WsError
from quvel_ws.protocol import SubscriptionSucceeded

logger = logging.getLogger(__name__)

SinkGroup = Literal["listen", "wildcard", "subscribed", "errors", "members", "joining", "leaving", "count"]
Reporter = Callable[[WsError, "Hub | None", "BaseException | None"], None]
"""Logs an error once and puts it on the channel's and the service's ``errors``."""

_GROUP_SLOTS: dict[str, str] = {
    "wildcard": "wildcard",
    "subscribed": "subscribed_sinks",
    "errors": "errors",
    "members": "members_sinks",
    "joining": "joining",
    "leaving": "leaving",
    "count": "count_sinks",
}


class Sink:
    """One Observable subscription on a hub: an observer, optionally a validator and a batch."""

    __slots__ = ("active", "batch", "event", "observer", "validate")

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        event: str | None,
        validate: Callable[[Any], Any] | None,
        batched: bool = False,
    ) -> None:
        self.observer = observer
        self.event = event
        self.validate = validate
        self.active = True
        self.batch: list[Any] | None = [] if batched else None


class Hub:
    """The live state of one subscribed channel: its sinks by group, presence members, and a refcount."""

    __slots__ = (
        "count",
        "count_sinks",
        "errors",
        "joining",
        "leaving",
        "listeners",
        "members",
        "members_sinks",
        "name",
        "refs",
        "subscribed",
        "subscribed_sinks",
        "wildcard",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.refs = 0
        self.listeners: dict[str, tuple[Sink, ...]] = {}
        self.wildcard: tuple[Sink, ...] = ()
        self.subscribed_sinks: tuple[Sink, ...] = ()
        self.errors: tuple[Sink, ...] = ()
        self.members_sinks: tuple[Sink, ...] = ()
        self.joining: tuple[Sink, ...] = ()
        self.leaving: tuple[Sink, ...] = ()
        self.subscribed: SubscriptionSucceeded | None = None
        self.members: Roster | None = None
        self.count: int | None = None
        self.count_sinks: tuple[Sink, ...] = ()

    def all_sinks(self) -> list[Sink]:
        out = [s for group in self.listeners.values() for s in group]
        for slot in _GROUP_SLOTS.values():
            out += getattr(self, slot)
        return out


class ChannelHubs:
    """Every hub of one service, keyed by full channel name.

    ``on_first(name)`` runs when a channel gets its first sink (subscribe on the server),
    ``on_last(name)`` when its last sink leaves (unsubscribe); ``report`` receives every delivery
    failure (an invalid payload, a raising observer)."""

    def __init__(
        self,
        *,
        report: Reporter,
        on_first: Callable[[str], None],
        on_last: Callable[[str], None],
    ) -> None:
        self.hubs: dict[str, Hub] = {}
        self._report = report
        self._on_first = on_first
        self._on_last = on_last
        self._batched: list[tuple[Hub, Sink]] = []
        self.closed = False

    def get(self, name: str) -> Hub | None:
        return self.hubs.get(name)

    # --- sinks in and out ----------------------------------------------------------------------

    def attach(self, name: str, group: SinkGroup, sink: Sink) -> abc.DisposableBase:
        """Add ``sink`` to the hub of ``name`` (creating it; the first sink subscribes the channel)
        and replay the hub's latest value for the groups that have one."""
        if self.closed:
            sink.observer.on_completed()
            return Disposable()
        hub = self.hubs.get(name)
        if hub is None:
            hub = self.hubs[name] = Hub(name)
        if group == "listen":
            assert sink.event is not None
            hub.listeners[sink.event] = (*hub.listeners.get(sink.event, ()), sink)
        else:
            slot = _GROUP_SLOTS[group]
            setattr(hub, slot, (*getattr(hub, slot), sink))
        hub.refs += 1
        if hub.refs == 1:
            self._on_first(name)
        elif group == "subscribed" and hub.subscribed is not None:
            self.deliver(hub, (sink,), hub.subscribed, "subscribed")
        elif group == "members" and hub.members is not None:
            self.deliver(hub, (sink,), hub.members.snapshot(), "members")
        elif group == "count" and hub.count is not None:
            self.deliver(hub, (sink,), hub.count, "subscription_count")
        return Disposable(lambda: self._detach(hub, group, sink))

    def _detach(self, hub: Hub, group: SinkGroup, sink: Sink) -> None:
        if not sink.active:
            return
        sink.active = False
        if group == "listen":
            assert sink.event is not None
            rest = tuple(s for s in hub.listeners.get(sink.event, ()) if s is not sink)
            if rest:
                hub.listeners[sink.event] = rest
            else:
                hub.listeners.pop(sink.event, None)
        else:
            slot = _GROUP_SLOTS[group]
            setattr(hub, slot, tuple(s for s in getattr(hub, slot) if s is not sink))
        hub.refs -= 1
        if hub.refs == 0 and self.hubs.get(hub.name) is hub:
            del self.hubs[hub.name]
            if not self.closed:
                self._on_last(hub.name)

    def remove(self, name: str) -> bool:
        """Drop the hub of ``name`` now, completing its sinks; False if there was none."""
        hub = self.hubs.pop(name, None)
        if hub is None:
            return False
        self._complete(hub)
        return True

    def close(self) -> None:
        """Complete every sink of every hub; later attachments complete at once."""
        self.closed = True
        hubs = list(self.hubs.values())
        self.hubs.clear()
        for hub in hubs:
            self._complete(hub)

    def _complete(self, hub: Hub) -> None:
        sinks = hub.all_sinks()
        for sink in sinks:
            sink.active = False
        hub.listeners.clear()
        for slot in _GROUP_SLOTS.values():
            setattr(hub, slot, ())
        hub.refs = 0
        for sink in sinks:
            try:
                sink.observer.on_completed()
            except Exception:
                logger.exception("an observer of %s raised on completion", hub.name)

    # --- delivery --------------------------------------------------------------------------------

    def deliver(self, hub: Hub, sinks: tuple[Sink, ...], value: Any, event: str | None) -> None:
        """Push ``value`` to ``sinks``: validated per sink when it has a model, collected when it is
        batched, else straight to the observer. Failures are reported, never propagated."""
        for sink in sinks:
            if not sink.active:
                continue
            item = value
            if sink.validate is not None:
                try:
                    item = sink.validate(value)
                except ValidationError as exc:
                    self._report(
                        PayloadValidationError(hub.name, event or "", value, exc.errors()), hub, None
                    )
                    continue
                except Exception as exc:  # a model's own validator raising something pydantic does not wrap
                    invalid = PayloadValidationError(
                        hub.name, event or "", value, f"{type(exc).__name__}: {exc}"
                    )
                    invalid.__cause__ = exc
                    self._report(invalid, hub, exc)
                    continue
            batch = sink.batch
            if batch is not None:
                if not batch:
                    self._batched.append((hub, sink))
                batch.append(item)
                continue
            try:
                sink.observer.on_next(item)
            except Exception as exc:
                self._raised(hub, event, exc)

    def flush_batches(self) -> None:
        """End of one received batch: hand each batched sink the list it collected."""
        if not self._batched:
            return
        pending, self._batched = self._batched, []
        for hub, sink in pending:
            items, sink.batch = sink.batch, []
            if not sink.active or not items:
                continue
            try:
                sink.observer.on_next(items)
            except Exception as exc:
                self._raised(hub, sink.event, exc)

    def _raised(self, hub: Hub, event: str | None, exc: Exception) -> None:
        error = CallbackError(hub.name, event, exc)
        error.__cause__ = exc
        self._report(error, hub, exc)
