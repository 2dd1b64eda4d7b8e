"""Pusher frame decoding and encoding (orjson), normalising ``data`` the way pusher-js does.

Decoding is the client's ingest hot path: one ``orjson.loads`` of the frame, one more of ``data`` only
when it is a string that can start a JSON value, and nothing else.
"""

from __future__ import annotations

from typing import Any

import orjson

from quvel_ws.errors import InvalidArgument, PayloadTooLarge, ProtocolError

# First characters a JSON text can start with. pusher-js runs JSON.parse on every string ``data``; a
# string starting with anything else cannot parse, so skipping the attempt changes no result.
_JSON_START = frozenset('{["-0123456789tfn \t\r\n')

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def decode_data(data: Any) -> Any:
    """Normalise a frame's ``data`` like pusher-js: a JSON string is parsed, any other string is kept."""
    if type(data) is str and data and data[0] in _JSON_START:
        try:
            return _loads(data)
        except _JSONDecodeError:
            return data
    return data


def decode_frame(text: str | bytes) -> tuple[str, str | None, Any, str | None]:
    """Decode one text frame into ``(event, channel, data, user_id)``.

    Raises :class:`ProtocolError` for anything that is not a JSON object with a string ``event``
    (pusher-js's ``MessageParseError``); the caller reports it and keeps the connection.
    """
    try:
        msg = _loads(text)
    except _JSONDecodeError:
        raise ProtocolError("frame is not valid JSON", text) from None
    if type(msg) is not dict:
        raise ProtocolError("frame is not a JSON object", text)
    event = msg.get("event")
    if type(event) is not str:
        raise ProtocolError("frame has no string 'event'", text)
    channel = msg.get("channel")
    if channel is not None and type(channel) is not str:
        raise ProtocolError("frame 'channel' is not a string", text)
    data = msg.get("data")
    if type(data) is str and data and data[0] in _JSON_START:
        try:  # noqa: SIM105 (contextlib.suppress costs more on the hot path)
            data = _loads(data)
        except _JSONDecodeError:
            pass  # a plain string stays a string
    user_id = msg.get("user_id")
    if user_id is not None and type(user_id) is not str:
        # Laravel user ids are often ints; ids are always strings here.
        user_id = str(user_id) if type(user_id) in (int, float) else None
    return event, channel, data, user_id


def encode_frame(event: str, data: Any, channel: str | None = None) -> str:
    """Encode an outbound frame; ``data`` is sent as a JSON value (pusher-js sends objects)."""
    msg: dict[str, Any] = {"event": event, "data": data}
    if channel is not None:
        msg["channel"] = channel
    try:
        return orjson.dumps(msg).decode()
    except TypeError as exc:
        raise InvalidArgument(f"data of {event!r} cannot be encoded as JSON: {exc}") from None


def encode_limited(event: str, data: Any, channel: str | None, limit: int) -> str:
    """Encode a frame and refuse it when it is over ``limit`` bytes (servers close on oversize frames)."""
    text = encode_frame(event, data, channel)
    size = len(text.encode()) if not text.isascii() else len(text)
    if size > limit:
        raise PayloadTooLarge(size, limit, f"{event!r} frame")
    return text


PING = encode_frame("pusher:ping", {})
PONG = encode_frame("pusher:pong", {})
