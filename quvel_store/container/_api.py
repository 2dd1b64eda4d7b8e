"""The backend API client: one shared ``httpx.AsyncClient`` speaking JSON the way a Laravel backend expects.

Credentials (the bearer token, and Laravel's ``XSRF-TOKEN`` cookie echoed as ``X-XSRF-TOKEN``) are added by
a request hook on the client itself, so every request sent through ``api.client`` carries them, including
the WebSocket service's channel-auth POSTs; but only requests to the API's own origin (or origins you
trust explicitly): a redirect or an absolute URL to another host never sees them.
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
#: Headers computed for each request to the API (e.g. ``X-Socket-ID`` while the socket is connected).
HeaderProvider = Callable[[], Mapping[str, str]]


class ApiService:
    """JSON requests against ``base_url``: ``await api.get("/user")`` returns the decoded body.

    Failures raise typed :class:`ApiError` subclasses: a 422 is :class:`ApiValidationFailed` with Laravel's
    field error bag, 401/403/404/419/429/5xx have their own classes, timeouts are :class:`ApiTimeout`.
    Pass ``client=`` to use your own ``httpx.AsyncClient`` (the service then leaves closing it to you).
    """

    def __init__(
        self,
        base_url: str | None = None,
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
        if base_url:
            self._origins.add(_origin(httpx.URL(base_url)))
        if isinstance(timeout, httpx.Timeout):
            timeouts = timeout
        else:
            timeouts = httpx.Timeout(timeout, connect=connect_timeout if connect_timeout else timeout)
        default_headers = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
        if client is None:
            self._owns_client = True
            self._client = httpx.AsyncClient(
                base_url=base_url or "",
                timeout=timeouts,
                headers={**default_headers, **(headers or {})},
                transport=transport,
                follow_redirects=follow_redirects,
            )
        else:
            self._owns_client = False
            self._client = client
            if self._client.headers.get("Accept") == "*/*":  # httpx's default: this service speaks JSON
                del self._client.headers["Accept"]
            for key, value in {**default_headers, **(headers or {})}.items():
                self._client.headers.setdefault(key, value)
            if base_url and not str(client.base_url):
                client.base_url = httpx.URL(base_url)
            if not base_url and str(client.base_url):
                self._origins.add(_origin(client.base_url))
        # The hook runs for every request the client sends, redirects included.
        self._client.event_hooks["request"].append(self._credentials_hook)

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
        """The shared ``httpx.AsyncClient``; requests sent through it carry the API's credentials."""
        return self._client

    @property
    def base_url(self) -> str | None:
        url = str(self._client.base_url)
        return url or None

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
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ApiError(f"{method} {url!r}: invalid URL ({exc})", method=method, url=str(url)) from exc
        if target.is_relative_url and not str(self._client.base_url):
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
        full = _full(self._client, url)
        started = time.perf_counter()
        try:
            response = await self._client.request(
                method, url, json=json, params=params, headers=headers, **extra
            )
        except httpx.TimeoutException as exc:
            raise ApiTimeout(
                f"{method} {full} timed out ({type(exc).__name__}); raise api_timeout if the API is slow",
                method=method,
                url=full,
            ) from exc
        except httpx.TransportError as exc:
            raise ApiTransportError(
                f"{method} {full} failed before a response arrived: {exc!r}", method=method, url=full
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # too many redirects, a bad redirect URL...
            raise ApiError(f"{method} {full} failed: {exc!r}", method=method, url=full) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug("%s %s -> %d in %.1f ms", method, full, response.status_code, elapsed_ms)
        if response.is_success:
            return response
        raise _status_error(method, response)

    # Lifecycle ----------------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Container hook: close the HTTP client (only if this service created it)."""
        if not self._owns_client:
            return
        try:
            await self._client.aclose()
        except RuntimeError as exc:
            # Pooled connections opened under an event loop that has since closed (e.g. used inside one
            # asyncio.run() and shut down from another) cannot be closed from here; the client is closed.
            logger.warning("API client closed, but its connections belonged to a closed event loop: %s", exc)

    # Credentials --------------------------------------------------------------------------------------------

    async def _credentials_hook(self, request: httpx.Request) -> None:
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


def _full(client: httpx.AsyncClient, url: str) -> str:
    try:
        return str(client.base_url.join(url)) if str(client.base_url) else url
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
