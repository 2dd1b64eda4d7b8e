"""§6.6 area 8: client events (whispers)."""

from __future__ import annotations

import pytest

from quvel_ws.errors import ClientEventError, InvalidArgument, NotConnected, PayloadTooLarge

from .harness import Harness, sent


def ready(name: str = "private-chat.1", **config: object) -> Harness:
    h = Harness(**config)  # type: ignore[arg-type]
    h.connect("1.1")
    h.proto.subscribe(name, h.now)
    h.drain()
    if not name.startswith(("private-", "presence-")):
        h.succeed(name)
        return h
    h.authorize(name, channel_data='{"user_id":"1"}' if name.startswith("presence-") else None)
    h.succeed(
        name,
        {"presence": {"ids": ["1"], "hash": {"1": None}, "count": 1}}
        if name.startswith("presence-")
        else None,
    )
    return h


@pytest.mark.parametrize("name", ["private-chat.1", "presence-room.1"])
def test_frame_shape_with_object_data(name: str) -> None:
    h = ready(name)
    h.proto.send_client_event(name, "client-typing", {"typing": True}, h.now)
    assert sent(h.drain()) == [{"event": "client-typing", "channel": name, "data": {"typing": True}}]


@pytest.mark.parametrize("event", ["typing", "pusher:x", "Client-typing", "", "client"])
def test_name_must_start_with_client(event: str) -> None:
    h = ready()
    with pytest.raises(ClientEventError):
        h.proto.send_client_event("private-chat.1", event, {}, h.now)
    assert h.drain() == []


def test_name_length_limit() -> None:
    h = ready()
    with pytest.raises(ClientEventError):
        h.proto.send_client_event("private-chat.1", "client-" + "x" * 200, {}, h.now)


def test_public_channel_refused() -> None:
    h = ready("chat")
    with pytest.raises(ClientEventError):
        h.proto.send_client_event("chat", "client-typing", {}, h.now)


def test_not_connected() -> None:
    h = ready()
    h.close(1006)
    with pytest.raises(NotConnected):
        h.proto.send_client_event("private-chat.1", "client-typing", {}, h.now)
    assert h.drain() == []  # dropped, not queued
    h.reopen()
    assert sent(h.drain()) == []


def test_not_subscribed_yet() -> None:
    h = Harness()
    h.connect()
    h.proto.subscribe("private-chat.1", h.now)
    with pytest.raises(ClientEventError):
        h.proto.send_client_event("private-chat.1", "client-typing", {}, h.now)
    with pytest.raises(ClientEventError):
        h.proto.send_client_event("private-other", "client-typing", {}, h.now)


def test_oversize_payload() -> None:
    h = ready(max_frame_bytes=100)
    with pytest.raises(PayloadTooLarge) as info:
        h.proto.send_client_event("private-chat.1", "client-big", {"x": "y" * 200}, h.now)
    assert info.value.limit == 100
    assert h.drain() == []


def test_multibyte_payload_size_counts_bytes() -> None:
    h = ready(max_frame_bytes=100)
    with pytest.raises(PayloadTooLarge):
        h.proto.send_client_event("private-chat.1", "client-big", {"x": "é" * 40}, h.now)


def test_unencodable_data() -> None:
    h = ready()
    with pytest.raises(InvalidArgument):
        h.proto.send_client_event("private-chat.1", "client-x", {"x": object()}, h.now)
