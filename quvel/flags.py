"""The command line's one flag vocabulary, shared by ``serve``, ``trigger`` and ``listen``.

Every setting has one flag, one environment variable and one default, all shown in ``--help``. A value
comes from, first to last: the flag, the ``--env-file`` (a Laravel ``.env``), the ``QUVEL_*``
environment variable, the default. Old spellings (``trigger --key``) still parse but are hidden.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPS_FILE",
    "APP_ID",
    "APP_KEY",
    "APP_SECRET",
    "ENV_FILE",
    "HEAD_TIMEOUT",
    "HOST",
    "MASTER_KEY",
    "MAX_CHANNELS_PER_CONNECTION",
    "MAX_PENDING_CONNECTIONS",
    "MAX_PENDING_PER_ADDRESS",
    "MAX_PENDING_WEBHOOKS",
    "PORT",
    "SCHEME",
    "Setting",
    "UsageError",
    "add",
    "env_file_settings",
    "resolve",
    "server_bind_settings",
]


class UsageError(Exception):
    """A bad setting on the command line, in the environment or in a file; the message says which."""


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise ValueError(f"a port is a number from 0 to 65535, got {text!r}")
    return int(text)


def _scheme(text: str) -> str:
    if text not in ("http", "https"):
        raise ValueError(f"the scheme is http or https, got {text!r}")
    return text


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One option: its flag (and hidden old spellings), environment variable, default and help."""

    dest: str
    flag: str
    env: str
    default: Any
    help: str
    metavar: str | None = None
    convert: Callable[[str], Any] = str
    old: tuple[str, ...] = ()


APP_ID = Setting("app_id", "--app-id", "QUVEL_APP_ID", "1", "the Pusher app id", "ID")
APP_KEY = Setting(
    "app_key", "--app-key", "QUVEL_APP_KEY", "app-key", "the app key (public)", "KEY", old=("--key",)
)
APP_SECRET = Setting(
    "app_secret",
    "--app-secret",
    "QUVEL_APP_SECRET",
    "app-secret",
    "the app secret (signs HTTP API calls and channel auth)",
    "SECRET",
    old=("--secret",),
)
MASTER_KEY = Setting(
    "master_key",
    "--master-key",
    "QUVEL_MASTER_KEY",
    None,
    "base64 of the 32-byte encryption master key for private-encrypted- channels "
    "(the SDKs' encryption_master_key_base64)",
    "BASE64",
)
HOST = Setting("host", "--host", "QUVEL_HOST", "127.0.0.1", "the server's host", "HOST")
PORT = Setting("port", "--port", "QUVEL_PORT", 6001, "the server's port", "PORT", convert=_port)
SCHEME = Setting("scheme", "--scheme", "QUVEL_SCHEME", "http", "http or https", "SCHEME", convert=_scheme)
APPS_FILE = Setting(
    "apps_file",
    "--apps-file",
    "QUVEL_APPS_FILE",
    None,
    "JSON file of apps ([{id, key, secret, ...}], as quvel serve reads)",
    "PATH",
)
ENV_FILE = Setting(
    "env_file",
    "--env-file",
    "QUVEL_ENV_FILE",
    None,
    "a Laravel .env: REVERB_* or PUSHER_* (and VITE_*) settings, used where no flag is given; "
    "QUVEL_* variables come after it",
    "PATH",
)

# `quvel serve`'s operational limits (the defaults are Limits' and AppConfig's; a test keeps them equal).
MAX_CHANNELS_PER_CONNECTION = Setting(
    "max_channels_per_connection",
    "--max-channels-per-connection",
    "QUVEL_MAX_CHANNELS_PER_CONNECTION",
    1000,
    "channels one socket may be subscribed to at once; past it a subscribe gets "
    "pusher:subscription_error LimitReached (4100), for every app (apps-file ones too)",
    "N",
    convert=_count,
)
MAX_PENDING_CONNECTIONS = Setting(
    "max_pending_connections",
    "--max-pending-connections",
    "QUVEL_MAX_PENDING_CONNECTIONS",
    1024,
    "connections not yet upgraded to WebSocket (HTTP requests, handshakes under way); past it the "
    "oldest is closed, so a flood of slow connections cannot lock new clients out",
    "N",
    convert=_count,
)
MAX_PENDING_PER_ADDRESS = Setting(
    "max_pending_per_address",
    "--max-pending-per-address",
    "QUVEL_MAX_PENDING_PER_ADDRESS",
    64,
    "connections not yet upgraded from one client address; past it the new one is closed "
    "(raise it behind a proxy that connects from one address)",
    "N",
    convert=_count,
)
HEAD_TIMEOUT = Setting(
    "head_timeout",
    "--head-timeout",
    "QUVEL_HEAD_TIMEOUT",
    10.0,
    "seconds one request head, WebSocket handshake included, may take from its first byte (total, "
    "not reset by each byte): a trickled head is answered 408 and closed",
    "S",
    convert=_seconds,
)
MAX_PENDING_WEBHOOKS = Setting(
    "max_pending_webhooks",
    "--max-pending-webhooks",
    "QUVEL_MAX_PENDING_WEBHOOKS",
    10_000,
    "webhook events waiting to be sent (all apps); past it the oldest are dropped, counted and logged",
    "N",
    convert=_count,
)


def add(
    parser: argparse.ArgumentParser,
    setting: Setting,
    *,
    help: str | None = None,
    default: Any = None,
) -> None:
    """Add ``setting``'s flag (and its hidden old spellings); ``help``/``default`` adapt it to a command."""
    shown = setting.default if default is None else default
    text = f"{help or setting.help} (default: {'none' if shown is None else shown}; env {setting.env})"
    kwargs: dict[str, Any] = {"dest": setting.dest, "default": None, "metavar": setting.metavar}
    parser.add_argument(setting.flag, help=text.replace("%", "%%"), **kwargs)
    for old in setting.old:
        parser.add_argument(old, help=argparse.SUPPRESS, **kwargs)


def resolve(
    args: argparse.Namespace,
    setting: Setting,
    file_values: Mapping[str, Any] | None = None,
    *,
    default: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """The setting's value: the flag, else ``file_values[dest]`` (from ``--env-file``), else the
    environment variable, else the default. A bad environment value raises :class:`UsageError`."""
    value = getattr(args, setting.dest, None)
    if value is not None:  # checked here, not by argparse, so the command reports it in its own words
        try:
            return setting.convert(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise UsageError(f"{setting.flag}: {exc}") from None
    if file_values is not None and file_values.get(setting.dest) is not None:
        return file_values[setting.dest]
    env = os.environ if environ is None else environ
    raw = env.get(setting.env)
    if raw:
        try:
            return setting.convert(raw)
        except ValueError as exc:
            raise UsageError(f"{setting.env}: {exc}") from None
    return setting.default if default is None else default


def env_file_settings(args: argparse.Namespace, *, for_server: bool) -> dict[str, Any]:
    """The ``--env-file`` (or ``$QUVEL_ENV_FILE``) as setting values (``app_id``, ``app_key``, ...);
    empty without one. ``for_server``: the back end's view (``REVERB_HOST`` before ``VITE_REVERB_HOST``).
    Raises :class:`UsageError` naming the variable that is wrong or missing."""
    path = resolve(args, ENV_FILE)
    if not path:
        return {}
    from quvel_store.container import LaravelBroadcasting
    from quvel_store.errors import ConfigError

    try:
        found = LaravelBroadcasting.from_env_file(path, for_server=for_server)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    values: dict[str, Any] = {
        "app_id": found.app_id,
        "app_key": found.key,
        "app_secret": found.secret,
        "host": found.host,
        "port": found.port,
        "scheme": found.scheme,
        "app_url": found.app_url,
    }
    return {k: v for k, v in values.items() if v is not None}


def server_bind_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Where ``quvel serve`` listens, from the ``--env-file`` as Laravel Reverb reads it
    (``config/reverb.php``): ``REVERB_SERVER_HOST`` and ``REVERB_SERVER_PORT``. Without
    ``REVERB_SERVER_PORT``, ``REVERB_PORT`` (the port the app and Echo connect to, right when nothing sits
    in front of the server, as in local development). ``REVERB_HOST`` is a public hostname, never a bind
    address. Only for ``BROADCAST_CONNECTION=reverb``; empty without a file or those variables."""
    path = resolve(args, ENV_FILE)
    if not path:
        return {}
    from pathlib import Path

    from quvel_store.container import LaravelBroadcasting, parse_dotenv
    from quvel_store.errors import ConfigError

    try:
        values = parse_dotenv(Path(path).read_text(encoding="utf-8"), source=os.fspath(path))
        if LaravelBroadcasting.from_values(values, True, os.fspath(path)).connection != "reverb":
            return {}
    except (OSError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    found: dict[str, Any] = {}
    host = values.get("REVERB_SERVER_HOST", "").strip()
    if host:
        found["host"] = host
    for name in ("REVERB_SERVER_PORT", "REVERB_PORT"):
        raw = values.get(name, "").strip()
        if raw:
            try:
                found["port"] = _port(raw)
            except ValueError as exc:
                raise UsageError(f"{path}: {name}: {exc}") from None
            break
    return found
