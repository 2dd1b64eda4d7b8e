"""The front door: one asyncio protocol per TCP connection that serves HTTP and upgrades WebSockets.

The HTTP API and the WebSocket endpoint share one port (as in Soketi and Reverb). After a successful
upgrade the bytes go straight to a :class:`~quvel_ws.server._ws.Socket`; no task per connection, no
queue: reads and fan-out writes happen in the event loop's callbacks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote

import orjson
from websockets.protocol import State
from websockets.server import ServerProtocol

from quvel_ws._logs import protocol_logger
from quvel_ws.errors import HttpRequestError
from quvel_ws.server._frames import error_frame
from quvel_ws.server._http11 import Request, body_length, parse_head, response

if TYPE_CHECKING:
    from quvel_ws.server._server import PusherServer
    from quvel_ws.server._ws import Socket

logger = logging.getLogger(__name__)
_PROTOCOL_LOGGER = protocol_logger(__name__)
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_APP_PATH_RE = re.compile(r"\A(?:/[^?]*)?/app/(?P<key>[^/?]+)/?\Z")
# What an HTTP connection is waiting for, and so which deadline applies.
_HEAD, _BODY, _IDLE = "head", "body", "idle"


class ServerConnection(asyncio.Protocol):
    """HTTP/1.1 until a WebSocket upgrade, then a Pusher socket."""

    def __init__(self, server: PusherServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.socket: Socket | None = None
        self._buffer = bytearray()
        self._pending: tuple[Request, int] | None = None
        self._rejecting: ServerProtocol | None = None
        self._done = False
        self._answering = False  # a gathered (cluster) answer is on its way; later requests wait
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _HEAD

    # --- asyncio callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have every method used here but are not
        # asyncio.Transport (or even BaseTransport) subclasses.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.server.limits.max_write_buffer_bytes)
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.server.admission.admit(self, address):
            logger.debug("closing a connection from %s: too many pending from that address", address)
            self._done = True
            transport.abort()
            return
        self._arm(self.server.limits.head_timeout)

    def data_received(self, data: bytes) -> None:
        if self.socket is not None:
            try:
                self.socket.data_received(data)
            except Exception:  # a bug must cost this connection at most, never the server
                logger.exception("error on socket %s; closing it", self.socket.id)
                self.socket.close(1011, "Internal error")
            return
        if self._rejecting is not None:
            self._rejecting.receive_data(data)
            self._flush_rejecting()
        elif not self._done:
            if self._phase == _IDLE:  # the first byte of the next request starts its head deadline
                self._phase = _HEAD
                self._arm(self.server.limits.head_timeout)
            self._buffer += data
            if self._answering:
                return
            try:
                self._serve_http()
            except Exception:  # never let a request take the server down
                logger.exception("error while serving an HTTP request")
                self._fail(500, "Internal server error")

    def eof_received(self) -> bool | None:
        if self.socket is not None:
            self.socket.eof_received()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.server.admission.release(self)
        self.server.connections.discard(self)
        sock, self.socket = self.socket, None
        if sock is not None:
            sock.closed = True
            sock.closing = True
            self.server.socket_closed(sock)
        self.server.connection_gone()

    def pause_writing(self) -> None:
        # A consumer that cannot keep up would make the server buffer without bound: drop it (its client
        # reconnects). Healthy clients never come near the limit.
        if self.socket is not None and self.transport is not None:
            self.server.slow_consumer(self.socket)

    # --- deadlines ---------------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        """One timer per connection, moved only when the phase changes (never per byte)."""
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline_passed(self) -> None:
        self._timer = None
        if self.transport is None or self.socket is not None or self._done:
            return
        if self._phase == _IDLE:
            self._done = True
            self.transport.close()
        elif self._phase == _BODY:
            self._fail(408, "The request body arrived too slowly")
        else:
            self._fail(408, "The request head did not arrive in time")

    def close_pending(self, reason: str) -> None:
        """Close a connection that has not upgraded (the server has too many such)."""
        logger.debug("closing a pending connection: %s", reason)
        self._done = True
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    # --- HTTP --------------------------------------------------------------------------------------

    def _serve_http(self) -> None:
        assert self.transport is not None
        limits = self.server.limits
        while not self._done and self.socket is None and not self._answering:
            if self._pending is None:
                end = self._buffer.find(b"\r\n\r\n", 0, limits.max_http_head_bytes + 4)
                if end < 0 or end > limits.max_http_head_bytes:  # however the bytes arrived
                    if len(self._buffer) > limits.max_http_head_bytes:
                        self._fail(431, "Request header fields too large")
                    return
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                try:
                    req = parse_head(head)
                    if req.is_websocket_upgrade:
                        self._upgrade(req)
                        return
                    length = body_length(req, limits.max_http_body_bytes)
                except HttpRequestError as exc:
                    self._fail(exc.status, exc.message)
                    return
                if req.headers.get("expect", "").lower() == "100-continue" and len(self._buffer) < length:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self._pending = (req, length)
                if len(self._buffer) < length:  # a minimum average rate, not a per-byte idle timer
                    self._phase = _BODY
                    self._arm(limits.body_grace + length / limits.min_body_rate)
            req, length = self._pending
            if len(self._buffer) < length:
                return
            req.body = bytes(self._buffer[:length])
            del self._buffer[:length]
            self._pending = None
            route = self.server.routes.get(req.path)
            if route is not None:
                status, body, ctype, headers = route(req)
                self._respond(req, status, body, ctype, headers)
                return
            answer = self.server.http_api.handle(req)
            if isinstance(answer, tuple):
                self._respond(req, *answer)
            else:
                self._answering = True
                self._disarm()  # the cluster's own timeout bounds the answer
                task = asyncio.ensure_future(answer)
                task.add_done_callback(functools.partial(self._answered, req))

    def _respond(
        self, req: Request, status: int, body: bytes, ctype: str, headers: Mapping[str, str] | None = None
    ) -> None:
        assert self.transport is not None
        keep_alive = req.keep_alive and not self.server.closing
        self.transport.write(
            response(
                status,
                b"" if req.method == "HEAD" else body,
                content_type=ctype,
                headers=dict(headers) if headers else None,
                keep_alive=keep_alive,
            )
        )
        if not keep_alive:
            self._done = True
            self.transport.close()
        elif self._buffer:  # a pipelined request: its head is due now
            self._phase = _HEAD
            self._arm(self.server.limits.head_timeout)
        else:
            self._phase = _IDLE
            self._arm(self.server.limits.http_idle_timeout)

    def _answered(self, req: Request, task: asyncio.Future[tuple[int, bytes, str]]) -> None:
        self._answering = False
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self._respond(req, *task.result())
            self._serve_http()  # requests pipelined behind this one
        except Exception:
            logger.exception("error while serving an HTTP request")
            self._fail(500, "Internal server error")

    def _fail(self, status: int, message: str) -> None:
        assert self.transport is not None
        self._done = True
        self._disarm()
        self.transport.write(
            response(status, orjson.dumps({"error": message, "code": status}), keep_alive=False)
        )
        self.transport.close()

    def close_idle(self) -> None:
        """Close an HTTP connection between requests (on shutdown)."""
        if self.transport is None or self.socket is not None:
            return
        if self._rejecting is None and self._pending is None and not self._answering:
            self._done = True
            self._disarm()
            self.transport.close()

    # --- WebSocket upgrade ---------------------------------------------------------------------------

    def _upgrade(self, req: Request) -> None:
        assert self.transport is not None
        if req.method != "GET":
            raise HttpRequestError(405, "WebSocket upgrades must use GET")
        if req.headers.get("sec-websocket-version") != "13":
            self._done = True
            self.transport.write(
                response(
                    426,
                    b"Unsupported WebSocket version: use 13",
                    content_type="text/plain",
                    headers={"Sec-WebSocket-Version": "13"},
                    keep_alive=False,
                )
            )
            self.transport.close()
            return
        key = req.headers.get("sec-websocket-key", "")
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            raise HttpRequestError(400, "Invalid Sec-WebSocket-Key")
        match = _APP_PATH_RE.match(req.path)
        if match is None:
            raise HttpRequestError(404, "WebSocket endpoint is /app/{key}?protocol=7")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        leftover = bytes(self._buffer)
        self._buffer.clear()
        self._disarm()
        self.server.admission.release(self)  # upgraded: the WebSocket limits take over
        outcome = self.server.open_socket(
            self.transport, unquote(match["key"]), req.query, req.headers.get("origin")
        )
        if isinstance(outcome, tuple):
            self._reject(*outcome)
            if leftover:
                self.data_received(leftover)
            return
        self.socket = outcome
        if leftover:
            outcome.data_received(leftover)

    def _reject(self, code: int, message: str) -> None:
        """Refuse a WebSocket after the handshake: ``pusher:error`` then a close frame with ``code``."""
        assert self.transport is not None
        self.transport.write(error_frame(code, message))
        proto = ServerProtocol(
            state=State.OPEN, max_size=self.server.limits.max_frame_bytes, logger=_PROTOCOL_LOGGER
        )
        self._rejecting = proto
        proto.send_close(code, message[:120])
        self._flush_rejecting()
        asyncio.get_running_loop().call_later(self.server.close_timeout, self.transport.abort)

    def _flush_rejecting(self) -> None:
        assert self.transport is not None
        assert self._rejecting is not None
        for chunk in self._rejecting.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()
        self._rejecting.events_received()  # discard whatever the client sent meanwhile
