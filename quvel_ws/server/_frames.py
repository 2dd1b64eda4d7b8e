"""Server-to-client WebSocket frames, built once as bytes.

Server frames are never masked (RFC 6455 §5.1), so one encoded text frame can be written unchanged to
every subscriber's transport: a publish costs one JSON encode and one header, whatever the fan-out.
"""

from __future__ import annotations

from typing import Any

from quvel_ws.protocol import encode_message


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying ``payload`` (UTF-8 JSON)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def event_frame(
    event: str, data: Any = None, channel: str | None = None, *, user_id: Any = None, has_data: bool = True
) -> bytes:
    """A Pusher message ``{"event", "channel"?, "data"?, "user_id"?}`` as frame bytes."""
    return text_frame(encode_message(event, data, channel, user_id=user_id, has_data=has_data))


def error_frame(code: int | None, message: str, channel: str | None = None) -> bytes:
    """``pusher:error`` with an object ``data`` (Pusher's and Soketi's shape)."""
    return event_frame("pusher:error", {"code": code, "message": message}, channel)
