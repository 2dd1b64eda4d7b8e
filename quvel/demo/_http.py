"""A deliberately small asyncio HTTP/1.1 server for the simulated back end.

It speaks just enough HTTP for JSON APIs and form posts (keep-alive, ``Content-Length`` bodies, cookies)
so the demo needs no web framework; it is not meant to face the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 32 * 1024
MAX_BODY_BYTES = 1024 * 1024


class HTTPError(Exception):
    """Raised by a handler to answer with ``status`` and a Laravel-shaped JSON error body."""

    def __init__(self, status: int, message: str, errors: Mapping[str, list[str]] | None = None) -> None:
        self.status = status
        self.message = message
        self.errors = dict(errors) if errors else None
        super().__init__(f"{status} {message}")


@dataclass
class Request:
    """One parsed request. Header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        with contextlib.suppress(Exception):
            jar.load(self.headers.get("cookie", ""))
        return {k: m.value for k, m in jar.items()}

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else {}
        except orjson.JSONDecodeError as exc:
            raise HTTPError(400, f"request body is not JSON: {exc}") from None

    def form(self) -> dict[str, str]:
        """The body as a form (``application/x-www-form-urlencoded``) or, when JSON, its top-level strings."""
        if self.headers.get("content-type", "").startswith("application/json"):
            data = self.json()
            if not isinstance(data, dict):
                raise HTTPError(400, "JSON body must be an object")
            return {str(k): str(v) for k, v in data.items()}
        try:
            return dict(parse_qsl(self.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise HTTPError(400, "form body is not UTF-8") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, orjson.dumps(data), [("Content-Type", "application/json")])

    def set_cookie(self, name: str, value: str, *, http_only: bool = True) -> Response:
        flags = "; Path=/; SameSite=Lax" + ("; HttpOnly" if http_only else "")
        self.headers.append(("Set-Cookie", f"{name}={value}{flags}"))
        return self


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Routes ``METHOD /path/{param}`` patterns to async handlers."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    async def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            allowed = True
            if method == request.method:
                request.params = match.groupdict()
                return await handler(request)
        if allowed:
            raise HTTPError(405, "The method is not supported for this route.")
        raise HTTPError(404, "Not Found")


class HTTPServer:
    """Serves a :class:`Router` on a loopback port (``port=0`` picks a free one)."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0) -> None:
        self._router = router
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTP server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Closing the sockets ends idle keep-alive connections cleanly (their read sees EOF); a handler
        # still running after a grace period is cancelled.
        for writer in list(self._connections.values()):
            writer.close()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; return whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                logger.debug("client closed mid-request")
            return False
        if len(head) > MAX_HEADER_BYTES:
            too_large = HTTPError(431, "Request Header Fields Too Large")
            await self._write(writer, _error_response(too_large), False)
            return False
        try:
            request = _parse_head(head)
            length = int(request.headers.get("content-length", "0"))
        except (ValueError, UnicodeDecodeError):
            await self._write(writer, _error_response(HTTPError(400, "Bad Request")), False)
            return False
        if "chunked" in request.headers.get("transfer-encoding", ""):
            await self._write(writer, _error_response(HTTPError(411, "Length Required")), False)
            return False
        if length < 0 or length > MAX_BODY_BYTES:
            await self._write(writer, _error_response(HTTPError(413, "Payload Too Large")), False)
            return False
        request.body = await reader.readexactly(length) if length else b""
        keep_alive = request.headers.get("connection", "").lower() != "close"
        try:
            response = await self._router.dispatch(request)
        except HTTPError as exc:
            response = _error_response(exc)
        except Exception:
            logger.exception("handler for %s %s failed", request.method, request.path)
            response = _error_response(HTTPError(500, "Server Error"))
        await self._write(writer, response, keep_alive)
        return keep_alive

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in response.headers]
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        await writer.drain()


def _parse_head(head: bytes) -> Request:
    text = head.decode("latin-1")
    request_line, *header_lines = text.split("\r\n")
    method, target, version = request_line.split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"unsupported HTTP version {version!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    parts = urlsplit(target)
    return Request(method.upper(), parts.path, dict(parse_qsl(parts.query)), headers, b"")


def _error_response(exc: HTTPError) -> Response:
    body: dict[str, Any] = {"message": exc.message}
    if exc.errors is not None:
        body["errors"] = exc.errors
    return Response.json(body, exc.status)
