"""Back-end auth for Pusher channels (signing private, presence and encrypted channel auth, user
sign-in, and an HTTP auth endpoint for tests and demos).

The code lives with the server, in :mod:`quvel_ws.server.auth`; this module keeps the import path
users know (``from quvel_ws.auth import Authorizer``)::

    auth = Authorizer("app-key", "app-secret")
    auth.channel("123.456", "presence-room", user={"id": 1, "name": "Ann"})
"""

from quvel_ws.server.auth import AuthEndpoint, Authorizer, AuthRequest, encrypt_event, shared_secret

__all__ = [
    "AuthEndpoint",
    "AuthRequest",
    "Authorizer",
    "encrypt_event",
    "shared_secret",
]
