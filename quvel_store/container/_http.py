"""The HTTP transport an :class:`ApiService` builds when given none: TLS set up only when needed.

``httpx.AsyncClient()`` loads the system CA bundle when it is built (tens of milliseconds), even when
every request goes to an ``http://`` API, as a server rendering each request in its own container does.
This transport sends ``http://`` requests through a pool that never does TLS, and builds the verifying
``https://`` transport (httpx's defaults) on the first ``https://`` request only.
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any

import httpx

__all__ = ["LazyTlsTransport", "default_transport"]

# httpx's transport constructor insists on an SSL context even for a pool that only ever serves
# http:// (where it is never used). This one trusts no CA at all, so even if it were used it could
# not verify anything and would fail closed; built once because it is never configured or used.
_HTTP_ONLY_CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class LazyTlsTransport(httpx.AsyncBaseTransport):
    """``http://`` through a plain pool; ``https://`` through a default httpx transport built on first use."""

    def __init__(self, **tls_options: Any) -> None:
        self._tls_options = tls_options
        self._plain = httpx.AsyncHTTPTransport(verify=_HTTP_ONLY_CONTEXT, trust_env=False)
        self._tls: httpx.AsyncHTTPTransport | None = None

    @property
    def tls_ready(self) -> bool:
        """Whether the ``https://`` transport (and its CA bundle) has been built."""
        return self._tls is not None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return await self._plain.handle_async_request(request)
        if self._tls is None:
            self._tls = httpx.AsyncHTTPTransport(**self._tls_options)
        return await self._tls.handle_async_request(request)

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._tls is not None:
            await self._tls.aclose()


def default_transport() -> httpx.AsyncBaseTransport | None:
    """The transport for a client built without one: lazy TLS, unless proxies are configured in the
    environment (then None: httpx builds its own, honouring them)."""
    if urllib.request.getproxies():
        return None
    return LazyTlsTransport()
