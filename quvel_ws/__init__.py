"""quvel_ws: a Pusher-protocol-7 client (Laravel Echo, Reverb, Soketi, Pusher) whose channels are
RxPY Observables, and an embedded Pusher-compatible server (:mod:`quvel_ws.server`).

```python
ws = WebSocketService("ws://127.0.0.1:6001/app/app-key", http_client=api_client)
ws.channel("orders", type="private").listen("OrderShipped").subscribe(print)
```
"""

from quvel_ws._auth import HttpAuthorizer
from quvel_ws._channel import Channel, PresenceChannel
from quvel_ws._echo import (
    NOTIFICATION_EVENT,
    ChannelType,
    ConnectionStatus,
    EchoEvent,
    echo_event_name,
    format_event,
)
from quvel_ws._service import PresenceHandlers, Subscription, ThreadSafe, WebSocketService
from quvel_ws.errors import (
    AuthorizationError,
    CallbackError,
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
    SubscriptionTimeout,
    TransportError,
    WsError,
)
from quvel_ws.protocol._events import (
    ChannelAuthData,
    ChannelEvent,
    ConnectionState,
    GlobalEvent,
    Member,
    SubscriptionSucceeded,
    UserAuthData,
    UserEvent,
)

__all__ = [
    "NOTIFICATION_EVENT",
    "AuthorizationError",
    "CallbackError",
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
    "NotConnected",
    "PayloadTooLarge",
    "PayloadValidationError",
    "PresenceChannel",
    "PresenceHandlers",
    "ProtocolError",
    "ServerError",
    "ServiceShutDown",
    "SigninError",
    "Subscription",
    "SubscriptionError",
    "SubscriptionSucceeded",
    "SubscriptionTimeout",
    "ThreadSafe",
    "TransportError",
    "UserAuthData",
    "UserEvent",
    "WebSocketService",
    "WsError",
    "echo_event_name",
    "format_event",
]
