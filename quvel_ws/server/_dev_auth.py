"""Development auth on the server's own port: ``quvel serve --dev-auth``.

Answers Laravel's ``/broadcasting/auth`` and ``/broadcasting/user-auth`` (and pusher-js's ``/pusher/...``
paths) for everyone: the user is named by the bearer token (``Authorization: Bearer 7`` is user 7; no
token is user 1) and may join every channel; presence members are ``{"name": "User <id>"}``. That lets
``quvel listen ... --type privateNotification`` or a Vue app using Echo try private, presence and
encrypted channels before the Laravel back end exists. It signs anything for anyone, so it only runs on
a loopback address: :class:`DevAuth` refuses any other bind address.

With several apps, each request is signed with the secret of the app its socket connected to (the
``socket_id`` it names), as each Laravel app signs with its own; ``quvel serve --dev-auth APP_ID`` signs
for that app only.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from quvel_ws.errors import InvalidArgument
from quvel_ws.server._app import AppConfig
from quvel_ws.server._http import Route
from quvel_ws.server._http11 import Request
from quvel_ws.server.auth import AUTH_PATHS, CORS_HEADERS, AuthEndpoint, AuthRequest, auth_form

__all__ = ["DEFAULT_DEV_USER", "DevAuth", "is_loopback"]

logger = logging.getLogger(__name__)

#: The user of a request without a bearer token.
DEFAULT_DEV_USER = "1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _dev_user(req: AuthRequest) -> Mapping[str, Any]:
    token = req.bearer_token or DEFAULT_DEV_USER
    # Laravel sends getAuthIdentifier(), an int for the usual numeric ids
    user_id: str | int = int(token) if token.isascii() and token.isdigit() and len(token) < 19 else token
    return {"id": user_id, "user_info": {"name": f"User {token}"}}


def _presence_info(user: Mapping[str, Any] | None, channel: str) -> Mapping[str, Any]:
    assert user is not None  # _dev_user always names one
    info: Mapping[str, Any] = user["user_info"]
    return info


class DevAuth:
    """Signs every channel for the bearer token's user, with the key and secret of the socket's app.

    ``app`` is one :class:`AppConfig` or several. ``app_of_socket`` (the server's
    :meth:`~quvel_ws.server.PusherServer.app_of_socket`) says which app a request's ``socket_id`` is
    connected to; a socket it does not know (connected to another node, or made up) is signed for the
    first app. ``only`` (an app id) signs for that app alone: a socket of another app gets a 403 naming
    both. ``master_key`` (32 bytes, or their base64) answers ``private-encrypted-`` channels with their
    ``shared_secret`` for apps without an ``encryption_master_key_base64`` of their own; without either
    those get a 500 naming the missing key. ``host`` is the address the server binds: anything but a
    loopback address raises :class:`~quvel_ws.errors.InvalidArgument`.
    """

    def __init__(
        self,
        app: AppConfig | Sequence[AppConfig],
        *,
        host: str,
        master_key: bytes | str | None = None,
        app_of_socket: Callable[[str], AppConfig | None] | None = None,
        only: str | None = None,
    ) -> None:
        if not is_loopback(host):
            raise InvalidArgument(
                f"--dev-auth signs every channel for anyone, so it only runs on a loopback address "
                f"(127.0.0.1, ::1, localhost); the server is bound to {host!r}"
            )
        apps = [app] if isinstance(app, AppConfig) else list(app)
        if not apps:
            raise InvalidArgument("DevAuth needs at least one app")
        if only is not None:
            named = [a for a in apps if a.id == only]
            if not named:
                raise InvalidArgument(
                    f"--dev-auth {only!r}: no app with that id (apps: {', '.join(repr(a.id) for a in apps)})"
                )
            apps = named
        self.apps = apps
        self.only = only
        self.app_of_socket = app_of_socket
        self._endpoints = {
            a.id: AuthEndpoint(
                a.key,
                a.secret,
                master_key=a.encryption_master_key_base64 or master_key,
                users=_dev_user,
                can_join=_presence_info,
                record_requests=False,
            )
            for a in apps
        }

    @property
    def app(self) -> AppConfig:
        """The app a socket no app claims is signed for: the first (or the one named by ``only``)."""
        return self.apps[0]

    @property
    def endpoint(self) -> AuthEndpoint:
        """The endpoint signing for :attr:`app`."""
        return self._endpoints[self.app.id]

    def endpoint_for(self, socket_id: str) -> AuthEndpoint | None:
        """The endpoint signing for ``socket_id``'s app; ``None`` when that app is not signed for."""
        owner = self.app_of_socket(socket_id) if self.app_of_socket is not None else None
        if owner is None:
            return self.endpoint
        return self._endpoints.get(owner.id)

    @property
    def routes(self) -> dict[str, Route]:
        """The server routes (``PusherServer(routes=...)``) answering the auth paths."""
        return dict.fromkeys(AUTH_PATHS, self.answer)

    def answer(self, req: Request) -> tuple[int, bytes, str, Mapping[str, str]]:
        endpoint = self.endpoint_for(auth_form(req).get("socket_id", "")) if req.method != "OPTIONS" else None
        if req.method == "OPTIONS" or endpoint is not None:
            status, body, headers = (endpoint or self.endpoint).respond(req)
        else:
            status, headers = 403, dict(CORS_HEADERS)
            body = {"message": f"--dev-auth signs for app {self.only!r} only; this socket is another app's"}
        payload = b"" if body is None else orjson.dumps(body)
        if status >= 400:
            logger.info("dev auth %s -> %d %s", req.path, status, payload[:200].decode("utf-8", "replace"))
        return status, payload, "application/json", headers
