"""Back-end auth for Pusher channels: the Python twin of Laravel's ``/broadcasting/auth``.

Server-side code (it signs with the app secret); :mod:`quvel_ws.auth` re-exports it under its old path.

:class:`Authorizer` signs what a back end returns to pusher-js / laravel-echo / quvel_ws: private,
presence and ``private-encrypted-`` channel auth, and user sign-in (``pusher:signin``); it also
encrypts events for encrypted channels. :class:`AuthEndpoint` is a small HTTP server built on it
(``POST /broadcasting/auth`` and ``/broadcasting/user-auth`` with form bodies, Bearer tokens naming
users), for tests, examples and the demo::

    auth = Authorizer("app-key", "app-secret")
    auth.channel("123.456", "presence-room", user={"id": 1, "name": "Ann"})
    # {"auth": "app-key:...", "channel_data": '{"user_id":1,"user_info":{"id":1,"name":"Ann"}}'}
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import parse_qsl

from quvel_ws.errors import HttpRequestError, InvalidArgument, InvalidChannelName
from quvel_ws.protocol import (
    KEY_SIZE,
    channel_name_problem,
    decode_key,
    is_encrypted,
    is_presence,
    is_private,
)
from quvel_ws.server._http11 import Request, body_length, parse_head, response
from quvel_ws.server._signature import channel_auth_string, hmac_hex, user_auth_string
from quvel_ws.server._thread import LoopThread

__all__ = [
    "AUTH_PATHS",
    "CORS_HEADERS",
    "AuthEndpoint",
    "AuthRequest",
    "Authorizer",
    "auth_form",
    "encrypt_event",
    "shared_secret",
]

logger = logging.getLogger(__name__)
_SOCKET_ID_RE = re.compile(r"\A\d+\.\d+\Z")

User = Mapping[str, Any]


def _master_key(master_key: bytes | str) -> bytes:
    """A 32-byte key, given raw or base64-encoded (``encryption_master_key_base64`` in the SDKs)."""
    if isinstance(master_key, str):
        try:
            return decode_key(master_key)
        except ValueError as exc:
            raise InvalidArgument(f"master_key must be 32 bytes or their base64 encoding: {exc}") from None
    key = bytes(master_key)
    if len(key) != KEY_SIZE:
        raise InvalidArgument(f"master_key must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def shared_secret(channel: str, master_key: bytes | str) -> bytes:
    """The per-channel key of a ``private-encrypted-`` channel: sha256(channel name + master key)."""
    if not is_encrypted(channel):
        raise InvalidChannelName(channel, "shared secrets exist only for private-encrypted- channels")
    return hashlib.sha256(channel.encode() + _master_key(master_key)).digest()


def encrypt_event(channel: str, data: Any, master_key: bytes | str) -> str:
    """Encrypt event data for a ``private-encrypted-`` channel as the SDKs do.

    ``data`` that is not a ``str`` is JSON-encoded first. Returns the event's ``data`` string,
    ``{"nonce": b64, "ciphertext": b64}``, which pusher-js and quvel_ws decrypt.
    """
    import nacl.secret
    import nacl.utils

    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    box = nacl.secret.SecretBox(shared_secret(channel, master_key))
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    encrypted = box.encrypt(text.encode(), nonce)
    return json.dumps(
        {
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(encrypted.ciphertext).decode(),
        }
    )


class Authorizer:
    """Signs auth responses with one app's key and secret (and master key, for encrypted channels)."""

    def __init__(self, key: str, secret: str, *, master_key: bytes | str | None = None) -> None:
        if not key or not secret:
            raise InvalidArgument("Authorizer needs the app key and secret")
        self.key = key
        self._secret = secret
        self._master_key = _master_key(master_key) if master_key is not None else None

    def _sign(self, to_sign: str) -> str:
        return f"{self.key}:{hmac_hex(self._secret, to_sign)}"

    @staticmethod
    def _check(socket_id: str, channel: str | None = None) -> None:
        if not isinstance(socket_id, str) or not _SOCKET_ID_RE.match(socket_id):
            raise InvalidArgument(f"invalid socket_id {socket_id!r}: expected digits.digits")
        if channel is not None:
            problem = channel_name_problem(channel, user_channel=True)
            if problem is not None:
                raise InvalidChannelName(channel, problem)

    def private(self, socket_id: str, channel: str) -> dict[str, str]:
        """``{"auth"}`` for a ``private-`` channel (plus ``shared_secret`` for an encrypted one)."""
        self._check(socket_id, channel)
        if not is_private(channel) or is_presence(channel):
            raise InvalidChannelName(channel, "private auth is for private- channels")
        result = {"auth": self._sign(channel_auth_string(socket_id, channel))}
        if is_encrypted(channel):
            if self._master_key is None:
                raise InvalidArgument(f"{channel!r} is encrypted: give the Authorizer a master_key")
            result["shared_secret"] = base64.b64encode(shared_secret(channel, self._master_key)).decode()
        return result

    def presence(
        self, socket_id: str, channel: str, user_id: str | int, user_info: Any = None
    ) -> dict[str, str]:
        """``{"auth", "channel_data"}`` for a ``presence-`` channel; ``channel_data`` is the exact string
        the client must send back (the signature covers it byte for byte)."""
        self._check(socket_id, channel)
        if not is_presence(channel):
            raise InvalidChannelName(channel, "presence auth is for presence- channels")
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
            raise InvalidArgument("presence user_id must be a non-empty string or an int")
        payload: dict[str, Any] = {"user_id": user_id}
        if user_info is not None:
            payload["user_info"] = user_info
        channel_data = json.dumps(payload, separators=(",", ":"))
        return {
            "auth": self._sign(channel_auth_string(socket_id, channel, channel_data)),
            "channel_data": channel_data,
        }

    def channel(
        self, socket_id: str, channel: str, *, user: User | None = None, user_info: Any = None
    ) -> dict[str, str]:
        """The auth response for any private channel, chosen by its prefix (as Laravel's broadcaster
        does). Presence channels need ``user`` (with an ``id``); its ``user_info`` defaults to ``user``."""
        if is_presence(channel):
            if user is None or user.get("id") in (None, ""):
                raise InvalidArgument(f"{channel!r} is a presence channel: pass the user (with an id)")
            return self.presence(
                socket_id, channel, user["id"], dict(user) if user_info is None else user_info
            )
        return self.private(socket_id, channel)

    def user(self, socket_id: str, user: User) -> dict[str, str]:
        """``{"auth", "user_data"}`` for ``pusher:signin``; ``user`` needs an ``id`` and may hold
        ``user_info`` and ``watchlist``."""
        self._check(socket_id)
        user_id = user.get("id")
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
            raise InvalidArgument("the signed-in user needs a non-empty id")
        data = dict(user)
        data["id"] = str(user_id)
        user_data = json.dumps(data, separators=(",", ":"))
        return {"auth": self._sign(user_auth_string(socket_id, user_data)), "user_data": user_data}

    def encrypt(self, channel: str, data: Any) -> str:
        """:func:`encrypt_event` with this authorizer's master key."""
        if self._master_key is None:
            raise InvalidArgument("encrypting needs a master_key")
        return encrypt_event(channel, data, self._master_key)


# --- the HTTP endpoint ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthRequest:
    """What an auth request carried: the form fields and the headers (lower-case names)."""

    path: str
    form: Mapping[str, str]
    headers: Mapping[str, str] = field(repr=False)  # holds the bearer token

    @property
    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:].strip() if value.lower().startswith("bearer ") else None


#: Resolves the user making an auth request (``None``: nobody is signed in, answered with 403).
UserResolver = Callable[[AuthRequest], User | None]
#: May ``user`` join ``channel``? ``False`` → 403; a mapping → that user_info (presence), like
#: the return value of a Laravel channel callback.
ChannelGuard = Callable[[User | None, str], bool | Mapping[str, Any]]


class AuthEndpoint:
    """A Laravel-like auth HTTP endpoint on its own port, for tests, examples and the demo.

    - ``POST /broadcasting/auth`` (also ``/pusher/auth``): form ``socket_id``, ``channel_name``.
    - ``POST /broadcasting/user-auth`` (also ``/pusher/user-auth``): form ``socket_id``.

    ``users`` says who is asking: a mapping of Bearer tokens to users (``{"token-ann": {"id": 1,
    "name": "Ann"}}``) or a callable taking an :class:`AuthRequest`. As Laravel's ``Broadcast::auth``,
    a guest (no token, an unknown one, or no ``users``) gets 403 on every private, presence and
    encrypted channel and on sign-in. ``guest_channels`` opts named channels in for guests (fnmatch
    patterns on the full name, such as ``"private-board.*"``; private and encrypted ones only: presence
    needs a user id). ``can_join(user, channel)`` plays ``routes/channels.php`` (``user`` is ``None``
    for an opted-in guest); without it every signed-in user may join every channel.
    """

    def __init__(
        self,
        key: str,
        secret: str,
        *,
        master_key: bytes | str | None = None,
        users: Mapping[str, User] | UserResolver | None = None,
        can_join: ChannelGuard | None = None,
        guest_channels: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.authorizer = Authorizer(key, secret, master_key=master_key)
        self._users = users
        self._can_join = can_join
        if isinstance(guest_channels, str):
            raise InvalidArgument("guest_channels is a list of patterns, not one string")
        self.guest_channels = tuple(guest_channels)
        for pattern in self.guest_channels:
            if not is_private(pattern) or is_presence(pattern):
                raise InvalidArgument(
                    f"guest_channels pattern {pattern!r} must start with private- (guests have no user id "
                    "for presence channels, and public channels need no auth)"
                )
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[_AuthProtocol] = set()
        #: Every request answered, as ``(path, form, status)``: tests assert on re-authorisation
        #: (``record_requests=False`` keeps none, for a long-running endpoint).
        self.record_requests = record_requests
        self.requests: list[tuple[str, dict[str, str], int]] = []

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the auth endpoint has not started yet")
        return self._port

    @property
    def url(self) -> str:
        """Channel auth URL (``authEndpoint`` / ``channelAuthorization.endpoint``)."""
        return f"http://{self.host}:{self.port}/broadcasting/auth"

    @property
    def user_auth_url(self) -> str:
        """User authentication URL (``userAuthentication.endpoint``)."""
        return f"http://{self.host}:{self.port}/broadcasting/user-auth"

    async def start(self) -> None:
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _AuthProtocol(self), self.host, self._port, reuse_address=True
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for conn in list(self._connections):  # keep-alive clients would hold wait_closed() (3.12+)
                if conn.transport is not None:
                    conn.transport.close()
            await server.wait_closed()

    async def __aenter__(self) -> AuthEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def connection_opened(self, conn: _AuthProtocol) -> None:
        self._connections.add(conn)

    def connection_closed(self, conn: _AuthProtocol) -> None:
        self._connections.discard(conn)

    def start_in_thread(self) -> LoopThread[AuthEndpoint]:
        """Serve from a daemon thread (``with endpoint.start_in_thread(): ...``)."""
        thread = LoopThread(self)
        thread.start()
        return thread

    # --- request handling ----------------------------------------------------------------------------

    def _user(self, req: AuthRequest) -> User | None:
        if self._users is None:
            return None
        if callable(self._users):
            return self._users(req)
        token = req.bearer_token
        return self._users.get(token) if token else None

    def _guest_allowed(self, channel: str) -> bool:
        return not is_presence(channel) and any(fnmatchcase(channel, p) for p in self.guest_channels)

    def handle(self, req: AuthRequest) -> tuple[int, Any]:
        """Answer one auth request: ``(status, JSON body)``."""
        socket_id = req.form.get("socket_id", "")
        if not _SOCKET_ID_RE.match(socket_id):
            return 400, {"message": "socket_id is missing or malformed"}
        user = self._user(req)
        if req.path.endswith("/user-auth"):
            if user is None:
                return 403, {"message": "No signed-in user"}
            return 200, self.authorizer.user(socket_id, user)
        channel = req.form.get("channel_name", "")
        if not channel:
            return 403, {"message": "No channel_name"}  # Laravel: AccessDeniedHttpException
        problem = channel_name_problem(channel, user_channel=True)
        if problem is not None:
            return 400, {"message": f"channel_name: {problem}"}
        if not is_private(channel):
            return 400, {"message": "Public channels need no auth"}
        if user is None and not self._guest_allowed(channel):
            return 403, {"message": "No signed-in user"}  # Laravel: a guarded channel needs a user
        verdict: bool | Mapping[str, Any] = True
        if self._can_join is not None:
            verdict = self._can_join(user, channel)
        if verdict is False:
            return 403, {"message": f"Not allowed to join {channel}"}
        try:
            if is_presence(channel):
                assert user is not None
                info = dict(verdict) if isinstance(verdict, Mapping) else dict(user)
                return 200, self.authorizer.presence(socket_id, channel, user["id"], info)
            return 200, self.authorizer.private(socket_id, channel)
        except InvalidArgument as exc:
            logger.error("auth endpoint cannot sign %s: %s", channel, exc)
            return 500, {"message": str(exc)}

    def respond(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        """Answer one HTTP request to the endpoint: ``(status, JSON body or None, headers)``.

        Routes the auth paths (form from a POST body or a GET query, as Laravel's ``match(['get',
        'post'])`` route), answers CORS pre-flights, and turns a resolver or guard bug into a 500.
        """
        if req.method == "OPTIONS":
            return 204, None, dict(CORS_HEADERS)
        if req.path not in AUTH_PATHS:
            return 404, {"message": f"No route {req.path}"}, dict(CORS_HEADERS)
        if req.method not in ("POST", "GET"):
            return 405, {"message": "Use POST"}, dict(CORS_HEADERS)
        form = auth_form(req)
        try:
            status, body = self.handle(AuthRequest(req.path, form, req.headers))
        except Exception:  # a resolver/guard bug is the app's 500, not a dead endpoint
            logger.exception("auth endpoint failed")
            status, body = 500, {"message": "Internal error in the auth endpoint"}
        if self.record_requests:
            self.requests.append((req.path, form, status))
        return status, body, dict(CORS_HEADERS)


def auth_form(req: Request) -> dict[str, str]:
    """The form fields of an auth request: a POST body or a GET query (Laravel's ``match(['get',
    'post'])`` route)."""
    return dict(
        parse_qsl(
            req.body.decode("utf-8", "replace") if req.method == "POST" else req.query_string,
            keep_blank_values=True,
        )
    )


#: Headers of every answer: a browser app on another origin (Vite's dev server) may call the endpoint.
CORS_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, X-CSRF-TOKEN, X-Socket-Id",
    }
)
#: Laravel's paths (``Broadcast::routes()``, ``Broadcast::userRoutes()``) and pusher-js's defaults.
AUTH_PATHS = ("/broadcasting/auth", "/broadcasting/user-auth", "/pusher/auth", "/pusher/user-auth")
_MAX_HEAD = 16 * 1024


class _AuthProtocol(asyncio.Protocol):
    def __init__(self, endpoint: AuthEndpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: tuple[Request, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have every method used here but are not
        # asyncio.Transport (or even BaseTransport) subclasses.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.endpoint.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        try:
            while True:
                if self.pending is None:
                    end = self.buffer.find(b"\r\n\r\n", 0, _MAX_HEAD + 4)
                    if end < 0 or end > _MAX_HEAD:  # however the bytes arrived
                        if len(self.buffer) > _MAX_HEAD:
                            raise HttpRequestError(431, "Request head too large")
                        return
                    req = parse_head(bytes(self.buffer[:end]))
                    del self.buffer[: end + 4]
                    self.pending = (req, body_length(req, 64 * 1024))
                req, length = self.pending
                if len(self.buffer) < length:
                    return
                req.body = bytes(self.buffer[:length])
                del self.buffer[:length]
                self.pending = None
                self._answer(req)
        except HttpRequestError as exc:
            self.transport.write(
                response(exc.status, json.dumps({"message": exc.message}).encode(), keep_alive=False)
            )
            self.transport.close()

    def _answer(self, req: Request) -> None:
        assert self.transport is not None
        status, body, headers = self.endpoint.respond(req)
        payload = b"" if body is None else json.dumps(body).encode()
        self.transport.write(response(status, payload, headers=headers, keep_alive=req.keep_alive))
        if not req.keep_alive:
            self.transport.close()
