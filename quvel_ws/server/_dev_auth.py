"""Development auth on the server's own port: ``quvel serve --dev-auth``.

Answers Laravel's ``/broadcasting/auth`` and ``/broadcasting/user-auth`` (and pusher-js's ``/pusher/...``
paths) for everyone: the user is named by the bearer token (``Authorization: Bearer 7`` is user 7; no
token is user 1) and may join every channel; presence members are ``{"name": "User <id>"}``. That lets
``quvel listen ... --type privateNotification`` or a Vue app using Echo try private, presence and
encrypted channels before the Laravel back end exists. It signs anything for anyone, so it only runs on
a loopback address: :class:`DevAuth` refuses any other bind address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from quvel_ws.errors import InvalidArgument
from quvel_ws.server._app import AppConfig
from quvel_ws.server._http import Route
from quvel_ws.server._http11 import Request
from quvel_ws.server.auth import AUTH_PATHS, AuthEndpoint, AuthRequest

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
    """Signs every channel for the bearer token's user, with ``app``'s key and secret.

    ``master_key`` (32 bytes, or their base64) also answers ``private-encrypted-`` channels with their
    ``shared_secret``; without it those get a 500 naming the missing key. ``host`` is the address the
    server binds: anything but a loopback address raises :class:`~quvel_ws.errors.InvalidArgument`.
    """

    def __init__(self, app: AppConfig, *, host: str, master_key: bytes | str | None = None) -> None:
        if not is_loopback(host):
            raise InvalidArgument(
                f"--dev-auth signs every channel for anyone, so it only runs on a loopback address "
                f"(127.0.0.1, ::1, localhost); the server is bound to {host!r}"
            )
        self.app = app
        self.endpoint = AuthEndpoint(
            app.key,
            app.secret,
            master_key=master_key,
            users=_dev_user,
            can_join=_presence_info,
            record_requests=False,
        )

    @property
    def routes(self) -> dict[str, Route]:
        """The server routes (``PusherServer(routes=...)``) answering the auth paths."""
        return dict.fromkeys(AUTH_PATHS, self.answer)

    def answer(self, req: Request) -> tuple[int, bytes, str, Mapping[str, str]]:
        status, body, headers = self.endpoint.respond(req)
        payload = b"" if body is None else orjson.dumps(body)
        if status >= 400:
            logger.info("dev auth %s -> %d %s", req.path, status, payload[:200].decode("utf-8", "replace"))
        return status, payload, "application/json", headers
