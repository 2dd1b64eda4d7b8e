"""The WebSocket transport: ``websockets``' sans-I/O ``ClientProtocol`` driven from an ``asyncio.Protocol``.

No task per message and no ``await`` per frame: ``data_received`` feeds the bytes to the parser, collects
every complete text message of that read, and hands the whole batch to the listener in one call. The
listener (the connection driver) sees three things: opened, a batch of messages, closed (once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Mapping
from typing import Protocol, cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from quvel_ws.errors import InvalidArgument, TransportError

logger = logging.getLogger(__name__)

HARD_MAX_MESSAGE = 64 * 1024 * 1024
"""Frames over this close the socket (1009) instead of being buffered: a bound on memory."""


class TransportListener(Protocol):
    """What the connection driver implements to hear from a :class:`WebSocketTransport`."""

    def transport_messages(self, transport: WebSocketTransport, messages: list[bytes]) -> None: ...

    def transport_lost(self, transport: WebSocketTransport, code: int | None, reason: str) -> None: ...

    def transport_dropped(self, transport: WebSocketTransport, size: int) -> None: ...


class WebSocketTransport(asyncio.Protocol):
    """One WebSocket connection. Create with :func:`open_websocket`; text messages arrive as UTF-8 bytes."""

    def __init__(
        self,
        url: str,
        listener: TransportListener,
        *,
        headers: Mapping[str, str] | None,
        origin: str | None,
        max_message_bytes: int,
    ) -> None:
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise InvalidArgument(f"not a WebSocket URL: {url!r} ({exc})") from None
        self.uri = uri
        self.max_message_bytes = max_message_bytes
        self._listener = listener
        self._proto = ClientProtocol(uri, max_size=HARD_MAX_MESSAGE)
        self._request = self._proto.connect()
        if origin is not None:
            self._request.headers["Origin"] = origin
        for name, value in (headers or {}).items():
            self._request.headers[name] = value
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        self._reported = False
        self._started = False
        self._early: list[bytes] = []
        self._close_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._proto.send_request(self._request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        proto = self._proto
        proto.receive_data(data)
        messages: list[bytes] | None = None
        for event in proto.events_received():
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if event.fin:
                        if opcode is Opcode.TEXT:
                            if messages is None:
                                messages = []
                            self._append(messages, cast(bytes, event.data))
                    else:
                        self._fragments = [cast(bytes, event.data)]
                        self._fragment_text = opcode is Opcode.TEXT
                elif opcode is Opcode.CONT and self._fragments is not None:
                    self._fragments.append(cast(bytes, event.data))
                    if event.fin:
                        whole, self._fragments = b"".join(self._fragments), None
                        if self._fragment_text:
                            if messages is None:
                                messages = []
                            self._append(messages, whole)
                # ping/pong/close are answered by the sans-I/O protocol itself
            elif isinstance(event, Response):
                self._handshake_done()
        self._flush()
        if messages:
            if self._started:
                self._listener.transport_messages(self, messages)
            else:
                self._early.extend(messages)
        if proto.state is State.CLOSED:
            self._finish()

    def eof_received(self) -> bool | None:
        self._proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._opened.done():
            reason = str(exc) if exc else "connection closed during the WebSocket handshake"
            self._opened.set_exception(TransportError(reason))
        self._report()

    # --- use -----------------------------------------------------------------------------------

    async def wait_open(self) -> None:
        await self._opened

    def start(self) -> None:
        """Begin delivering to the listener, including what arrived with the handshake response."""
        if self._started:
            return
        self._started = True
        early, self._early = self._early, []
        if early:
            self._listener.transport_messages(self, early)
        if self._proto.state is State.CLOSED or (
            self._transport is not None and self._transport.is_closing()
        ):
            self._report()

    @property
    def is_open(self) -> bool:
        return self._proto.state is State.OPEN and self._transport is not None

    def send_text(self, text: str | bytes) -> bool:
        """Write one text frame; False if the socket is not open (nothing is queued)."""
        if not self.is_open:
            return False
        self._proto.send_text(text.encode() if isinstance(text, str) else text)
        self._flush()
        return True

    def close(self, code: int = 1000, reason: str = "", *, grace: float = 2.0) -> None:
        """Start the closing handshake; abort the TCP connection if it is not done within ``grace``."""
        if self._transport is None or self._transport.is_closing():
            return
        if self._proto.state is State.OPEN:
            self._proto.send_close(code, reason)
            self._flush()
            self._close_timer = self._loop.call_later(grace, self.abort)
        else:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # --- internals -----------------------------------------------------------------------------

    def _append(self, messages: list[bytes], data: bytes) -> None:
        if len(data) > self.max_message_bytes:
            self._listener.transport_dropped(self, len(data))
            return
        messages.append(data)

    def _handshake_done(self) -> None:
        if self._opened.done():
            return
        exc = self._proto.handshake_exc
        if exc is None:
            self._opened.set_result(None)
        else:
            self._opened.set_exception(TransportError(f"WebSocket handshake failed: {exc}"))
            self.abort()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._proto.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                with contextlib.suppress(OSError):
                    transport.write_eof()
        if self._proto.close_expected() and self._close_timer is None:
            self._close_timer = self._loop.call_later(2.0, self.abort)

    def _finish(self) -> None:
        self._report()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _report(self) -> None:
        if (
            self._reported
            or not self._started
            or not self._opened.done()
            or self._opened.exception() is not None
        ):
            return
        self._reported = True
        received = self._proto.close_rcvd
        code = received.code if received is not None else None
        reason = received.reason if received is not None else ""
        self._listener.transport_lost(self, code, reason)


async def open_websocket(
    url: str,
    listener: TransportListener,
    *,
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    timeout: float = 15.0,  # noqa: ASYNC109 - one bound over connect + handshake
    max_message_bytes: int = 1024 * 1024,
) -> WebSocketTransport:
    """Connect and complete the WebSocket handshake, or raise :class:`TransportError`."""
    loop = asyncio.get_running_loop()
    protocol = WebSocketTransport(
        url, listener, headers=headers, origin=origin, max_message_bytes=max_message_bytes
    )
    uri = protocol.uri
    context = None
    if uri.secure:
        context = ssl if ssl is not None else ssl_module.create_default_context()
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: protocol,
                uri.host,
                uri.port,
                ssl=context,
                server_hostname=uri.host if context else None,
            )
            await protocol.wait_open()
    except TimeoutError:
        protocol.abort()
        raise TransportError(f"could not open {url} within {timeout:g}s") from None
    except (OSError, InvalidHandshake) as exc:
        protocol.abort()
        raise TransportError(f"could not open {url}: {exc}") from exc
    except BaseException:
        protocol.abort()
        raise
    return protocol
