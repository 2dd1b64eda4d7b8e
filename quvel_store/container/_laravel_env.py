"""Reading a Laravel app's ``.env`` the way ``@laravel/echo-vue``'s ``configureEcho`` reads Vite's env.

``BROADCAST_CONNECTION`` (``BROADCAST_DRIVER`` before Laravel 11) picks ``reverb`` or ``pusher``; then
``REVERB_APP_KEY/HOST/PORT/SCHEME`` (or ``PUSHER_APP_KEY/HOST/PORT/SCHEME/APP_CLUSTER``) and their
``VITE_`` forms give the WebSocket address, with echo-vue's defaults: TLS unless the scheme is ``http``,
port 443 with TLS and 80 without, and for Pusher without a host ``ws-<cluster>.pusher.com``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from quvel_store.errors import ConfigError

__all__ = ["LaravelBroadcasting", "parse_dotenv"]

_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.]*\Z")
_INTERPOLATION_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
_CONNECTIONS = ("reverb", "pusher")


def parse_dotenv(
    text: str, *, source: str = ".env", environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables of a ``.env`` text, as Laravel's phpdotenv reads them.

    ``KEY=value``, ``export KEY=value``, ``# comments``, ``"double quoted"`` (escapes and ``${VAR}``
    interpolation), ``'single quoted'`` (literal) and unquoted values (a `` #`` starts a comment;
    ``${VAR}`` interpolated). ``${VAR}`` reads earlier lines, then ``environ`` (``os.environ``).
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}

    def interpolate(value: str) -> str:
        return _INTERPOLATION_RE.sub(lambda m: values.get(m[1], env.get(m[1], "")), value)

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[7:].lstrip()
        name, sep, raw = stripped.partition("=")
        name = name.strip()
        if not sep or not _NAME_RE.match(name):
            raise ConfigError(f"{source} line {number}: expected NAME=value, got {line.strip()[:80]!r}")
        raw = raw.strip()
        if raw.startswith('"'):
            value = _double_quoted(raw, name, source, number)
            values[name] = interpolate(value)
        elif raw.startswith("'"):
            end = raw.find("'", 1)
            if end < 0:
                raise ConfigError(f"{source} line {number}: {name} has an unclosed single quote", key=name)
            values[name] = raw[1:end]
        else:
            comment = raw.find(" #")
            values[name] = interpolate((raw[:comment] if comment >= 0 else raw).strip())
    return values


def _double_quoted(raw: str, name: str, source: str, number: int) -> str:
    out: list[str] = []
    i = 1
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        if char == '"':
            return "".join(out)
        out.append(char)
        i += 1
    raise ConfigError(f"{source} line {number}: {name} has an unclosed double quote", key=name)


@dataclass(frozen=True)
class LaravelBroadcasting:
    """Where a Laravel app broadcasts: the Pusher-protocol server and the app's credentials.

    ``key``/``host``/``port``/``scheme`` are what Echo connects to; ``app_id`` and ``secret`` (back end
    only, ``None`` when the file lacks them) sign HTTP API calls such as ``quvel trigger``.
    """

    connection: str
    key: str
    host: str
    port: int
    scheme: str
    app_id: str | None = None
    secret: str | None = None
    cluster: str | None = None
    #: ``APP_URL``: the Laravel app, which answers ``/broadcasting/auth``.
    app_url: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def ws_url(self) -> str:
        """``ws(s)://host:port/app/<key>``, the URL :class:`~quvel_ws.WebSocketService` takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}/app/{self.key}"

    @classmethod
    def from_env_file(
        cls,
        path: str | os.PathLike[str] = ".env",
        *,
        for_server: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> LaravelBroadcasting:
        """Read ``path``; :class:`~quvel_store.errors.ConfigError` names the variable that is wrong."""
        where = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the Laravel env file {where!r}: {exc.strerror or exc}") from None
        return cls.from_values(parse_dotenv(text, source=where, environ=environ), for_server, where)

    @classmethod
    def from_values(
        cls, values: Mapping[str, str], for_server: bool = False, source: str = ".env"
    ) -> LaravelBroadcasting:
        """From ``.env`` variables already read. ``for_server`` prefers ``REVERB_HOST`` over
        ``VITE_REVERB_HOST`` (the back end's view); otherwise the ``VITE_`` forms come first, as in Echo."""
        connection = _connection(values, source)
        app_url = values.get("APP_URL", "").strip().rstrip("/") or None
        prefix = connection.upper()

        def get(name: str) -> tuple[str | None, str]:
            order = (f"{prefix}_{name}", f"VITE_{prefix}_{name}")
            for var in order if for_server else reversed(order):
                value = values.get(var, "").strip()
                if value:
                    return value, var
            return None, order[1] if not for_server else order[0]

        key, key_var = get("APP_KEY")
        if key is None:
            raise ConfigError(
                f"{source}: {key_var} is not set (the {connection} connection needs the app key)", key=key_var
            )
        if not re.fullmatch(r"[^\s/?#]{1,200}", key):
            raise ConfigError(f"{source}: {key_var}={key!r} is not a valid app key", key=key_var)
        app_id = get("APP_ID")[0]
        secret = get("APP_SECRET")[0]
        host, host_var = get("HOST")
        cluster: str | None = None
        if connection == "pusher":
            cluster = get("APP_CLUSTER")[0] or "mt1"
            if host is None:  # hosted Pusher Channels
                host = f"api-{cluster}.pusher.com" if for_server else f"ws-{cluster}.pusher.com"
                return cls(connection, key, host, 443, "https", app_id, secret, cluster, app_url)
        if host is None:
            raise ConfigError(
                f"{source}: {host_var} is not set (the host of the {connection} server, e.g. localhost)",
                key=host_var,
            )
        scheme, scheme_var = get("SCHEME")
        scheme = (scheme or "https").lower()
        if scheme not in ("http", "https"):
            raise ConfigError(f"{source}: {scheme_var}={scheme!r} must be http or https", key=scheme_var)
        raw_port, port_var = get("PORT")
        if raw_port is None:
            port = 443 if scheme == "https" else 80
        elif raw_port.isascii() and raw_port.isdigit() and 0 < int(raw_port) <= 65535:
            port = int(raw_port)
        else:
            raise ConfigError(
                f"{source}: {port_var}={raw_port!r} must be a port number from 1 to 65535", key=port_var
            )
        return cls(connection, key, host, port, scheme, app_id, secret, cluster, app_url)


def _connection(values: Mapping[str, str], source: str) -> str:
    for variable in ("BROADCAST_CONNECTION", "BROADCAST_DRIVER"):
        raw = values.get(variable, "").strip()
        if raw:
            connection = raw.lower()
            if connection not in _CONNECTIONS:
                raise ConfigError(
                    f"{source}: {variable}={raw!r} is not a Pusher-protocol broadcaster; quvel talks to "
                    f"{' or '.join(_CONNECTIONS)}",
                    key=variable,
                )
            return connection
    # Not set: unambiguous when only one family of keys is there.
    present = [c for c in _CONNECTIONS if any(values.get(f"{v}{c.upper()}_APP_KEY") for v in ("", "VITE_"))]
    if len(present) == 1:
        return present[0]
    raise ConfigError(
        f"{source}: BROADCAST_CONNECTION is not set (reverb or pusher)", key="BROADCAST_CONNECTION"
    )
