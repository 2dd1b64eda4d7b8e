"""Pusher frame decoding and encoding (orjson), normalising ``data`` the way pusher-js does.

The one place a Pusher frame is decoded or encoded, for the client core and the embedded server alike.
Decoding is the client's ingest hot path: one ``orjson.loads`` of the frame, one more of ``data`` only
when it is a string that can start a JSON value, and nothing else.
"""

from __future__ import annotations

from typing import Any

import orjson

from quvel_ws.errors import InvalidArgument, PayloadTooLarge, ProtocolError
from quvel_ws.protocol._events import ChannelEvent

# First characters a JSON text can start with. pusher-js runs JSON.parse on every string ``data``; a
# string starting with anything else cannot parse, so skipping the attempt changes no result.
JSON_START = frozenset('{["-0123456789tfn \t\r\n')

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError

# ChannelEvent is a frozen dataclass, whose generated __init__ goes through object.__setattr__ per field
# (~390 ns). Setting the slots through their descriptors builds the identical object in ~half the time;
# it is made once per event on the ingest path, so this is worth its ugliness.
_new = object.__new__
_set_channel = vars(ChannelEvent)["channel"].__set__
_set_event = vars(ChannelEvent)["event"].__set__
_set_data = vars(ChannelEvent)["data"].__set__
_set_user_id = vars(ChannelEvent)["user_id"].__set__


def channel_event(channel: str, event: str, data: Any, user_id: str | None) -> ChannelEvent:
    """``ChannelEvent(channel, event, data, user_id)``, built fast (see above)."""
    ev: ChannelEvent = _new(ChannelEvent)
    _set_channel(ev, channel)
    _set_event(ev, event)
    _set_data(ev, data)
    _set_user_id(ev, user_id)
    return ev


def user_id_str(value: Any) -> str | None:
    """A frame's ``user_id`` as a string (Laravel user ids are often ints); None when unusable."""
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if type(value) is float and value.is_integer():
        return str(int(value))
    return None


def decode_frame(text: str | bytes) -> tuple[str, Any, Any, dict[str, Any]]:
    """Decode one text frame into ``(event, channel, data, message)``: the one decoder of the client
    core and the server.

    ``data`` is normalised like pusher-js (a string that parses as JSON is parsed, any other value is
    kept); ``message`` is the whole object as sent (the server forwards client events from it
    unchanged; ``user_id`` is read from it). ``channel`` is returned as sent: what a non-string channel
    means is the caller's rule (the client reports it, the server answers "not a member").

    Raises :class:`ProtocolError` for anything that is not a JSON object with a string ``event``
    (pusher-js's ``MessageParseError``); the caller reports it and keeps the connection."""
    try:
        msg = loads(text)
    except JSONDecodeError:
        raise ProtocolError("frame is not valid JSON", text) from None
    if type(msg) is not dict:
        raise ProtocolError("frame is not a JSON object", text)
    event = msg.get("event")
    if type(event) is not str:
        raise ProtocolError("frame has no string 'event'", text)
    data = msg.get("data")
    if type(data) is str and data and data[0] in JSON_START:
        try:  # noqa: SIM105 (contextlib.suppress costs more on the hot path)
            data = loads(data)
        except JSONDecodeError:
            pass  # a plain string stays a string
    return event, msg.get("channel"), data, msg


def encode_message(
    event: str, data: Any = None, channel: str | None = None, *, user_id: Any = None, has_data: bool = True
) -> bytes:
    """A Pusher message ``{"event", "channel"?, "data"?, "user_id"?}`` as UTF-8 JSON (client and server).

    Raises :class:`InvalidArgument` when ``data`` cannot be encoded as JSON."""
    msg: dict[str, Any] = {"event": event}
    if channel is not None:
        msg["channel"] = channel
    if has_data:
        msg["data"] = data
    if user_id is not None:
        msg["user_id"] = user_id
    try:
        return orjson.dumps(msg)
    except TypeError as exc:
        raise InvalidArgument(f"data of {event!r} cannot be encoded as JSON: {exc}") from None


def encode_frame(event: str, data: Any, channel: str | None = None) -> str:
    """Encode an outbound client frame; ``data`` is sent as a JSON value (pusher-js sends objects)."""
    return encode_message(event, data, channel).decode()


def encode_limited(event: str, data: Any, channel: str | None, limit: int) -> str:
    """Encode a frame and refuse it when it is over ``limit`` bytes (servers close on oversize frames)."""
    raw = encode_message(event, data, channel)
    if len(raw) > limit:
        raise PayloadTooLarge(len(raw), limit, f"{event!r} frame")
    return raw.decode()


PING = encode_frame("pusher:ping", {})
PONG = encode_frame("pusher:pong", {})
