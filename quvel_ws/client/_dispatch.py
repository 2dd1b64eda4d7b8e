"""What the protocol core says, turned into items on hubs and service streams.

The connection driver hands every fact the core outputs (``ChannelEvent``, ``StateChanged``,
``MemberAdded``...) to :meth:`Dispatcher.dispatch`. A channel event costs one dict lookup for the hub,
one for the listeners, and one :meth:`ChannelHubs.deliver`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from quvel_ws._logs import RepeatLimiter, suppressed_note
from quvel_ws.client._hubs import ChannelHubs, Hub
from quvel_ws.client._retry import SubscriptionRetry, is_transient
from quvel_ws.client._roster import MemberList, Roster
from quvel_ws.client._streams import Broadcast
from quvel_ws.errors import CertificateError, ConnectionRefused, WsError
from quvel_ws.protocol import (
    ChannelEvent,
    ConnectionState,
    ErrorRaised,
    GlobalEvent,
    MemberAdded,
    MemberRemoved,
    MembersCleared,
    Output,
    SignedIn,
    StateChanged,
    SubscriptionCount,
    SubscriptionFailed,
    SubscriptionSucceeded,
    UserEvent,
)

logger = logging.getLogger(__name__)


class Dispatcher:
    """Routes core outputs; owns the service-wide streams and what the connection last said."""

    def __init__(
        self,
        hubs: ChannelHubs,
        retry: SubscriptionRetry,
        streams: tuple[Broadcast, Broadcast, Broadcast, Broadcast],
        loop: Callable[[], asyncio.AbstractEventLoop],
    ) -> None:
        self._hubs = hubs
        self._hub_map = hubs.hubs  # the same dict for the hubs' lifetime: one attribute less per event
        self._deliver = hubs.deliver
        self._retry = retry
        self.state, self.errors, self.user_events, self.global_events = streams
        self._loop = loop
        self._log_limit = RepeatLimiter()  # a hostile server must not flood the log
        self.state_waiters: list[asyncio.Future[None]] = []
        self.last_refusal: WsError | None = None
        self.user_id: str | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            StateChanged: self._on_state,
            ErrorRaised: self._on_error,
            SubscriptionSucceeded: self._on_succeeded,
            SubscriptionFailed: self._on_failed,
            MemberAdded: self._on_member_added,
            MemberRemoved: self._on_member_removed,
            MembersCleared: self._on_members_cleared,
            SignedIn: self._on_signed_in,
            SubscriptionCount: self._on_count,
            UserEvent: self.user_events.emit,
            GlobalEvent: self.global_events.emit,
        }

    def report(self, error: WsError, hub: Hub | None, exc_info: BaseException | None = None) -> None:
        """Log an error once and put it on the channel's and the service's ``errors``."""
        suppressed = self._log_limit.check(f"{type(error).__name__}: {error}")
        if suppressed is None:
            pass  # the same message again within the window: counted, not logged
        elif exc_info is not None:
            logger.error("%s%s", error, suppressed_note(suppressed), exc_info=exc_info)
        else:
            logger.warning("%s%s", error, suppressed_note(suppressed))
        if hub is not None:
            for sink in hub.errors:
                if sink.active:
                    try:
                        sink.observer.on_next(error)
                    except Exception:
                        logger.exception("an errors observer of %s raised", hub.name)
        self.errors.emit(error)

    def channel_event(self, output: ChannelEvent) -> None:
        """The hot path: one event to its listeners (and to ``listen_to_all`` sinks)."""
        hub = self._hub_map.get(output.channel)
        if hub is None:
            return
        event = output.event
        sinks = hub.listeners.get(event)
        if sinks is not None:
            self._deliver(hub, sinks, output.data, event)
        if hub.wildcard and not event.startswith("pusher:"):  # Echo's listenToAll skips them
            self._deliver(hub, hub.wildcard, output, event)

    def dispatch(self, output: Output) -> None:
        """Any other fact the core outputs."""
        if type(output) is ChannelEvent:
            self.channel_event(output)
            return
        handler = self._handlers.get(type(output))
        if handler is not None:
            handler(output)

    def release_waiters(self, error: WsError | None = None) -> None:
        waiters, self.state_waiters = self.state_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    # --- handlers ------------------------------------------------------------------------------

    def _on_state(self, output: StateChanged) -> None:
        current = output.current
        if current is not ConnectionState.CONNECTED:
            self.user_id = None  # signed in again after the reconnect
            for hub in self._hubs.hubs.values():
                hub.subscribed = None
        self.state.emit(current)
        if current in (ConnectionState.CONNECTED, ConnectionState.DISCONNECTED, ConnectionState.FAILED):
            self.release_waiters()

    def _on_error(self, output: ErrorRaised) -> None:
        if isinstance(output.error, ConnectionRefused | CertificateError):  # the reasons to stop
            self.last_refusal = output.error
        self.report(output.error, self._hubs.get(output.channel) if output.channel else None)

    def _on_succeeded(self, output: SubscriptionSucceeded) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None:
            return
        hub.subscribed = output
        self._retry.forget(output.channel)
        if output.members is not None:
            hub.members = Roster(output.members)
            if hub.members_sinks:
                self._hubs.deliver(hub, hub.members_sinks, hub.members.snapshot(), "members")
        if hub.subscribed_sinks:
            self._hubs.deliver(hub, hub.subscribed_sinks, output, "subscribed")

    def _on_failed(self, output: SubscriptionFailed) -> None:
        hub = self._hubs.get(output.channel)
        if hub is not None:
            hub.subscribed = None
        self.report(output.error, hub)
        if hub is not None and is_transient(output.error):
            self._retry.schedule(hub.name, self._loop())

    def _on_member_added(self, output: MemberAdded) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None:
            return
        if hub.members is None:
            hub.members = Roster()
        hub.members.put(output.member)  # O(1): a join never copies the member list
        if not output.updated and hub.joining:
            self._hubs.deliver(hub, hub.joining, output.member, "joining")
        if hub.members_sinks:
            self._hubs.deliver(hub, hub.members_sinks, hub.members.snapshot(), "members")

    def _on_member_removed(self, output: MemberRemoved) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None or hub.members is None:
            return
        member = hub.members.pop(output.member.id) or output.member
        if hub.leaving:
            self._hubs.deliver(hub, hub.leaving, member, "leaving")
        if hub.members_sinks:
            self._hubs.deliver(hub, hub.members_sinks, hub.members.snapshot(), "members")

    def _on_members_cleared(self, output: MembersCleared) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None or hub.members is None:
            return
        hub.members = None
        if hub.members_sinks:
            self._hubs.deliver(hub, hub.members_sinks, MemberList(), "members")

    def _on_count(self, output: SubscriptionCount) -> None:
        hub = self._hubs.get(output.channel)
        if hub is None:
            return
        hub.count = output.count
        if hub.count_sinks:
            self._hubs.deliver(hub, hub.count_sinks, output.count, "subscription_count")

    def _on_signed_in(self, output: SignedIn) -> None:
        self.user_id = output.user_id
