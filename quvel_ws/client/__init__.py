"""The asyncio client driver: the transport, the connection driving the sans-I/O core, channel hubs,
HTTP authorisation, and the laravel-echo-shaped :class:`WebSocketService` on top.

Layers inside (each imports only those before it): ``_transport`` → ``_driver`` (runs
:class:`quvel_ws.protocol.PusherProtocol`) and ``_http_auth``; ``_loop`` (the one bridge onto the
loop), ``_roster`` (presence members), ``_hubs`` (sinks and delivery), ``_streams``, ``_retry``,
``_dispatch`` (core outputs → hubs);
then the Echo layer: ``_echo`` (naming rules), ``_channels`` (Observables), ``_subscription``,
``_threadsafe`` and ``_service``. Users import these names from :mod:`quvel_ws`.
"""

from quvel_ws.client._channels import Channel, PresenceChannel
from quvel_ws.client._echo import (
    NOTIFICATION_EVENT,
    ChannelType,
    ConnectionStatus,
    EchoEvent,
    echo_event_name,
    format_event,
)
from quvel_ws.client._http_auth import HttpAuthorizer
from quvel_ws.client._roster import MemberList
from quvel_ws.client._service import WebSocketService
from quvel_ws.client._subscription import Owner, PresenceHandlers, Subscription
from quvel_ws.client._threadsafe import ThreadSafe

__all__ = [
    "NOTIFICATION_EVENT",
    "Channel",
    "ChannelType",
    "ConnectionStatus",
    "EchoEvent",
    "HttpAuthorizer",
    "MemberList",
    "Owner",
    "PresenceChannel",
    "PresenceHandlers",
    "Subscription",
    "ThreadSafe",
    "WebSocketService",
    "echo_event_name",
    "format_event",
]
