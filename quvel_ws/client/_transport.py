"""The client's WebSocket transport: an ``asyncio.Protocol`` with websockets' sans-I/O ``ClientProtocol``
for the opening handshake and for the frames it writes (masked pings, pongs, text, close).

Server frames are read by :meth:`WebSocketTransport._parse_frames`, not by websockets' parser (several
times faster for the small frames Pusher sends): no task per message and no ``await`` per frame, every
complete text message of one read goes to the listener in one call. The listener (the connection
driver) hears three things: a batch of messages, a dropped oversize message, and closed (once).
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
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from quvel_ws._logs import protocol_logger
from quvel_ws.errors import CertificateError, InvalidArgument, TransportError

logger = logging.getLogger(__name__)


_PROTOCOL_LOGGER = protocol_logger("quvel_ws.wire")

HARD_MAX_MESSAGE = 64 * 1024 * 1024
"""Frames over this close the socket (1009): no Pusher server sends them, it is a broken peer.

Messages over ``max_message_bytes`` (but under this) are skipped as they stream past, never buffered:
the client holds at most one message of ``max_message_bytes`` plus one socket read."""


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
        self._proto = ClientProtocol(uri, max_size=HARD_MAX_MESSAGE, logger=_PROTOCOL_LOGGER)
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
        self._fragment_size = 0
        self._fragment_dropped = False  # the message being reassembled went over the limit
        self._handshaking = True
        self._head: bytearray | None = bytearray()
        # An incomplete frame's bytes, as received (joined once, when ``_need`` bytes are in: linear).
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._need = 0
        self._skip = 0  # bytes still to discard of an oversize frame
        self._closed_info: tuple[int | None, str] | None = None
        self._reported = False
        self._started = False
        self._early: list[bytes] = []
        self._early_dropped: list[int] = []
        self._close_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have every method used here but are not
        # asyncio.Transport (or even BaseTransport) subclasses.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._proto.send_request(self._request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._handshaking:
            rest = self._handshake_data(data)
            if rest is None:
                return
            data = rest
        if self._closed_info is not None:
            return  # after a close frame nothing more is read (RFC 6455 §5.5.1)
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip :]
            self._skip = 0
        if self._pending:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < self._need:
                return
            data = b"".join(self._pending)
            self._pending.clear()
        messages = self._parse_frames(data)
        if messages:
            if self._started:
                self._listener.transport_messages(self, messages)
            else:
                self._early.extend(messages)
        if self._closed_info is not None:
            self._finish()

    def _handshake_data(self, data: bytes) -> bytes | None:
        """Feed the HTTP response to websockets (which validates it); return the bytes after it.

        Only the response head goes through websockets' parser: the frames that follow are read by
        :meth:`_parse_frames`, which is several times faster for the small frames Pusher sends."""
        if self._head is None:  # not a 101: websockets reads the error response to the end
            self._proto.receive_data(data)
            self._after_handshake_events()
            return None
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 65536:
                self._fail_handshake("the HTTP response head is over 64 KiB")
            return None
        head, rest = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
        if not head.startswith((b"HTTP/1.1 101 ", b"HTTP/1.0 101 ")):
            self._head = None
            self._proto.receive_data(head + rest)
            self._after_handshake_events()
            return None
        self._head = None
        self._handshaking = False
        self._proto.receive_data(head)
        self._after_handshake_events()
        if not self._opened.done() or self._opened.exception() is not None:
            return None
        return rest

    def _after_handshake_events(self) -> None:
        for event in self._proto.events_received():
            if isinstance(event, Response):
                self._handshake_done()
        self._flush()

    def _fail_handshake(self, reason: str) -> None:
        if not self._opened.done():
            self._opened.set_exception(TransportError(f"WebSocket handshake failed: {reason}"))
        self.abort()

    def _parse_frames(self, data: bytes) -> list[bytes] | None:
        """Cut server frames (never masked) out of ``data``; keep an incomplete tail for next time.

        Text messages are returned (fragmented ones joined); pings are answered; a close frame is
        echoed and recorded. A frame breaking RFC 6455 fails the connection with 1002."""
        messages: list[bytes] | None = None
        pos, size = 0, len(data)
        while size - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                header = 10
            if b1 & 0x80 or b0 & 0x70:
                self._protocol_error("a masked frame or reserved bits from the server")
                return messages
            if length > HARD_MAX_MESSAGE:
                self._protocol_error(f"a {length}-byte frame is over {HARD_MAX_MESSAGE} bytes", 1009)
                return messages
            end = pos + header + length
            opcode = b0 & 0x0F
            if length > self.max_message_bytes and opcode < 3:
                if not self._drop_oversize(opcode, bool(b0 & 0x80), length):
                    return messages
                if end > size:  # skip the rest as it arrives: never buffered
                    self._skip = end - size
                    return messages
                pos = end
                continue
            if end > size:
                break
            payload = data[pos + header : end]
            pos = end
            if opcode == 1 and b0 & 0x80 and self._fragments is None:  # the common case
                if messages is None:
                    messages = [payload]
                else:
                    messages.append(payload)
            elif opcode in (0, 1, 2):
                whole = self._fragment(opcode, bool(b0 & 0x80), payload)
                if whole is not None:
                    if messages is None:
                        messages = []
                    self._append(messages, whole)
                elif self._closed_info is not None:
                    return messages
            elif opcode == 9:
                if self._proto.state is State.OPEN:
                    self._proto.send_pong(payload)
                    self._flush()
            elif opcode == 10:
                pass
            elif opcode == 8:
                self._close_received(payload)
                return messages
            else:
                self._protocol_error(f"unknown opcode {opcode}")
                return messages
        if pos < size:
            tail = data[pos:]
            self._pending.append(tail)
            self._pending_size = len(tail)
            self._need = self._frame_size(tail)
        return messages

    @staticmethod
    def _frame_size(tail: bytes) -> int:
        """How many bytes the incomplete frame at the start of ``tail`` needs (header only, if short)."""
        if len(tail) < 2:
            return 2
        length = tail[1] & 0x7F
        if length == 126:
            return 4 if len(tail) < 4 else 4 + int.from_bytes(tail[2:4], "big")
        if length == 127:
            return 10 if len(tail) < 10 else 10 + int.from_bytes(tail[2:10], "big")
        return 2 + length

    def _drop_oversize(self, opcode: int, fin: bool, length: int) -> bool:
        """A data frame over ``max_message_bytes`` was announced: its message is dropped (reported
        once, when its last frame is seen) and the caller skips the payload. False when the frame
        breaks RFC 6455 (the connection is then failed)."""
        if opcode == 0:
            if self._fragments is None:
                self._protocol_error("a continuation frame without a message to continue")
                return False
            self._fragment_size += length
            self._fragment_dropped = True
            self._fragments.clear()
            if fin:
                self._end_dropped_fragments()
            return True
        if self._fragments is not None:
            self._protocol_error("a new message before the previous one ended")
            return False
        if fin:
            if opcode == 1:
                self._dropped(length)
            return True
        self._fragments = []
        self._fragment_size = length
        self._fragment_text = opcode == 1
        self._fragment_dropped = True
        return True

    def _end_dropped_fragments(self) -> None:
        if self._fragment_text:
            self._dropped(self._fragment_size)
        self._fragments = None
        self._fragment_dropped = False

    def _fragment(self, opcode: int, fin: bool, payload: bytes) -> bytes | None:
        """Reassemble a fragmented message; the whole text message once its last fragment is in."""
        if opcode == 0:
            if self._fragments is None:
                self._protocol_error("a continuation frame without a message to continue")
                return None
            self._fragment_size += len(payload)
            if self._fragment_dropped or self._fragment_size > self.max_message_bytes:
                self._fragment_dropped = True  # over the limit: stop holding its fragments
                self._fragments.clear()
                if fin:
                    self._end_dropped_fragments()
                return None
            self._fragments.append(payload)
        else:
            if self._fragments is not None:
                self._protocol_error("a new message before the previous one ended")
                return None
            if fin:
                return payload if opcode == 1 else None
            self._fragments = [payload]
            self._fragment_size = len(payload)
            self._fragment_text = opcode == 1
        if not fin:
            return None
        whole, self._fragments = b"".join(self._fragments), None
        return whole if self._fragment_text else None

    def _close_received(self, payload: bytes) -> None:
        code, reason = 1005, ""
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            reason = payload[2:].decode("utf-8", "replace")
        self._closed_info = (code, reason)
        if self._proto.state is State.OPEN:  # echo it, as RFC 6455 asks
            try:
                self._proto.send_close(code if 1000 <= code < 5000 and code not in (1005, 1006) else 1000)
            except ValueError:
                self._proto.send_close(1000)
            self._flush()

    def _protocol_error(self, reason: str, code: int = 1002) -> None:
        logger.warning("closing the WebSocket: the server sent %s", reason)
        if self._proto.state is State.OPEN:
            self._proto.send_close(code, reason[:120])
            self._flush()
        self._closed_info = (None, reason)

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
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
        dropped, self._early_dropped = self._early_dropped, []
        for size in dropped:  # an oversize message can arrive with the handshake response, too
            self._listener.transport_dropped(self, size)
        if self._closed_info is not None or (self._transport is not None and self._transport.is_closing()):
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
            if self._close_timer is not None:
                self._close_timer.cancel()  # (_flush set the default deadline; this one replaces it)
            self._close_timer = self._loop.call_later(grace, self.abort)
        else:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # --- internals -----------------------------------------------------------------------------

    def _append(self, messages: list[bytes], data: bytes) -> None:
        if len(data) > self.max_message_bytes:
            self._dropped(len(data))
            return
        messages.append(data)

    def _dropped(self, size: int) -> None:
        if self._started:
            self._listener.transport_dropped(self, size)
        else:
            self._early_dropped.append(size)

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
        if self._reported or not self._started or not self._opened.done() or self._opened.exception():
            return
        self._reported = True
        code, reason = self._closed_info if self._closed_info is not None else (None, "")
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
    except ssl_module.SSLCertVerificationError as exc:
        protocol.abort()
        raise CertificateError(
            f"the TLS certificate of {uri.host} could not be verified ({exc.verify_message or exc}); "
            "trust its CA with ca_file= (or ssl=), or fix the server's certificate"
        ) from exc
    except (OSError, InvalidHandshake) as exc:
        protocol.abort()
        raise TransportError(f"could not open {url}: {exc}") from exc
    except BaseException:
        protocol.abort()
        raise
    return protocol
