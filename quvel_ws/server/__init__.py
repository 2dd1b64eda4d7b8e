"""An embedded Pusher-compatible server: WebSocket protocol 7 and the Pusher HTTP API on one port.

For tests, development and small deployments; production fan-out across machines belongs to Soketi
(Redis/NATS adapter), Laravel Reverb or Pusher Channels (see ``docs/server.md``)::

    async with PusherServer(apps=[AppConfig(id="1", key="app-key", secret="app-secret")]) as server:
        print(server.ws_url, server.http_url)
        await server.trigger("news", "NewUpdate", {"x": 1})

Names load lazily (PEP 562), so ``import quvel_ws.server`` is cheap until a name is used; the server
never loads the client driver.
"""

from typing import TYPE_CHECKING

from quvel_ws._lazy import lazy_attributes
from quvel_ws.errors import SignatureError

if TYPE_CHECKING:
    from quvel_ws.server._app import (
        DEFAULT_SECRET,
        AppConfig,
        Limits,
        app_from_env,
        default_secret_apps,
        is_loopback,
        load_apps_file,
        redis_url_from_apps_file,
    )
    from quvel_ws.server._dev_auth import DevAuth
    from quvel_ws.server._server import PusherServer, ServerThread
    from quvel_ws.server._signature import sign_params, verify_request
    from quvel_ws.server._webhooks import webhook_signature

_LAZY: dict[str, str] = {
    "AppConfig": "quvel_ws.server._app",
    "DevAuth": "quvel_ws.server._dev_auth",
    "DEFAULT_SECRET": "quvel_ws.server._app",
    "default_secret_apps": "quvel_ws.server._app",
    "is_loopback": "quvel_ws.server._app",
    "Limits": "quvel_ws.server._app",
    "app_from_env": "quvel_ws.server._app",
    "load_apps_file": "quvel_ws.server._app",
    "redis_url_from_apps_file": "quvel_ws.server._app",
    "PusherServer": "quvel_ws.server._server",
    "ServerThread": "quvel_ws.server._server",
    "sign_params": "quvel_ws.server._signature",
    "verify_request": "quvel_ws.server._signature",
    "webhook_signature": "quvel_ws.server._webhooks",
}


__getattr__, __dir__ = lazy_attributes("quvel_ws.server", _LAZY, globals())


__all__ = [
    "DEFAULT_SECRET",
    "AppConfig",
    "DevAuth",
    "Limits",
    "PusherServer",
    "ServerThread",
    "SignatureError",
    "app_from_env",
    "default_secret_apps",
    "is_loopback",
    "load_apps_file",
    "redis_url_from_apps_file",
    "sign_params",
    "verify_request",
    "webhook_signature",
]
