"""The sans-I/O Pusher protocol core: frames and clock ticks in, actions and events out.

See ``docs/internals/protocol-core.md``. The asyncio driver in :mod:`quvel_ws` runs it on a socket;
tests run it with a fake clock.
"""

from quvel_ws.protocol._config import ProtocolConfig
from quvel_ws.protocol._events import (
    AuthorizeChannel,
    AuthorizeUser,
    ChannelAuthData,
    ChannelEvent,
    ChannelState,
    CloseTransport,
    Connected,
    ConnectionState,
    ErrorRaised,
    GlobalEvent,
    Member,
    MemberAdded,
    MemberRemoved,
    MembersCleared,
    OpenTransport,
    Output,
    RetryScheduled,
    SendFrame,
    SignedIn,
    StateChanged,
    SubscriptionCount,
    SubscriptionFailed,
    SubscriptionSucceeded,
    Unsubscribed,
    UserAuthData,
    UserEvent,
)
from quvel_ws.protocol._protocol import PusherProtocol

__all__ = [
    "AuthorizeChannel",
    "AuthorizeUser",
    "ChannelAuthData",
    "ChannelEvent",
    "ChannelState",
    "CloseTransport",
    "Connected",
    "ConnectionState",
    "ErrorRaised",
    "GlobalEvent",
    "Member",
    "MemberAdded",
    "MemberRemoved",
    "MembersCleared",
    "OpenTransport",
    "Output",
    "ProtocolConfig",
    "PusherProtocol",
    "RetryScheduled",
    "SendFrame",
    "SignedIn",
    "StateChanged",
    "SubscriptionCount",
    "SubscriptionFailed",
    "SubscriptionSucceeded",
    "Unsubscribed",
    "UserAuthData",
    "UserEvent",
]
