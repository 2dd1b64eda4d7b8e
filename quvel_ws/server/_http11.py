"""A minimal HTTP/1.1 request reader and response writer for the server's front door.

Only what the Pusher HTTP API, health checks, the auth endpoint and a WebSocket upgrade need:
``Content-Length`` bodies, keep-alive, pipelining, ``Expect: 100-continue``. Anything else gets a
clear 4xx/5xx instead of a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

from quvel_ws.errors import HttpRequestError


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""
    path: str = ""
    query_string: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    @property
    def is_websocket_upgrade(self) -> bool:
        return (
            self.headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in self.headers.get("connection", "").lower()
        )


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (``head`` excludes the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HttpRequestError(400, "Bad request head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpRequestError(400, "Bad request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpRequestError(400, "Bad header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path, _, query_string = target.partition("?")
    query = {k: v for k, v in parse_qsl(query_string, keep_blank_values=True)}
    return Request(
        method.upper(), target, version, headers, path=path, query_string=query_string, query=query
    )


def body_length(req: Request, max_body: int) -> int:
    if "transfer-encoding" in req.headers:
        raise HttpRequestError(411, "Chunked request bodies are not supported: send Content-Length")
    raw = req.headers.get("content-length", "0") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²".isdigit() is True
        raise HttpRequestError(400, "Bad Content-Length")
    length = int(raw)
    if length > max_body:
        raise HttpRequestError(413, f"Request body of {length} bytes is over the {max_body}-byte limit")
    return length


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    keep_alive: bool = True,
) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Access-Control-Allow-Origin: *",
    ]
    if not keep_alive:
        lines.append("Connection: close")
    if headers:
        lines.extend(f"{k}: {v}" for k, v in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def decoded_path(path: str) -> str:
    return unquote(path)
