"""An embedded Pusher-compatible server: WebSocket protocol 7 and the Pusher HTTP API on one port.

For tests, development and small deployments; production fan-out across machines belongs to Soketi
(Redis/NATS adapter), Laravel Reverb or Pusher Channels (see ``docs/server.md``)::

    async with PusherServer(apps=[AppConfig(id="1", key="app-key", secret="app-secret")]) as server:
        print(server.ws_url, server.http_url)
        await server.trigger("news", "NewUpdate", {"x": 1})
"""

from quvel_ws.server._app import AppConfig, Limits, app_from_env, load_apps_file
from quvel_ws.server._server import PusherServer, ServerThread
from quvel_ws.server._signature import SignatureError, sign_params, verify_request
from quvel_ws.server._webhooks import webhook_signature

__all__ = [
    "AppConfig",
    "Limits",
    "PusherServer",
    "ServerThread",
    "SignatureError",
    "app_from_env",
    "load_apps_file",
    "sign_params",
    "verify_request",
    "webhook_signature",
]
