"""quvel_ws: a Pusher-protocol-7 client (Laravel Echo, Reverb, Soketi, Pusher) whose channels are
RxPY Observables, and an embedded Pusher-compatible server (:mod:`quvel_ws.server`).

```python
ws = WebSocketService("ws://127.0.0.1:6001/app/app-key", http_client=api_client)
ws.channel("orders", type="private").listen("OrderShipped").subscribe(print)
```

The package face loads lazily (PEP 562): ``import quvel_ws`` costs nothing but the errors, and the client
driver (httpx, reactivex, pydantic) loads on first use of one of its names, so ``quvel_ws.protocol``
and ``quvel_ws.server`` import alone.
"""

from typing import TYPE_CHECKING

from quvel_ws._lazy import lazy_attributes
from quvel_ws._version import __version__
from quvel_ws.errors import (
    AuthorizationError,
    CallbackError,
    CallbackGivenAsModel,
    CertificateError,
    ClientEventError,
    ConnectionClosed,
    ConnectionRefused,
    DecryptionError,
    HandshakeError,
    InvalidArgument,
    InvalidChannelName,
    InvalidEventName,
    NotConnected,
    PayloadTooLarge,
    PayloadValidationError,
    ProtocolError,
    ServerError,
    ServiceShutDown,
    SigninError,
    SubscriptionError,
    SubscriptionRefused,
    SubscriptionTimeout,
    TransportError,
    WsError,
)

if TYPE_CHECKING:
    from quvel_ws._logs import RedactSecrets
    from quvel_ws.client import (
        NOTIFICATION_EVENT,
        Channel,
        ChannelType,
        ConnectionStatus,
        EchoEvent,
        HttpAuthorizer,
        MemberList,
        Owner,
        PresenceChannel,
        PresenceHandlers,
        Subscription,
        ThreadSafe,
        WebSocketService,
        echo_event_name,
        format_event,
    )
    from quvel_ws.protocol import (
        ChannelAuthData,
        ChannelEvent,
        ConnectionState,
        GlobalEvent,
        Member,
        SubscriptionSucceeded,
        UserAuthData,
        UserEvent,
    )

_LAZY: dict[str, str] = {
    "RedactSecrets": "quvel_ws._logs",
    "HttpAuthorizer": "quvel_ws.client",
    "MemberList": "quvel_ws.client",
    "Channel": "quvel_ws.client",
    "PresenceChannel": "quvel_ws.client",
    "NOTIFICATION_EVENT": "quvel_ws.client",
    "ChannelType": "quvel_ws.client",
    "ConnectionStatus": "quvel_ws.client",
    "EchoEvent": "quvel_ws.client",
    "echo_event_name": "quvel_ws.client",
    "format_event": "quvel_ws.client",
    "Owner": "quvel_ws.client",
    "PresenceHandlers": "quvel_ws.client",
    "Subscription": "quvel_ws.client",
    "ThreadSafe": "quvel_ws.client",
    "WebSocketService": "quvel_ws.client",
    "ChannelAuthData": "quvel_ws.protocol",
    "ChannelEvent": "quvel_ws.protocol",
    "ConnectionState": "quvel_ws.protocol",
    "GlobalEvent": "quvel_ws.protocol",
    "Member": "quvel_ws.protocol",
    "SubscriptionSucceeded": "quvel_ws.protocol",
    "UserAuthData": "quvel_ws.protocol",
    "UserEvent": "quvel_ws.protocol",
}


__getattr__, __dir__ = lazy_attributes("quvel_ws", _LAZY, globals())


__all__ = [
    "NOTIFICATION_EVENT",
    "AuthorizationError",
    "CallbackError",
    "CallbackGivenAsModel",
    "CertificateError",
    "Channel",
    "ChannelAuthData",
    "ChannelEvent",
    "ChannelType",
    "ClientEventError",
    "ConnectionClosed",
    "ConnectionRefused",
    "ConnectionState",
    "ConnectionStatus",
    "DecryptionError",
    "EchoEvent",
    "GlobalEvent",
    "HandshakeError",
    "HttpAuthorizer",
    "InvalidArgument",
    "InvalidChannelName",
    "InvalidEventName",
    "Member",
    "MemberList",
    "NotConnected",
    "Owner",
    "PayloadTooLarge",
    "PayloadValidationError",
    "PresenceChannel",
    "PresenceHandlers",
    "ProtocolError",
    "RedactSecrets",
    "ServerError",
    "ServiceShutDown",
    "SigninError",
    "Subscription",
    "SubscriptionError",
    "SubscriptionRefused",
    "SubscriptionSucceeded",
    "SubscriptionTimeout",
    "ThreadSafe",
    "TransportError",
    "UserAuthData",
    "UserEvent",
    "WebSocketService",
    "WsError",
    "__version__",
    "echo_event_name",
    "format_event",
]
