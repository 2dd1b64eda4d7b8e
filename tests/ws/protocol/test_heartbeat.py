"""§6.6 area 3: application-level ping/pong with a fake clock."""

from __future__ import annotations

import pytest

from quvel_ws.protocol import CloseTransport, ConnectionState, RetryScheduled, SendFrame

from .harness import Harness, closes, of_type, opens, sent

PING = {"event": "pusher:ping", "data": {}}
PONG = {"event": "pusher:pong", "data": {}}


def test_ping_after_min_of_option_and_server_timeout() -> None:
    h = Harness(activity_timeout=120)
    h.connect(activity_timeout=30)
    assert h.proto.next_deadline() == h.now + 30
    assert sent(h.advance(29.9)) == []
    assert sent(h.advance(0.1)) == [PING]


def test_option_lower_than_server_wins() -> None:
    h = Harness(activity_timeout=5)
    h.connect(activity_timeout=30)
    assert sent(h.advance(5)) == [PING]


def test_any_inbound_frame_resets_the_activity_timer() -> None:
    h = Harness()
    h.connect(activity_timeout=30)
    h.proto.subscribe("chat", h.now)
    h.drain()
    h.advance(20)
    h.succeed("chat")
    assert sent(h.advance(29)) == []
    h.frame("anything", {}, "chat")
    h.advance(29)
    h.raw("malformed!")  # even a bad frame proves the socket is alive
    assert sent(h.advance(29)) == []
    assert sent(h.advance(1)) == [PING]


@pytest.mark.parametrize(
    "reply",
    [
        '{"event":"pusher:pong","data":{}}',
        '{"event":"pusher:pong"}',
        '{"event":"some-event","channel":"x","data":"{}"}',
    ],
)
def test_any_frame_after_ping_counts_as_pong(reply: str) -> None:
    h = Harness(pong_timeout=30)
    h.connect(activity_timeout=30)
    assert sent(h.advance(30)) == [PING]
    h.advance(29)
    h.raw(reply)
    out = h.advance(29)
    assert closes(out) == []
    assert h.proto.state is ConnectionState.CONNECTED


def test_no_frame_within_pong_timeout_closes_and_reconnects() -> None:
    h = Harness(pong_timeout=30, immediate_retry_jitter=1.0)
    h.connect(activity_timeout=30)
    h.advance(30)
    out = h.advance(30)
    (close,) = closes(out)
    assert isinstance(close, CloseTransport)
    assert h.proto.state is ConnectionState.CONNECTING
    (retry,) = of_type(out, RetryScheduled)
    assert 0 <= retry.delay <= 1.0
    out = h.close(1006)  # the driver reports the socket closed (ours: no extra error)
    out += h.advance(1.0)
    assert len(opens(out)) == 1


@pytest.mark.parametrize(
    "frame",
    ['{"event":"pusher:ping"}', '{"event":"pusher:ping","data":{}}', '{"event":"pusher:ping","data":"{}"}'],
)
def test_server_ping_is_answered_with_pong(frame: str) -> None:
    h = Harness()
    h.connect()
    out = h.raw(frame)
    assert out == [SendFrame('{"event":"pusher:pong","data":{}}')]
    assert sent(out) == [PONG]


def test_check_connection_pings_now() -> None:
    h = Harness(pong_timeout=10)
    h.connect()
    h.proto.check_connection(h.now)
    assert sent(h.drain()) == [PING]
    h.proto.check_connection(h.now)  # one outstanding ping at a time
    assert h.drain() == []
    assert closes(h.advance(10))


def test_heartbeat_never_runs_when_not_connected() -> None:
    h = Harness()
    h.proto.check_connection(h.now)
    assert h.drain() == []
    assert h.proto.next_deadline() is None
