"""App configuration: the id/key/secret triples the server accepts, with per-app options and limits.

Apps come from arguments, from ``QUVEL_APP_*`` environment variables, or from a JSON file (a list of
objects, or ``{"apps": [...]}``) using the same field names as :class:`AppConfig`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quvel_ws.errors import InvalidArgument
from quvel_ws.protocol import decode_key

_APP_ID_RE = re.compile(r"\A[0-9A-Za-z_-]{1,100}\Z")
_KEY_RE = re.compile(r"\A[^\s/?#]{1,200}\Z")
#: The well-known development credentials. A server bound beyond loopback refuses to run with this
#: secret: anyone who knows it (it is in the docs) could read private channels and publish.
DEFAULT_KEY = "app-key"
DEFAULT_SECRET = "app-secret"


@dataclass(frozen=True)
class AppConfig:
    """One Pusher app: credentials, feature switches and limits (defaults follow Pusher Channels).

    The official SDKs insist on a numeric ``id``; other ids work with quvel and pusher-js.
    """

    id: str = "1"
    key: str = DEFAULT_KEY
    secret: str = field(default=DEFAULT_SECRET, repr=False)  # never in logs or tracebacks
    enable_client_events: bool = False
    #: A disabled app refuses connections (4003) and HTTP API calls (403), as Pusher does.
    enabled: bool = True
    #: Push ``pusher_internal:subscription_count`` to the subscribers of non-presence channels when
    #: their count changes (coalesced per ``subscription_count_interval`` seconds), as Pusher's
    #: opt-in feature does; pusher-js emits it as ``pusher:subscription_count``.
    subscription_count_events: bool = False
    subscription_count_interval: float = 0.1
    #: Close sockets that neither sign in nor subscribe a private channel within this many seconds
    #: (Soketi's ``userAuthenticationTimeout``, code 4009). ``None``: sign-in is optional.
    user_authentication_timeout: float | None = None
    #: Accept ``pusher:signin`` (user authentication). Off: a sign-in is answered with ``pusher:error``
    #: 4200 and the socket stays open, as on a server without the feature (Reverb).
    user_authentication: bool = True
    #: Channels one socket may hold at once; one more is refused with ``pusher:subscription_error``
    #: (``LimitReached``, status 4100). Real apps hold tens; the cap bounds one socket's memory.
    max_channels_per_connection: int = 1000
    max_connections: int | None = None
    max_client_events_per_second: int = 10
    max_payload_bytes: int = 10 * 1024
    max_presence_members: int = 100
    max_presence_member_bytes: int = 2 * 1024
    max_channel_name_length: int = 200
    max_event_name_length: int = 200
    max_channels_per_event: int = 100
    max_batch_size: int = 10
    #: How long the last event of a ``cache-`` channel is kept, in seconds.
    cache_ttl: float = 3600.0
    #: URLs that receive webhooks (channel_occupied, channel_vacated, member_added, member_removed,
    #: client_event), signed with this app's key and secret like Pusher's.
    webhooks: tuple[str, ...] = ()
    #: Browser origins allowed to connect (``Origin`` header): ``"*"`` for any, exact origins
    #: (``"https://app.example.com"``) or host patterns (``"*.example.com"``), as Reverb's
    #: ``allowed_origins``. A connection without an ``Origin`` (not a browser) passes only with ``"*"``.
    allowed_origins: tuple[str, ...] = ("*",)
    #: Base64 of the 32-byte master key of ``private-encrypted-`` channels (the SDKs' option of this
    #: name). The server never needs it; ``quvel serve --dev-auth`` and ``quvel trigger`` use it.
    encryption_master_key_base64: str | None = None

    def __post_init__(self) -> None:
        if not _APP_ID_RE.match(str(self.id)):
            raise InvalidArgument(f"app id {self.id!r} must be 1-100 letters, digits, '_' or '-'")
        if not _KEY_RE.match(self.key):
            raise InvalidArgument(
                f"app key {self.key!r} must be 1-200 characters without spaces, '/', '?', '#'"
            )
        if not self.secret:
            raise InvalidArgument(f"app {self.id!r} needs a non-empty secret")
        for name in (
            "max_client_events_per_second",
            "max_payload_bytes",
            "max_presence_members",
            "max_presence_member_bytes",
            "max_channel_name_length",
            "max_event_name_length",
            "max_channels_per_event",
            "max_batch_size",
            "max_channels_per_connection",
        ):
            if int(getattr(self, name)) < 1:
                raise InvalidArgument(f"app {self.id!r}: {name} must be at least 1")
        if self.max_connections is not None and self.max_connections < 1:
            raise InvalidArgument(f"app {self.id!r}: max_connections must be at least 1 (or None)")
        if self.encryption_master_key_base64 is not None:
            try:
                decode_key(self.encryption_master_key_base64)
            except ValueError as exc:
                raise InvalidArgument(
                    f"app {self.id!r}: encryption_master_key_base64 must be the base64 of 32 bytes: {exc}"
                ) from None
        if self.user_authentication_timeout is not None and not self.user_authentication:
            raise InvalidArgument(
                f"app {self.id!r}: user_authentication_timeout needs user_authentication on"
            )
        object.__setattr__(self, "webhooks", tuple(self.webhooks))
        object.__setattr__(self, "allowed_origins", tuple(self.allowed_origins))

    def origin_allowed(self, origin: str | None) -> bool:
        if "*" in self.allowed_origins:
            return True
        if not origin:
            return False
        host = urlsplit(origin).hostname or ""
        for allowed in self.allowed_origins:
            if allowed.startswith("*."):
                if host.endswith(allowed[1:]):
                    return True
            elif allowed in (origin, host):
                return True
        return False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AppConfig:
        """Build from a dict (JSON file entry); unknown fields are an error, so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgument(f"unknown app option(s) {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        for name in ("id", "key", "secret"):
            if name in values:
                values[name] = str(values[name])
        return cls(**values)


def load_apps_file(path: str | os.PathLike[str]) -> list[AppConfig]:
    """Read apps from a JSON file: ``[{"id": "1", "key": ..., "secret": ...}]`` or ``{"apps": [...]}``."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read apps file {os.fspath(path)!r}: {exc}") from exc
    items = raw.get("apps") if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise InvalidArgument(f"apps file {os.fspath(path)!r} must hold a non-empty list of app objects")
    return [AppConfig.from_mapping(item) for item in items]


def redis_url_from_apps_file(path: str | os.PathLike[str]) -> str | None:
    """The cluster's Redis URL from an apps file in its object form, ``{"apps": [...], "redis":
    "redis://HOST:PORT/DB"}`` (what ``quvel serve --redis`` takes), or ``None`` if it names none."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read apps file {os.fspath(path)!r}: {exc}") from exc
    url = raw.get("redis") if isinstance(raw, dict) else None
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise InvalidArgument(
            f'apps file {os.fspath(path)!r}: "redis" must be a redis://, rediss:// or unix:// URL, '
            f"got {url!r}"
        )
    return url


def _env_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def app_from_env(env: Mapping[str, str] | None = None) -> AppConfig | None:
    """The app described by ``QUVEL_APP_ID``/``QUVEL_APP_KEY``/``QUVEL_APP_SECRET`` (and
    ``QUVEL_APP_ENABLE_CLIENT_EVENTS``, ``QUVEL_APP_MAX_CONNECTIONS``), or ``None`` if none is set."""
    env = os.environ if env is None else env
    if not any(k in env for k in ("QUVEL_APP_ID", "QUVEL_APP_KEY", "QUVEL_APP_SECRET")):
        return None
    kwargs: dict[str, Any] = {
        "id": env.get("QUVEL_APP_ID", "1"),
        "key": env.get("QUVEL_APP_KEY", DEFAULT_KEY),
        "secret": env.get("QUVEL_APP_SECRET", DEFAULT_SECRET),
    }
    if "QUVEL_APP_ENABLE_CLIENT_EVENTS" in env:
        kwargs["enable_client_events"] = _env_bool(env["QUVEL_APP_ENABLE_CLIENT_EVENTS"])
    if env.get("QUVEL_APP_MAX_CONNECTIONS"):
        kwargs["max_connections"] = int(env["QUVEL_APP_MAX_CONNECTIONS"])
    return AppConfig(**kwargs)


def is_loopback(host: str) -> bool:
    """Is ``host`` a loopback address (or ``localhost``)? ``""``, ``0.0.0.0`` and ``::`` are not."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_secret_apps(apps: Iterable[AppConfig]) -> list[AppConfig]:
    """The apps that use the well-known default secret."""
    default = DEFAULT_SECRET.encode()
    return [app for app in apps if hmac.compare_digest(app.secret.encode(), default)]


def check_apps(apps: Iterable[AppConfig]) -> list[AppConfig]:
    """Validate a set of apps: at least one, and ids and keys unique."""
    result = list(apps)
    if not result:
        raise InvalidArgument("the server needs at least one app")
    for attr in ("id", "key"):
        seen: set[str] = set()
        for app in result:
            value = getattr(app, attr)
            if value in seen:
                raise InvalidArgument(f"two apps share the {attr} {value!r}")
            seen.add(value)
    return result


@dataclass
class Limits:
    """Server-wide limits (per-app ones live on :class:`AppConfig`)."""

    max_frame_bytes: int = 256 * 1024
    max_http_body_bytes: int = 1024 * 1024
    max_http_head_bytes: int = 16 * 1024
    #: A socket whose unsent output grows past this is dropped (TCP abort: a close frame would queue
    #: behind the backlog); a slow consumer must not make the server buffer without bound.
    max_write_buffer_bytes: int = 4 * 1024 * 1024
    #: A keep-alive HTTP connection idle this long between requests is closed.
    http_idle_timeout: float = 60.0
    #: Total deadline for one request head (a WebSocket handshake included), from its first byte (or
    #: from the connection, for the first request); not reset by each byte, so a trickled head
    #: (slowloris) is closed within it.
    head_timeout: float = 10.0
    #: A request body must arrive at this average rate (bytes/s) after ``body_grace`` seconds, so a
    #: body trickled byte by byte is closed; an honest upload is far faster.
    min_body_rate: float = 1024.0
    body_grace: float = 5.0
    #: Connections that have not upgraded to WebSocket (HTTP requests, handshakes under way): at most
    #: this many per server (past it the oldest is closed, so a flood of slow connections cannot lock
    #: new clients out) and per client address (past it the new one is closed).
    max_pending_connections: int = 1024
    max_pending_per_address: int = 64
    #: When ``accept()`` fails for lack of file descriptors (EMFILE), stop accepting for this long
    #: (logged once per pause) instead of spinning.
    accept_pause: float = 1.0
    #: Webhook events waiting to be sent (all apps); past it the oldest are dropped and counted.
    max_pending_webhooks: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_http_body_bytes",
            "max_http_head_bytes",
            "max_write_buffer_bytes",
            "http_idle_timeout",
            "head_timeout",
            "min_body_rate",
            "max_pending_connections",
            "max_pending_per_address",
            "accept_pause",
            "max_pending_webhooks",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument(f"Limits.{name} must be a positive number, got {value!r}")
        if self.body_grace < 0:
            raise InvalidArgument("Limits.body_grace must not be negative")
