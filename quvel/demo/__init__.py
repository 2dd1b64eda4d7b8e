"""``quvel demo``: a simulated Laravel back end, the notification and chat stores, and a live view,
all on one machine with nothing but ``pip install``."""

from quvel.demo._pusher import Broadcaster, BroadcastError, PusherCredentials
from quvel.demo.backend import DEFAULT_USERS, DemoBackend, DemoUser, NotificationRecord

__all__ = [
    "DEFAULT_USERS",
    "BroadcastError",
    "Broadcaster",
    "DemoBackend",
    "DemoUser",
    "NotificationRecord",
    "PusherCredentials",
]
