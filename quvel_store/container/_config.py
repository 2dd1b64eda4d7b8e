"""Typed, immutable settings for the services, from arguments, ``QUVEL_*`` environment variables and dicts.

Known settings are coerced and checked when the :class:`Config` is built (so a bad ``QUVEL_API_TIMEOUT``
fails at start-up with a message naming the variable, not deep inside a request); any other key is kept
as given and read with ``config.get(key)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from quvel_store.errors import ConfigError

__all__ = ["ENV_PREFIX", "Config"]

ENV_PREFIX = "QUVEL_"

_Kind = Literal["str", "opt_str", "bool", "seconds", "opt_seconds"]


@dataclass(frozen=True)
class _Field:
    kind: _Kind
    default: Any
    help: str


# The settings services understand (a read-only table shared by every Config).
_FIELDS: Mapping[str, _Field] = MappingProxyType(
    {
        "api_url": _Field("opt_str", None, "base URL of the backend API, e.g. https://api.example.com"),
        "tenant_id": _Field("opt_str", None, "tenant identifier (multi-tenant apps)"),
        "ws_url": _Field("opt_str", None, "WebSocket URL, e.g. wss://ws.example.com/app/<key>"),
        "ws_auth_endpoint": _Field("str", "/broadcasting/auth", "channel authorization endpoint"),
        "ws_user_auth_endpoint": _Field("str", "/broadcasting/user-auth", "user authentication endpoint"),
        "locale": _Field("str", "en", "current locale for i18n"),
        "fallback_locale": _Field("str", "en", "locale used when a key is missing in the current one"),
        "server_rendering": _Field(
            "bool", False, "true while rendering on a server: no WebSocket connections"
        ),
        "api_timeout": _Field("seconds", 10.0, "seconds before an API request times out"),
        "api_connect_timeout": _Field("opt_seconds", None, "seconds to connect (defaults to api_timeout)"),
    }
)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class Config:
    """Settings for the services. Precedence, lowest first: defaults, ``QUVEL_*`` environment variables,
    the ``values`` mapping, keyword arguments.

    ``env`` chooses the environment: ``None`` reads ``os.environ``, a mapping is used instead (tests),
    ``False`` ignores the environment. ``QUVEL_API_URL`` sets ``api_url``; ``QUVEL_FOO`` sets ``foo``.
    """

    __slots__ = ("_sources", "_values")

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        env: Mapping[str, str] | Literal[False] | None = None,
        **settings: Any,
    ) -> None:
        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}
        environ: Mapping[str, str] = {} if env is False else (os.environ if env is None else env)
        for var in environ:  # (keys first: os.environ decodes each value it yields, wanted or not)
            if var.startswith(ENV_PREFIX) and len(var) > len(ENV_PREFIX):
                key = var[len(ENV_PREFIX) :].lower()
                merged[key] = environ[var]
                sources[key] = f"environment variable {var}"
        if values is not None:
            if not isinstance(values, Mapping):
                raise ConfigError(f"Config values must be a mapping, got {type(values).__name__}")
            for key, value in values.items():
                merged[_check_key(key)] = value
                sources[key] = "the config mapping"
        for key, value in settings.items():
            merged[key] = value
            sources[key] = "a keyword argument"

        resolved: dict[str, Any] = {name: field.default for name, field in _FIELDS.items()}
        for key, value in merged.items():
            field = _FIELDS.get(key)
            resolved[key] = value if field is None else _coerce(key, value, field, sources[key])
        self._values: dict[str, Any] = resolved
        self._sources: dict[str, str] = sources

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Settings from ``QUVEL_*`` variables only (``os.environ`` unless ``environ`` is given)."""
        return cls(env=environ)

    @classmethod
    def from_laravel_env(
        cls,
        path: str | os.PathLike[str] = ".env",
        values: Mapping[str, Any] | None = None,
        /,
        *,
        env: Mapping[str, str] | Literal[False] | None = None,
        **settings: Any,
    ) -> Config:
        """Settings from a Laravel app's ``.env``, as ``@laravel/echo-vue``'s ``configureEcho`` reads it.

        ``ws_url`` comes from ``BROADCAST_CONNECTION`` (``reverb``/``pusher``) and ``VITE_REVERB_APP_KEY``,
        ``VITE_REVERB_HOST``, ``VITE_REVERB_PORT``, ``VITE_REVERB_SCHEME`` (or the ``PUSHER_`` ones, with
        ``ws-<cluster>.pusher.com`` when no host is set), each falling back to its form without ``VITE_``;
        TLS unless the scheme is ``http``. ``api_url`` comes from ``APP_URL`` (where Laravel answers
        ``/broadcasting/auth``). Also set: ``broadcaster`` (the connection). ``values``, keywords and
        ``env`` work as in ``Config(...)``; precedence, lowest first: ``QUVEL_*`` variables, the file,
        ``values``, keywords. A bad or missing variable raises :class:`ConfigError` naming it.
        """
        from quvel_store.container._laravel_env import LaravelBroadcasting

        environ = None if env is None or env is False else env
        found = LaravelBroadcasting.from_env_file(path, environ=environ)
        where = os.fspath(path)
        derived: dict[str, Any] = {"ws_url": found.ws_url, "broadcaster": found.connection}
        if found.app_url:
            derived["api_url"] = found.app_url
        merged = cls({**derived, **(values or {})}, env=env, **settings)
        source = f"the Laravel env file {where}"
        merged._sources.update({k: source for k in derived if k not in (values or {}) and k not in settings})
        return merged

    # Typed known settings ---------------------------------------------------------------------------------

    @property
    def api_url(self) -> str | None:
        return self._values["api_url"]  # type: ignore[no-any-return]

    @property
    def tenant_id(self) -> str | None:
        return self._values["tenant_id"]  # type: ignore[no-any-return]

    @property
    def ws_url(self) -> str | None:
        return self._values["ws_url"]  # type: ignore[no-any-return]

    @property
    def ws_auth_endpoint(self) -> str:
        return self._values["ws_auth_endpoint"]  # type: ignore[no-any-return]

    @property
    def ws_user_auth_endpoint(self) -> str:
        return self._values["ws_user_auth_endpoint"]  # type: ignore[no-any-return]

    @property
    def locale(self) -> str:
        return self._values["locale"]  # type: ignore[no-any-return]

    @property
    def fallback_locale(self) -> str:
        return self._values["fallback_locale"]  # type: ignore[no-any-return]

    @property
    def server_rendering(self) -> bool:
        return self._values["server_rendering"]  # type: ignore[no-any-return]

    @property
    def api_timeout(self) -> float:
        return self._values["api_timeout"]  # type: ignore[no-any-return]

    @property
    def api_connect_timeout(self) -> float | None:
        return self._values["api_connect_timeout"]  # type: ignore[no-any-return]

    # Mapping-like access -----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The setting ``key`` (known or extra), or ``default`` when it is unset or None."""
        value = self._values.get(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise ConfigError(
                f"no setting {key!r}; set it with Config({{{key!r}: ...}}) or {ENV_PREFIX}{key.upper()}",
                key=key,
            ) from None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._values.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, Any]:
        """Every setting (known ones with their defaults, then extras) as a new dict."""
        return dict(self._values)

    def source_of(self, key: str) -> str:
        """Where ``key``'s value came from: ``default``, an environment variable, the mapping, a keyword."""
        return self._sources.get(key, "default")

    def merged(self, values: Mapping[str, Any] | None = None, /, **settings: Any) -> Config:
        """A new Config with these values on top of this one's (the environment is not read again)."""
        copy = Config({**self._values, **(values or {}), **settings}, env=False)
        sources = dict(self._sources)
        sources.update(dict.fromkeys(values or {}, "the config mapping"))
        sources.update(dict.fromkeys(settings, "a keyword argument"))
        copy._sources = sources
        return copy

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and other._values == self._values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._values.items() if v is not None}
        return f"Config({shown!r})"


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"setting names must be non-empty strings, got {key!r}")
    return key


def _coerce(key: str, value: Any, field: _Field, source: str) -> Any:
    where = f"{key} (from {source})"
    if field.kind in ("opt_str", "opt_seconds") and (value is None or value == ""):
        return None
    if field.kind in ("str", "opt_str"):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}", key=key, source=source)
        if field.kind == "str" and not value:
            raise ConfigError(f"{where} must not be empty ({field.help})", key=key, source=source)
        return value
    if field.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(
            f"{where} must be a boolean (true/false, 1/0, yes/no, on/off), got {value!r}",
            key=key,
            source=source,
        )
    # seconds
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if math.isnan(number) or number <= 0 or math.isinf(number):
        raise ConfigError(
            f"{where} must be a positive number of seconds (e.g. 10 or 2.5), got {value!r}",
            key=key,
            source=source,
        )
    return number
