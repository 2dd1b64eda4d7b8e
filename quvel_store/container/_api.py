"""The backend API client: an ``httpx.AsyncClient`` speaking JSON the way a Laravel backend expects.

Credentials (the bearer token, and Laravel's ``XSRF-TOKEN`` cookie echoed as ``X-XSRF-TOKEN``) go only to
the API's own origin (or origins you trust explicitly): a redirect or an absolute URL to another host
never sees them. When the service builds its client (the default, or from ``transport=``), a request hook
on that private client adds them, so every request sent through ``api.client`` carries them, including
the WebSocket service's channel-auth POSTs. A client you pass with ``client=`` may be shared (a server's
connection pool): it is never modified; the service adds the credentials to each of its own requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx
from pydantic_core import PydanticSerializationError, to_jsonable_python

from quvel_store.container._http import default_transport
from quvel_store.errors import (
    ApiCsrfMismatch,
    ApiDecodeError,
    ApiError,
    ApiForbidden,
    ApiNotFound,
    ApiRateLimited,
    ApiServerError,
    ApiStatusError,
    ApiTimeout,
    ApiTransportError,
    ApiUnauthenticated,
    ApiValidationFailed,
    ConfigError,
    ServiceNotConfigured,
)

if TYPE_CHECKING:
    from quvel_store.container._config import Config

__all__ = ["ApiService", "HeaderProvider"]

logger = logging.getLogger(__name__)

XSRF_COOKIE = "XSRF-TOKEN"
XSRF_HEADER = "X-XSRF-TOKEN"
TENANT_HEADER = "X-Tenant-ID"

_STATUS_ERRORS: Mapping[int, type[ApiStatusError]] = MappingProxyType(
    {
        401: ApiUnauthenticated,
        403: ApiForbidden,
        404: ApiNotFound,
        419: ApiCsrfMismatch,
    }
)

_Origin = tuple[str, str, int]
_DEFAULT_HEADERS: Mapping[str, str] = MappingProxyType(
    {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
)
_MAX_REDIRECTS = 20  # httpx's default
#: Headers computed for each request to the API (e.g. ``X-Socket-ID`` while the socket is connected).
HeaderProvider = Callable[[], Mapping[str, str]]


class ApiService:
    """JSON requests against ``base_url``: ``await api.get("/user")`` returns the decoded body.

    Failures raise typed :class:`ApiError` subclasses: a 422 is :class:`ApiValidationFailed` with Laravel's
    field error bag, 401/403/404/419/429/5xx have their own classes, timeouts are :class:`ApiTimeout`.
    Pass ``transport=`` (e.g. one pooled ``httpx.AsyncHTTPTransport`` shared by every request of a server)
    or ``client=`` (your own ``httpx.AsyncClient``, never modified); the service leaves closing either
    to you. Without them it builds its client on first use, doing TLS set-up only for ``https://``.
    ``base_url`` may be an ``httpx.URL``: a server building one service per request can parse it once.
    """

    def __init__(
        self,
        base_url: str | httpx.URL | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        connect_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        tenant_id: str | None = None,
        locale: str | Callable[[], str | None] | None = None,
        trusted_origins: Iterable[str] = (),
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        follow_redirects: bool = True,
    ) -> None:
        if client is not None and transport is not None:
            raise ServiceNotConfigured("pass either client= or transport= to ApiService, not both")
        if token is not None:
            _check_token(token)
        self._token = token
        self._header_providers: list[HeaderProvider] = []
        self._tenant_id = tenant_id
        self._locale = locale
        self._origins: set[_Origin] = {_origin(httpx.URL(o)) for o in trusted_origins}
        self._base_url = httpx.URL(base_url) if base_url and str(base_url) else None
        if self._base_url is not None:
            self._origins.add(_origin(self._base_url))
        if isinstance(timeout, httpx.Timeout):
            timeouts = timeout
        else:
            timeouts = httpx.Timeout(timeout, connect=connect_timeout if connect_timeout else timeout)
        self._headers = {**_DEFAULT_HEADERS, **(headers or {})}
        self._timeouts = timeouts
        self._follow_redirects = follow_redirects
        self._transport = transport
        self._shared = client  # never modified: it may serve other users' requests at the same time
        self._client: httpx.AsyncClient | None = client
        if client is not None and self._base_url is None and str(client.base_url):
            self._base_url = client.base_url
            self._origins.add(_origin(client.base_url))
        if client is not None:
            # the shared client's own headers win, except httpx's default Accept: */* (this speaks JSON)
            self._headers = {
                k: v
                for k, v in self._headers.items()
                if k not in client.headers or (k == "Accept" and client.headers[k] == "*/*")
            }

    @classmethod
    def from_config(
        cls, config: Config, *, locale: str | Callable[[], str | None] | None = None
    ) -> ApiService:
        """An ApiService for ``config.api_url`` with ``config.api_timeout`` / ``api_connect_timeout``,
        ``config.tenant_id`` (sent as ``X-Tenant-ID``) and ``Accept-Language`` from ``locale`` (a string or
        a callable read per request; default ``config.locale``), as QuVel's ApiService and I18nService do."""
        return cls(
            config.api_url,
            timeout=config.api_timeout,
            connect_timeout=config.api_connect_timeout,
            tenant_id=config.tenant_id,
            locale=locale if locale is not None else config.locale,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` (built on first use). When the service built it, requests sent
        through it carry the API's credentials; a ``client=`` you passed is returned as it is."""
        client = self._client
        if client is None:
            transport = self._transport if self._transport is not None else default_transport()
            client = self._client = httpx.AsyncClient(
                base_url=self._base_url or "",
                timeout=self._timeouts,
                headers=self._headers,
                transport=transport,
                follow_redirects=self._follow_redirects,
                # the hook runs for every request the client sends, redirects included
                event_hooks={"request": [self._credentials_hook]},
            )
        return client

    @property
    def base_url(self) -> str | None:
        return str(self._base_url) if self._base_url is not None else None

    @property
    def token(self) -> str | None:
        return self._token

    def set_token(self, token: str | None) -> None:
        """Send ``Authorization: Bearer <token>`` to the API from now on (None stops it)."""
        if token is not None:
            _check_token(token)
        self._token = token

    def clear_token(self) -> None:
        self._token = None

    def trust_origin(self, url: str) -> None:
        """Also send credentials to ``url``'s origin (scheme, host, port), e.g. a separate auth host."""
        self._origins.add(_origin(httpx.URL(url)))

    def add_header_provider(self, provider: HeaderProvider) -> Callable[[], None]:
        """Call ``provider`` for every request to the API's origins and add the headers it returns
        (headers the request already has win). Returns a function that removes it. The container adds
        one sending ``X-Socket-ID`` while the WebSocket is connected, as Echo's HTTP interceptors do,
        so ``broadcast(...)->toOthers()`` leaves out this client's socket."""
        self._header_providers.append(provider)

        def remove() -> None:
            if provider in self._header_providers:
                self._header_providers.remove(provider)

        return remove

    @property
    def xsrf_token(self) -> str | None:
        """The current ``XSRF-TOKEN`` cookie value (URL-decoded), if the server set one."""
        if self._client is None:
            return None
        for cookie in self._client.cookies.jar:
            if cookie.name == XSRF_COOKIE and cookie.value is not None:
                return unquote(cookie.value)
        return None

    # Requests -----------------------------------------------------------------------------------------------

    async def get(self, url: str, *, params: Mapping[str, Any] | None = None, **options: Any) -> Any:
        return await self.request("GET", url, params=params, **options)

    async def post(self, url: str, json: Any = None, **options: Any) -> Any:
        return await self.request("POST", url, json=json, **options)

    async def put(self, url: str, json: Any = None, **options: Any) -> Any:
        return await self.request("PUT", url, json=json, **options)

    async def patch(self, url: str, json: Any = None, **options: Any) -> Any:
        return await self.request("PATCH", url, json=json, **options)

    async def delete(self, url: str, json: Any = None, **options: Any) -> Any:
        return await self.request("DELETE", url, json=json, **options)

    async def csrf_cookie(self, url: str = "/sanctum/csrf-cookie") -> None:
        """Fetch Laravel Sanctum's CSRF cookie (call once before the first state-changing request)."""
        await self.send("GET", url)

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109 - httpx's per-phase timeout
    ) -> Any:
        """Send a JSON request and return the decoded JSON body (None for an empty body or 204)."""
        response = await self.send(method, url, json=json, params=params, headers=headers, timeout=timeout)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            snippet = response.text[:200]
            raise ApiDecodeError(
                f"{method} {response.request.url} returned {response.status_code} with a body that is not "
                f"JSON ({response.headers.get('content-type', 'no content-type')}): {snippet!r}; is "
                f"api_url pointing at the API?",
                method=method,
                url=str(response.request.url),
                status=response.status_code,
                body=response.text,
            ) from exc

    async def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109 - httpx's per-phase timeout
    ) -> httpx.Response:
        """Send a request and return the raw successful ``httpx.Response``; failures raise typed errors."""
        method = method.upper()
        # With a base URL, httpx parses ``url`` once while building the request (a bad one is reported
        # below); without one, a relative URL has nowhere to go, so look at it first.
        if self._base_url is None and _parse(method, url).is_relative_url:
            raise ServiceNotConfigured(
                f"cannot send {method} {url}: no API base URL; set QUVEL_API_URL, pass "
                f"ServiceContainer(config={{'api_url': 'https://api.example.com'}}) or use an absolute URL"
            )
        if json is not None:
            try:  # pydantic models, dataclasses, datetimes, UUIDs, Decimals... as JSON-ready values
                json = to_jsonable_python(json)
            except PydanticSerializationError as exc:
                raise ApiError(
                    f"{method} {url}: the request body is not JSON-serializable ({exc})",
                    method=method,
                    url=url,
                ) from exc
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = timeout
        started = time.perf_counter()
        try:
            if self._shared is None:
                response = await self.client.request(
                    method, url, json=json, params=params, headers=headers, **extra
                )
            else:
                response = await self._send_shared(
                    method, url, json=json, params=params, headers=headers, extra=extra
                )
        except httpx.TimeoutException as exc:
            full = _full(self._base_url, url)
            raise ApiTimeout(
                f"{method} {full} timed out ({type(exc).__name__}); raise api_timeout if the API is slow",
                method=method,
                url=full,
            ) from exc
        except httpx.TransportError as exc:
            full = _full(self._base_url, url)
            raise ApiTransportError(
                f"{method} {full} failed before a response arrived: {exc!r}", method=method, url=full
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # too many redirects, a bad redirect URL...
            _parse(method, url)  # raises "invalid URL" if the fault is the caller's own URL
            full = _full(self._base_url, url)
            raise ApiError(f"{method} {full} failed: {exc!r}", method=method, url=full) from exc
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            full = _full(self._base_url, url)
            logger.debug("%s %s -> %d in %.1f ms", method, full, response.status_code, elapsed_ms)
        if response.is_success:
            return response
        raise _status_error(method, response)

    # Lifecycle ----------------------------------------------------------------------------------------------

    async def _send_shared(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        extra: dict[str, Any],
    ) -> httpx.Response:
        """Send through a shared client without touching it: this request's own headers and
        credentials, and redirects followed here so that each hop gets (or loses) them afresh."""
        shared = self._shared
        assert shared is not None
        target = self._base_url.join(url) if self._base_url is not None else httpx.URL(url)
        request = shared.build_request(
            method, target, json=json, params=params, headers={**self._headers, **(headers or {})}, **extra
        )
        for _ in range(_MAX_REDIRECTS + 1):
            self._apply_credentials(request)
            response = await shared.send(request, follow_redirects=False)
            next_request = response.next_request
            if not self._follow_redirects or next_request is None:
                return response
            await response.aclose()
            request = next_request
        raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)

    async def shutdown(self) -> None:
        """Container hook: close the HTTP client this service built (a ``client=`` or ``transport=``
        you passed is yours, and stays open)."""
        if self._shared is not None or self._transport is not None:
            return  # the client (if built) holds nothing but the caller's transport or is the caller's
        client = self.client  # (one never used is built closed, so later use fails as it should)
        try:
            await client.aclose()
        except RuntimeError as exc:
            # Pooled connections opened under an event loop that has since closed (e.g. used inside one
            # asyncio.run() and shut down from another) cannot be closed from here; the client is closed.
            logger.warning("API client closed, but its connections belonged to a closed event loop: %s", exc)

    # Credentials --------------------------------------------------------------------------------------------

    async def _credentials_hook(self, request: httpx.Request) -> None:
        self._apply_credentials(request)

    def _apply_credentials(self, request: httpx.Request) -> None:
        trusted = _origin(request.url) in self._origins
        bearer = f"Bearer {self._token}" if self._token else None
        if not trusted:
            # Never leak: drop what a previous hop (a redirect from the API) may have carried.
            request.headers.pop(XSRF_HEADER, None)
            if self._tenant_id and request.headers.get(TENANT_HEADER) == self._tenant_id:
                request.headers.pop(TENANT_HEADER, None)
            if bearer is not None and request.headers.get("Authorization") == bearer:
                request.headers.pop("Authorization", None)
            for provider in self._header_providers:
                for name, value in provider().items():
                    if request.headers.get(name) == value:
                        request.headers.pop(name, None)
            return
        for provider in self._header_providers:
            for name, value in provider().items():
                if name not in request.headers:
                    request.headers[name] = value
        if bearer is not None and "Authorization" not in request.headers:
            request.headers["Authorization"] = bearer
        if self._tenant_id and TENANT_HEADER not in request.headers:
            request.headers[TENANT_HEADER] = self._tenant_id
        locale = self._locale() if callable(self._locale) else self._locale
        if locale and "Accept-Language" not in request.headers:
            request.headers["Accept-Language"] = locale
        xsrf = _cookie_from_header(request.headers.get("Cookie"), XSRF_COOKIE)
        if xsrf is not None and XSRF_HEADER not in request.headers:
            request.headers[XSRF_HEADER] = unquote(xsrf)

    async def __aenter__(self) -> ApiService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        return f"<ApiService {self.base_url or '(no base URL)'}>"


def _check_token(token: object) -> None:
    if not isinstance(token, str) or not token.isprintable() or not token.strip():
        raise ConfigError("a bearer token must be a non-empty single-line string", key="token")


def _origin(url: httpx.URL) -> _Origin:
    scheme = url.scheme.lower()
    port = url.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme, 0)
    return (scheme, url.host.lower(), port)


def _parse(method: str, url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ApiError(f"{method} {url!r}: invalid URL ({exc})", method=method, url=str(url)) from exc


def _full(base_url: httpx.URL | None, url: str) -> str:
    try:
        return str(base_url.join(url)) if base_url is not None else url
    except httpx.InvalidURL:
        return url


def _cookie_from_header(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _status_error(method: str, response: httpx.Response) -> ApiStatusError:
    status = response.status_code
    url = str(response.request.url)
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text
    server_message = body.get("message") if isinstance(body, dict) else None
    reason = response.reason_phrase or "error"
    detail = f": {server_message}" if isinstance(server_message, str) and server_message else ""
    message = f"{method} {url} failed with {status} {reason}{detail}"
    headers = dict(response.headers)
    if status == 422:
        errors = body.get("errors") if isinstance(body, dict) else None
        bag = _error_bag(errors)
        return ApiValidationFailed(
            server_message if isinstance(server_message, str) and server_message else message,
            method=method,
            url=url,
            body=body,
            errors=bag,
            headers=headers,
        )
    if status == 429:
        return ApiRateLimited(
            message,
            method=method,
            url=url,
            status=status,
            body=body,
            headers=headers,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = ApiServerError if status >= 500 else ApiStatusError
    return cls(message, method=method, url=url, status=status, body=body, headers=headers)


def _error_bag(errors: Any) -> dict[str, list[str]]:
    """Laravel's ``errors`` object, tolerating a bare string per field."""
    if not isinstance(errors, dict):
        return {}
    bag: dict[str, list[str]] = {}
    for field, messages in errors.items():
        if isinstance(messages, str):
            bag[str(field)] = [messages]
        elif isinstance(messages, list):
            bag[str(field)] = [str(m) for m in messages]
    return bag


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from Laravel; the header stays available in .headers
    return seconds if seconds >= 0 else None
