"""§6.6 area 2: every form of ``data`` and every kind of malformed frame."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from quvel_ws.errors import ProtocolError
from quvel_ws.protocol import ChannelEvent, ConnectionState, GlobalEvent

from .harness import Harness, errors, of_type


@pytest.fixture
def h() -> Harness:
    h = Harness()
    h.connect()
    h.proto.subscribe("chat", h.now)
    h.drain()
    h.succeed("chat")
    return h


def deliver(h: Harness, data_field: Any, *, present: bool = True) -> ChannelEvent:
    msg: dict[str, Any] = {"event": "update", "channel": "chat"}
    if present:
        msg["data"] = data_field
    (event,) = of_type(h.raw(orjson.dumps(msg)), ChannelEvent)
    return event


@pytest.mark.parametrize(
    ("wire", "decoded"),
    [
        pytest.param('{"id":1,"name":"x"}', {"id": 1, "name": "x"}, id="json-string-object"),
        pytest.param('"just a string"', "just a string", id="json-string-of-a-string"),
        pytest.param("just a string", "just a string", id="plain-string"),
        pytest.param({"id": 1}, {"id": 1}, id="dict"),
        pytest.param([1, "a"], [1, "a"], id="list"),
        pytest.param(42, 42, id="number"),
        pytest.param("123", 123, id="numeric-looking-string-parsed-like-pusher-js"),
        pytest.param("true", True, id="json-string-true"),
        pytest.param("", "", id="empty-string"),
        pytest.param("nope", "nope", id="plain-string-starting-like-a-literal"),
        pytest.param(orjson.dumps('{"a":1}').decode(), '{"a":1}', id="double-encoded-parsed-once"),
        pytest.param(' {"a": 1}', {"a": 1}, id="json-with-leading-space"),
        pytest.param(None, None, id="null"),
    ],
)
def test_data_forms(h: Harness, wire: Any, decoded: Any) -> None:
    assert deliver(h, wire).data == decoded


def test_absent_data_is_none(h: Harness) -> None:
    assert deliver(h, None, present=False).data is None


def test_user_id_passthrough_and_int_normalised(h: Harness) -> None:
    (event,) = of_type(h.frame("client-typing", {"a": 1}, "chat", user_id=7), ChannelEvent)
    assert event.user_id == "7"
    (event,) = of_type(h.frame("client-typing", {"a": 1}, "chat", user_id="abc"), ChannelEvent)
    assert event.user_id == "abc"


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("{not json", id="invalid-json"),
        pytest.param("[1,2]", id="array"),
        pytest.param('"string"', id="string"),
        pytest.param("42", id="number"),
        pytest.param('{"data":"x"}', id="no-event"),
        pytest.param('{"event":5}', id="event-not-string"),
        pytest.param('{"event":"e","channel":7}', id="channel-not-string"),
        pytest.param(b"\xff\xfe\x00", id="invalid-utf8-bytes"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_frame_is_reported_and_the_connection_keeps_going(h: Harness, frame: str | bytes) -> None:
    out = h.raw(frame)
    (error,) = errors(out)
    assert isinstance(error, ProtocolError)
    assert h.proto.state is ConnectionState.CONNECTED
    # the next good frame is processed normally
    assert deliver(h, '{"ok":true}').data == {"ok": True}


def test_bytes_frames_are_accepted(h: Harness) -> None:
    out = h.raw(b'{"event":"update","channel":"chat","data":"{\\"a\\":1}"}')
    assert of_type(out, ChannelEvent)[0].data == {"a": 1}


def test_unknown_channel_event_is_ignored(h: Harness) -> None:
    assert h.frame("update", {"a": 1}, "not-subscribed") == []


def test_channel_less_event_is_a_global_event(h: Harness) -> None:
    (event,) = of_type(h.frame("app-wide", {"a": 1}), GlobalEvent)
    assert event == GlobalEvent("app-wide", {"a": 1})


def test_internal_events_are_never_surfaced(h: Harness) -> None:
    out = h.frame("pusher_internal:something_new", {"a": 1}, "chat")
    assert of_type(out, ChannelEvent) == []
    assert h.frame("pusher_internal:something_new", {"a": 1}) == []


def test_error_frame_string_or_object(h: Harness) -> None:
    from quvel_ws.errors import ServerError

    data = {"code": 4301, "message": "rate"}
    for encode in (True, False):
        (error,) = errors(h.frame("pusher:error", data, encode=encode))
        assert isinstance(error, ServerError)
        assert (error.code, error.message) == (4301, "rate")
    (error,) = errors(h.frame("pusher:error", "not json at all", encode=False))
    assert isinstance(error, ServerError)
    assert (error.code, error.message) == (None, "not json at all")
    existing = {"code": None, "message": "Existing subscription"}
    (error,) = errors(h.frame("pusher:error", existing, encode=False))
    assert isinstance(error, ServerError)
    assert error.code is None
    assert h.proto.state is ConnectionState.CONNECTED


def test_fast_channel_event_is_identical_to_the_dataclass() -> None:
    from quvel_ws.protocol._codec import channel_event

    fast = channel_event("c", "e", {"a": [1]}, "7")
    slow = ChannelEvent("c", "e", {"a": [1]}, "7")
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert type(fast) is ChannelEvent
    with pytest.raises(AttributeError):
        fast.data = 1  # type: ignore[misc]  # still frozen
