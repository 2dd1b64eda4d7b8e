"""The service's WebSocket URL and the HTTP origin its auth requests go to."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quvel_ws._version import __version__
from quvel_ws.errors import InvalidArgument

CLIENT_NAME = "python-quvel"


def build_ws_url(url: str, client_name: str = CLIENT_NAME) -> str:
    """Validate ``ws(s)://host[:port][/prefix]/app/KEY``; add ``protocol=7``, ``client`` and ``version``."""
    if not isinstance(url, str):
        raise InvalidArgument(f"the WebSocket URL must be a string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidArgument(f"the WebSocket URL must start with ws:// or wss://, got {url!r}")
    if not parts.hostname:
        raise InvalidArgument(f"the WebSocket URL has no host: {url!r}")
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 3 or segments[-2] != "app" or not segments[-1]:
        raise InvalidArgument(f"the WebSocket URL must end in /app/APP_KEY, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidArgument(f"bad port in {url!r}: {exc}") from None
    query = dict(parse_qsl(parts.query))
    query.setdefault("protocol", "7")
    query.setdefault("client", client_name)
    query.setdefault("version", __version__)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), urlencode(query), ""))


def http_origin(ws_url: str) -> str:
    """``ws://h:p/app/k`` → ``http://h:p`` (where a relative auth endpoint is resolved without a client)."""
    parts = urlsplit(ws_url)
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


def absolute_endpoint(endpoint: str, origin: str) -> str:
    return endpoint if "://" in endpoint else origin + ("" if endpoint.startswith("/") else "/") + endpoint
