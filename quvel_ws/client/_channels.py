"""Channels as RxPY Observables, reference-counted onto one server subscription.

A :class:`Channel` is a cheap view (service + full name). Subscribing to any of its Observables
acquires the channel's hub: the first acquisition subscribes on the server, the last disposal
unsubscribes, and every sink is removed on disposal, so leaving and rejoining never duplicates a
handler. Events are pushed to sinks synchronously from the connection's receive path.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

import reactivex
from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter
from reactivex import Observable, abc

from quvel_ws.client._echo import (
    NOTIFICATION_EVENT,
    ChannelType,
    EchoEvent,
    echo_event_name,
    format_event,
    whisper_event,
    wire_event,
)
from quvel_ws.client._hubs import Hub, Sink, SinkGroup
from quvel_ws.client._roster import MemberList
from quvel_ws.errors import CallbackGivenAsModel, InvalidArgument, WsError
from quvel_ws.protocol import ChannelEvent, Member, SubscriptionSucceeded

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ChannelHost(Protocol):
    """What a :class:`Channel` needs from its service (the service hands each channel one)."""

    @property
    def namespace(self) -> str | None: ...

    def attach(self, name: str, group: SinkGroup, sink: Sink) -> abc.DisposableBase: ...

    def hub(self, name: str) -> Hub | None: ...

    def whisper(self, name: str, event: str, data: Any) -> None: ...

    def leave(self, name: str) -> None: ...


def _validator(model: Any) -> Callable[[Any], Any]:
    """A function validating a payload into ``model`` (a pydantic model or anything TypeAdapter takes).
    A model pydantic cannot use is an :class:`InvalidArgument` now, not a failure per event later."""
    if callable(model) and not isinstance(model, type) and typing.get_origin(model) is None:
        # Echo's channel.listen(event, callback): here the second argument is a model, never a callback
        raise CallbackGivenAsModel(
            f"listen(event, model) takes a model to validate payloads into, not the callback "
            f"{getattr(model, '__qualname__', model)!r}; subscribe the callback to the Observable: "
            f"channel.listen(event).subscribe(callback), or use "
            f"await ws.subscribe(channel, event=event, callback=callback)"
        )
    validate = getattr(model, "model_validate", None)
    if isinstance(model, type) and callable(validate):
        return validate  # type: ignore[no-any-return]
    if isinstance(model, str):
        raise InvalidArgument(f"model must be a type (a pydantic model, list[int]...), not {model!r}")
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(model)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise InvalidArgument(f"pydantic cannot validate into {model!r}: {exc}") from None
    return adapter.validate_python


class Channel:
    """A Pusher channel as Observables. Get one with ``ws.channel(name, type=...)``.

    Subscribing to any Observable here subscribes the channel on the server (once, however many
    subscribers); disposing of the last one unsubscribes it. Items are delivered on the service's loop.
    """

    def __init__(self, host: ChannelHost, name: str, kind: ChannelType) -> None:
        self._host = host
        self.name = name
        """The full server-side name (with its ``private-``/``presence-`` prefix)."""
        self.type = kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.type.value})>"

    # --- Observables ---------------------------------------------------------------------------

    @overload
    def listen(self, event: str) -> Observable[Any]: ...
    @overload
    def listen(self, event: str, model: type[T]) -> Observable[T]: ...

    def listen(self, event: str, model: Any = None) -> Observable[Any]:
        """Payloads of ``event``, named like laravel-echo's ``listen`` (``NewMessage`` means
        ``App\\Events\\NewMessage``; a leading ``.`` means verbatim). With ``model``, each payload is
        validated into it; an invalid one goes to :attr:`errors` and the stream goes on."""
        return self._listen_raw(format_event(event, self._host.namespace), model)

    @overload
    def notifications(self) -> Observable[Any]: ...
    @overload
    def notifications(self, model: type[T]) -> Observable[T]: ...

    def notifications(self, model: Any = None) -> Observable[Any]:
        """Laravel notifications broadcast to this channel (``BroadcastNotificationCreated``)."""
        return self._listen_raw(NOTIFICATION_EVENT, model)

    @overload
    def listen_batches(self, event: str) -> Observable[list[Any]]: ...
    @overload
    def listen_batches(self, event: str, model: type[T]) -> Observable[list[T]]: ...

    def listen_batches(self, event: str, model: Any = None) -> Observable[list[Any]]:
        """Like :meth:`listen`, but one list per socket read holding every payload of ``event`` that
        arrived in it (never empty). Fold a fast stream into a store with one state change per batch."""
        wire = format_event(event, self._host.namespace)
        return self._observable(
            "listen", wire, _validator(model) if model is not None else None, batched=True
        )

    def listen_for_whisper(self, event: str) -> Observable[Any]:
        """Client events another client sent with ``whisper(event, ...)`` (``client-{event}``)."""
        return self._listen_raw(whisper_event(event), None)

    def listen_raw(self, event: str, model: Any = None) -> Observable[Any]:
        """Payloads of ``event`` exactly as named on the wire (no namespace)."""
        return self._listen_raw(wire_event(event), model)

    def listen_to_all(self) -> Observable[EchoEvent]:
        """Every event on the channel (``pusher:``/internal ones excluded), like laravel-echo's
        ``listenToAll``: each an :class:`EchoEvent` whose ``name`` is Echo's (namespace stripped, or
        ``.`` + the wire name; ``listen(name)`` accepts it) and whose ``event`` is the wire name."""
        namespace = self._host.namespace

        def named(event: ChannelEvent) -> EchoEvent:
            return EchoEvent(
                channel=event.channel,
                event=event.event,
                data=event.data,
                user_id=event.user_id,
                name=echo_event_name(event.event, namespace),
            )

        return self._observable("wildcard", None, named)

    @property
    def subscribed(self) -> Observable[SubscriptionSucceeded]:
        """Emits on every successful subscription and re-subscription (after each reconnect): the hook
        for fetching what was missed. A late subscriber gets the current one at once."""
        return self._observable("subscribed", None, None)

    @property
    def errors(self) -> Observable[WsError]:
        """Typed errors about this channel: failed subscriptions, invalid payloads, raising callbacks,
        decryption failures. Never terminates with ``on_error``."""
        return self._observable("errors", None, None)

    @property
    def subscription_count(self) -> Observable[int]:
        """How many connections are subscribed, when the server pushes it (Pusher's opt-in
        ``subscription_count`` events; not for presence channels). The latest is replayed."""
        return self._observable("count", None, None)

    @property
    def is_subscribed(self) -> bool:
        hub = self._host.hub(self.name)
        return hub is not None and hub.subscribed is not None

    def whisper(self, event: str, data: Any = None) -> None:
        """Send the client event ``client-{event}`` (private and presence channels only). Raises
        :class:`~quvel_ws.errors.ClientEventError` or :class:`~quvel_ws.errors.NotConnected`."""
        self._host.whisper(self.name, whisper_event(event), data)

    def leave(self) -> None:
        """Leave this channel now: every Observable of it completes and the server is told."""
        self._host.leave(self.name)

    # --- plumbing ------------------------------------------------------------------------------

    def _listen_raw(self, wire_event: str, model: Any) -> Observable[Any]:
        return self._observable("listen", wire_event, _validator(model) if model is not None else None)

    def _observable(
        self, kind: SinkGroup, event: str | None, validate: Callable[[Any], Any] | None, batched: bool = False
    ) -> Observable[Any]:
        host, name = self._host, self.name

        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return host.attach(name, kind, Sink(observer, event, validate, batched))

        return reactivex.create(subscribe)


class PresenceChannel(Channel):
    """A ``presence-`` channel: also who is here, who joins and who leaves."""

    @property
    def members(self) -> Observable[MemberList]:
        """The current members (ids are strings, joining order), emitted on every change and replayed
        at once to a late subscriber. Emits an empty list when the connection drops, until
        re-subscription. Each item is a :class:`MemberList` snapshot (a sequence, equal to the tuple
        of its members) that costs O(1) to emit: a join never copies the member list."""
        return self._observable("members", None, None)

    @property
    def joining(self) -> Observable[Member]:
        return self._observable("joining", None, None)

    @property
    def leaving(self) -> Observable[Member]:
        return self._observable("leaving", None, None)

    @property
    def me(self) -> Member | None:
        """This connection's own member, once subscribed."""
        hub = self._host.hub(self.name)
        return hub.subscribed.me if hub is not None and hub.subscribed is not None else None


class InertChannel(PresenceChannel):
    """What a server-rendering service hands out: every Observable completes at once, nothing is sent."""

    def _observable(
        self, kind: SinkGroup, event: str | None, validate: Callable[[Any], Any] | None, batched: bool = False
    ) -> Observable[Any]:
        return reactivex.empty()

    @property
    def is_subscribed(self) -> bool:
        return False

    @property
    def me(self) -> Member | None:
        return None

    def whisper(self, event: str, data: Any = None) -> None:
        whisper_event(event)
        logger.debug("server rendering: whisper %r on %s not sent", event, self.name)

    def leave(self) -> None:
        return None
