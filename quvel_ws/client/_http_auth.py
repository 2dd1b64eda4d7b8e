"""Channel authorisation and user authentication over HTTP, the way pusher-js and laravel-echo do it.

The default :class:`HttpAuthorizer` form-POSTs ``socket_id`` and ``channel_name`` (then extra params) to
the auth endpoint through the application's ``httpx.AsyncClient``, so the session cookie, bearer token
and XSRF header the app already uses go with it. Every failure becomes an
:class:`~quvel_ws.errors.AuthorizationError` (or :class:`~quvel_ws.errors.SigninError`) carrying the
HTTP status: 0 for a network failure or a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import unquote

import httpx
import orjson

from quvel_ws.errors import AuthorizationError, InvalidArgument, SigninError
from quvel_ws.protocol import ChannelAuthData, UserAuthData, decode_key, is_encrypted, is_presence

logger = logging.getLogger(__name__)

HeaderValues: TypeAlias = Mapping[str, str]
HeadersProvider: TypeAlias = Callable[[], HeaderValues | Awaitable[HeaderValues]]
"""Called before every auth request (tokens that rotate must not be captured once)."""
ParamsProvider: TypeAlias = Callable[[], Mapping[str, str] | Awaitable[Mapping[str, str]]]

AuthResponse: TypeAlias = ChannelAuthData | Mapping[str, Any]
ChannelAuthorizer: TypeAlias = Callable[[str, str], Awaitable[AuthResponse]]
"""A custom authoriser: ``async def authorize(channel_name, socket_id)`` returning the auth endpoint's
JSON (``{"auth": ..., "channel_data"?: ..., "shared_secret"?: ...}``) or a ``ChannelAuthData``."""
UserAuthenticator: TypeAlias = Callable[[str], Awaitable[UserAuthData | Mapping[str, Any]]]
"""A custom user authenticator: ``async def authenticate(socket_id)`` returning ``{"auth", "user_data"}``."""

_MAX_REDIRECTS = 3
_CREDENTIAL_HEADERS = ("authorization", "cookie", "x-xsrf-token", "x-csrf-token", "proxy-authorization")


def parse_channel_auth(channel: str, payload: Any, *, status: int | None = 200) -> ChannelAuthData:
    """Validate an auth endpoint's JSON for ``channel`` (pusher-js's checks plus the encrypted key)."""
    if isinstance(payload, ChannelAuthData):
        data: Mapping[str, Any] = {"auth": payload.auth, "channel_data": payload.channel_data}
        if is_encrypted(channel) and payload.shared_secret is None:
            raise AuthorizationError(
                channel, "no shared_secret in the auth response of an encrypted channel", status=status
            )
        _check_auth_string(channel, data, status)
        return payload
    if not isinstance(payload, Mapping):
        raise AuthorizationError(
            channel,
            f"the auth response is a JSON {type(payload).__name__}, not an object with an 'auth' key",
            status=status,
            body=_preview(payload),
        )
    _check_auth_string(channel, payload, status)
    channel_data = payload.get("channel_data")
    if channel_data is not None and not isinstance(channel_data, str):
        raise AuthorizationError(
            channel,
            f"channel_data must be the JSON string the signature covers, not a {type(channel_data).__name__}",
            status=status,
            body=_preview(payload),
        )
    if is_presence(channel) and channel_data is None:
        raise AuthorizationError(
            channel,
            "a presence channel's auth response needs channel_data",
            status=status,
            body=_preview(payload),
        )
    secret: bytes | None = None
    raw_secret = payload.get("shared_secret")
    if is_encrypted(channel):
        if not isinstance(raw_secret, str):
            raise AuthorizationError(
                channel,
                "no shared_secret in the auth response of an encrypted channel",
                status=status,
                body=_preview(payload),
            )
        try:
            secret = decode_key(raw_secret)
        except ValueError as exc:
            raise AuthorizationError(
                channel, f"shared_secret is not the base64 of 32 bytes: {exc}", status=status
            ) from None
    return ChannelAuthData(auth=payload["auth"], channel_data=channel_data, shared_secret=secret)


def parse_user_auth(payload: Any, *, status: int | None = 200) -> UserAuthData:
    """Validate a user-auth endpoint's JSON: ``auth`` and a ``user_data`` JSON string with an ``id``."""
    if isinstance(payload, UserAuthData):
        return payload
    if not isinstance(payload, Mapping):
        raise SigninError(
            f"the user-auth response is a JSON {type(payload).__name__}, not an object", status=status
        )
    auth, user_data = payload.get("auth"), payload.get("user_data")
    if not isinstance(auth, str) or not auth:
        raise SigninError("the user-auth response has no 'auth' string", status=status)
    if not isinstance(user_data, str):
        raise SigninError("user_data must be a JSON string (the signature covers it)", status=status)
    try:
        decoded = orjson.loads(user_data)
    except orjson.JSONDecodeError:
        raise SigninError("user_data is not valid JSON", status=status) from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("id"), str) or not decoded["id"]:
        raise SigninError("user_data needs a non-empty string 'id'", status=status)
    return UserAuthData(auth=auth, user_data=user_data)


def _check_auth_string(channel: str, payload: Mapping[str, Any], status: int | None) -> None:
    auth = payload.get("auth")
    if not isinstance(auth, str) or not auth:
        raise AuthorizationError(
            channel, "the auth response has no 'auth' string", status=status, body=_preview(payload)
        )


def _preview(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()[:500]
    except TypeError:
        return repr(value)[:500]


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(slots=True)
class _Batch:
    socket_id: str
    waiters: dict[str, asyncio.Future[ChannelAuthData]] = field(default_factory=dict)


class HttpAuthorizer:
    """pusher-js's ``ajax`` auth transport over a shared ``httpx.AsyncClient``.

    ``headers`` is a mapping or a provider called before each request; ``params`` likewise. Credential
    headers (``Authorization``, cookies, XSRF) go only to an endpoint on the client's own origin. At
    most ``max_concurrency`` requests run at once (a reconnect re-authorises every channel). With
    ``batch=True`` channels of one socket are authorised together in pusher-js-auth's format.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        endpoint: str = "/broadcasting/auth",
        user_endpoint: str = "/broadcasting/user-auth",
        *,
        headers: HeaderValues | HeadersProvider | None = None,
        params: Mapping[str, str] | ParamsProvider | None = None,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        batch: bool = False,
        batch_delay: float = 0.0,
        batch_size: int = 100,
    ) -> None:
        if max_concurrency < 1:
            raise InvalidArgument("max_concurrency must be at least 1")
        if timeout <= 0:
            raise InvalidArgument("timeout must be positive")
        self._client = client
        self.endpoint = endpoint
        self.user_endpoint = user_endpoint
        self._headers = headers
        self._params = params
        self._timeout = timeout
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._batch = batch
        self._batch_delay = batch_delay
        self._batch_size = batch_size
        self._pending_batch: _Batch | None = None

    # --- channels ------------------------------------------------------------------------------

    async def authorize_channel(self, channel: str, socket_id: str) -> ChannelAuthData:
        """Authorise ``channel`` for ``socket_id``; raises :class:`AuthorizationError`."""
        if self._batch:
            return await self._authorize_batched(channel, socket_id)
        form = {"socket_id": socket_id, "channel_name": channel}
        async with self._semaphore:
            status, payload = await self._post(self.endpoint, form, channel=channel)
        return parse_channel_auth(channel, payload, status=status)

    async def _authorize_batched(self, channel: str, socket_id: str) -> ChannelAuthData:
        batch = self._pending_batch
        if batch is None or batch.socket_id != socket_id or len(batch.waiters) >= self._batch_size:
            batch = self._pending_batch = _Batch(socket_id)
            asyncio.get_running_loop().create_task(self._flush(batch))
        waiter = batch.waiters.get(channel)
        if waiter is None:
            waiter = batch.waiters[channel] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(waiter)

    async def _flush(self, batch: _Batch) -> None:
        await asyncio.sleep(self._batch_delay)
        if self._pending_batch is batch:
            self._pending_batch = None
        names = list(batch.waiters)
        form = {"socket_id": batch.socket_id} | {f"channel_name[{i}]": name for i, name in enumerate(names)}
        try:
            async with self._semaphore:
                status, payload = await self._post(self.endpoint, form, channel=",".join(names))
            per_socket = payload.get(batch.socket_id) if isinstance(payload, Mapping) else None
            if not isinstance(per_socket, Mapping):
                raise AuthorizationError(
                    ",".join(names),
                    f"the batched auth response has no entry for socket {batch.socket_id}",
                    status=status,
                    body=_preview(payload),
                )
        except AuthorizationError as exc:
            for name, waiter in batch.waiters.items():
                if not waiter.done():
                    waiter.set_exception(
                        AuthorizationError(name, exc.message, status=exc.status, body=exc.body)
                    )
            return
        for name, waiter in batch.waiters.items():
            if waiter.done():
                continue
            entry = per_socket.get(name)
            try:
                if not isinstance(entry, Mapping):
                    raise AuthorizationError(name, "missing from the batched auth response", status=404)
                entry_status = entry.get("status")
                if entry_status != 200:
                    raise AuthorizationError(
                        name,
                        f"the auth endpoint answered {entry_status} for this channel",
                        status=entry_status if isinstance(entry_status, int) else None,
                    )
                waiter.set_result(parse_channel_auth(name, entry.get("data"), status=200))
            except AuthorizationError as exc:
                waiter.set_exception(exc)

    # --- users ---------------------------------------------------------------------------------

    async def authenticate_user(self, socket_id: str) -> UserAuthData:
        """Fetch the ``pusher:signin`` payload for ``socket_id``; raises :class:`SigninError`."""
        try:
            async with self._semaphore:
                status, payload = await self._post(self.user_endpoint, {"socket_id": socket_id}, channel=None)
        except AuthorizationError as exc:
            raise SigninError(exc.message, status=exc.status) from None
        return parse_user_auth(payload, status=status)

    # --- HTTP ----------------------------------------------------------------------------------

    async def _post(self, endpoint: str, form: dict[str, str], *, channel: str | None) -> tuple[int, Any]:
        what = channel or "user authentication"
        if self._params is not None:
            extra = await _resolve(self._params() if callable(self._params) else self._params)
            for key, value in extra.items():
                form.setdefault(str(key), str(value))
        headers: dict[str, str] = {"Accept": "application/json"}
        if self._headers is not None:
            provided = await _resolve(self._headers() if callable(self._headers) else self._headers)
            headers.update({str(k): str(v) for k, v in provided.items()})
        try:
            request = self._client.build_request(
                "POST", endpoint, data=form, headers=headers, timeout=self._timeout
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise AuthorizationError(what, f"bad auth endpoint {endpoint!r}: {exc}", status=0) from None
        self._scope_credentials(request, explicit=headers)
        for _hop in range(_MAX_REDIRECTS + 1):
            try:
                response = await self._client.send(request, follow_redirects=False)
            except httpx.TimeoutException:
                raise AuthorizationError(
                    what, f"{request.url} did not answer within {self._timeout:g}s", status=0
                ) from None
            except httpx.HTTPError as exc:
                raise AuthorizationError(
                    what, f"request to {request.url} failed: {exc or type(exc).__name__}", status=0
                ) from None
            if not response.is_redirect:
                break
            await response.aclose()
            target = request.url.join(response.headers.get("Location", ""))
            same_origin = (target.scheme, target.host, target.port) == (
                request.url.scheme,
                request.url.host,
                request.url.port,
            )
            if response.status_code not in (307, 308) or not same_origin:
                # Credentials never follow a redirect elsewhere, and a 302 to a login page means "no".
                raise AuthorizationError(
                    what,
                    f"{request.url} redirected ({response.status_code}) to {target}; auth "
                    "requests follow only same-origin 307/308 redirects",
                    status=response.status_code,
                )
            request = httpx.Request("POST", target, headers=request.headers, content=request.content)
        else:
            raise AuthorizationError(what, f"more than {_MAX_REDIRECTS} redirects from {endpoint}", status=0)
        body = response.content
        if response.status_code != 200:
            raise AuthorizationError(
                what,
                f"unable to retrieve an auth string from {request.url}: received status "
                f"{response.status_code}",
                status=response.status_code,
                body=body.decode("utf-8", "replace"),
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise AuthorizationError(
                what,
                f"the JSON returned from {request.url} was invalid, yet the status was 200",
                status=200,
                body=body.decode("utf-8", "replace"),
            ) from None
        return 200, payload

    def _scope_credentials(self, request: httpx.Request, *, explicit: Mapping[str, str]) -> None:
        """Keep the client's credentials on its own origin, and add the XSRF header Laravel expects."""
        base = self._client.base_url
        same_origin = not base.host or (
            request.url.scheme == base.scheme
            and request.url.host == base.host
            and request.url.port == base.port
        )
        lowered = {k.lower() for k in explicit}
        if not same_origin:
            for name in _CREDENTIAL_HEADERS:
                if name not in lowered and name != "cookie" and name in request.headers:
                    del request.headers[name]
            return
        if "x-xsrf-token" not in request.headers:
            for cookie in self._client.cookies.jar:
                if (
                    cookie.name == "XSRF-TOKEN"
                    and cookie.value
                    and request.url.host.endswith(cookie.domain.lstrip(".") or request.url.host)
                ):
                    request.headers["X-XSRF-TOKEN"] = unquote(cookie.value)
                    break


class CustomAuthorizer:
    """Adapts user-supplied async callables to the authoriser interface, turning their failures into
    typed errors (an ``AuthorizationError`` they raise passes through with its status)."""

    def __init__(
        self,
        channel: ChannelAuthorizer | None,
        user: UserAuthenticator | None,
        fallback: HttpAuthorizer | None,
    ) -> None:
        self._channel = channel
        self._user = user
        self._fallback = fallback

    async def authorize_channel(self, channel: str, socket_id: str) -> ChannelAuthData:
        if self._channel is None:
            if self._fallback is None:
                raise AuthorizationError(channel, "no authorizer configured", status=None)
            return await self._fallback.authorize_channel(channel, socket_id)
        try:
            result = await self._channel(channel, socket_id)
        except AuthorizationError:
            raise
        except Exception as exc:
            raise AuthorizationError(
                channel, f"the custom authorizer raised {type(exc).__name__}: {exc}", status=None
            ) from exc
        return parse_channel_auth(channel, result, status=None)

    async def authenticate_user(self, socket_id: str) -> UserAuthData:
        if self._user is None:
            if self._fallback is None:
                raise SigninError("no user authenticator configured")
            return await self._fallback.authenticate_user(socket_id)
        try:
            result = await self._user(socket_id)
        except SigninError:
            raise
        except Exception as exc:
            raise SigninError(f"the custom user authenticator raised {type(exc).__name__}: {exc}") from exc
        return parse_user_auth(result, status=None)
