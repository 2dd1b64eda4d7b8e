"""``quvel demo`` and its parts, reusable by the examples and by your tests: a simulated Laravel back end
(:class:`DemoBackend`), the whole local stack in one ``async with`` (:func:`demo_stack`), the recipe
stores (:mod:`quvel.demo.notifications`, :mod:`quvel.demo.chat`) and condition waits."""

from quvel.demo._pusher import Broadcaster, BroadcastError, PusherCredentials
from quvel.demo._stack import DEMO_MASTER_KEY, DemoClient, DemoStack, demo_stack
from quvel.demo._wait import next_value, wait_until
from quvel.demo.backend import DEFAULT_USERS, DemoBackend, DemoUser, NotificationRecord

__all__ = [
    "DEFAULT_USERS",
    "DEMO_MASTER_KEY",
    "BroadcastError",
    "Broadcaster",
    "DemoBackend",
    "DemoClient",
    "DemoStack",
    "DemoUser",
    "NotificationRecord",
    "PusherCredentials",
    "demo_stack",
    "next_value",
    "wait_until",
]
