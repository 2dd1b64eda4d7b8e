"""§6.6 area 1: the handshake, connection states, and the timers around connecting."""

from __future__ import annotations

import pytest

from quvel_ws.errors import ConnectionRefused, HandshakeError, InvalidArgument, ServerError, TransportError
from quvel_ws.protocol import (
    Connected,
    ConnectionState,
    OpenTransport,
    ProtocolConfig,
    RetryScheduled,
    StateChanged,
)

from .harness import Harness, closes, errors, of_type, opens, sent_events

S = ConnectionState


def test_connect_opens_the_transport_and_is_connecting() -> None:
    h = Harness()
    h.proto.connect(h.now)
    out = h.drain()
    assert out == [StateChanged(S.INITIALIZED, S.CONNECTING), OpenTransport(h.config.url, 1)]
    h.proto.connect(h.now)  # idempotent
    assert h.drain() == []


@pytest.mark.parametrize("encode", [True, False], ids=["data-as-json-string", "data-as-object"])
def test_connection_established(encode: bool) -> None:
    h = Harness()
    h.open()
    data = {"socket_id": "1.2", "activity_timeout": 30}
    out = h.frame("pusher:connection_established", data, encode=encode)
    assert out == [StateChanged(S.CONNECTING, S.CONNECTED), Connected("1.2", 30.0)]
    assert h.proto.socket_id == "1.2"
    assert h.proto.activity_timeout == 30.0


def test_activity_timeout_is_the_minimum_of_option_and_server() -> None:
    h = Harness(activity_timeout=10)
    h.connect(activity_timeout=30)
    assert h.proto.activity_timeout == 10
    h2 = Harness(activity_timeout=120)
    h2.connect(activity_timeout=30)
    assert h2.proto.activity_timeout == 30


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"socket_id": "1.2"}, id="missing-activity-timeout"),
        pytest.param({"socket_id": "1.2", "activity_timeout": 0}, id="zero-activity-timeout"),
        pytest.param({"socket_id": "1.2", "activity_timeout": "30"}, id="string-activity-timeout"),
        pytest.param({"activity_timeout": 30}, id="missing-socket-id"),
        pytest.param("garbage", id="data-not-object"),
    ],
)
def test_bad_connection_established_is_a_handshake_error_then_backoff(data: object) -> None:
    h = Harness()
    h.open()
    out = h.frame("pusher:connection_established", data)
    assert [type(e) for e in errors(out)] == [HandshakeError]
    assert closes(out)[0].code == 1002
    (retry,) = of_type(out, RetryScheduled)
    assert retry.delay >= 1.0  # backoff: at least backoff_initial
    assert h.proto.state is S.CONNECTING
    h.close(1002)
    assert opens(h.advance(retry.delay)) == [OpenTransport(h.config.url, 2)]


@pytest.mark.parametrize(
    "first",
    ['{"event":"app-event","data":"{}"}', "not json", '{"event":"pusher:pong"}'],
    ids=["app-event", "not-json", "pong"],
)
def test_any_other_first_message_is_an_invalid_handshake(first: str) -> None:
    h = Harness()
    h.open()
    out = h.raw(first)
    assert [type(e) for e in errors(out)] == [HandshakeError]
    assert closes(out)
    assert h.proto.socket_id is None


@pytest.mark.parametrize("code", [4001, 4004, 4009, 4099, 4300])
def test_first_message_error_refused_is_fatal_without_reconnect(code: int) -> None:
    h = Harness()
    h.open()
    out = h.frame("pusher:error", {"code": code, "message": "nope"}, encode=False)
    (error,) = errors(out)
    assert isinstance(error, ConnectionRefused)
    assert error.code == code
    assert closes(out)
    assert h.proto.state is S.DISCONNECTED
    h.close(1006)
    assert opens(h.advance(3600)) == []
    assert h.proto.next_deadline() is None


def test_first_message_error_4100_backs_off() -> None:
    h = Harness()
    h.open()
    out = h.frame("pusher:error", {"code": 4100, "message": "Over capacity"})
    assert isinstance(errors(out)[0], ServerError)
    (retry,) = of_type(out, RetryScheduled)
    assert retry.delay >= 1.0
    h.close(4100)
    assert h.proto.state is S.CONNECTING
    assert opens(h.advance(retry.delay))


def test_first_message_error_4200_reconnects_at_once_with_small_jitter() -> None:
    h = Harness(immediate_retry_jitter=0.5)
    h.open()
    out = h.frame("pusher:error", {"code": 4200, "message": "Reconnect now"})
    (retry,) = of_type(out, RetryScheduled)
    assert 0 <= retry.delay <= 0.5
    h.close(None)
    assert opens(h.advance(retry.delay))


def test_first_message_error_without_code_backs_off() -> None:
    h = Harness()
    h.open()
    (retry,) = of_type(h.frame("pusher:error", {"code": None, "message": "?"}), RetryScheduled)
    assert retry.delay >= 1.0


def test_first_message_error_4000_switches_to_tls() -> None:
    h = Harness()
    h.open()
    (retry,) = of_type(h.frame("pusher:error", {"code": 4000, "message": "SSL only"}), RetryScheduled)
    assert retry.delay == 0
    out = h.close(4000)
    (opened,) = opens(out)
    assert opened.url.startswith("wss://127.0.0.1:6001/app/app-key")


def test_server_ping_during_handshake_is_answered_and_handshake_continues() -> None:
    h = Harness()
    h.open()
    assert sent_events(h.frame("pusher:ping", omit_data=True)) == ["pusher:pong"]
    assert of_type(h.establish(), Connected)


def test_handshake_timeout_closes_and_retries() -> None:
    h = Harness(handshake_timeout=5)
    h.open()
    out = h.advance(5)
    assert [type(e) for e in errors(out)] == [HandshakeError]
    assert closes(out)
    (retry,) = of_type(out, RetryScheduled)
    h.close(1002)
    assert opens(h.advance(retry.delay))


def test_connect_timeout_aborts_the_attempt_and_retries() -> None:
    h = Harness(connect_timeout=4)
    h.proto.connect(h.now)
    h.drain()
    out = h.advance(4)
    assert [type(e) for e in errors(out)] == [TransportError]
    assert closes(out)
    (retry,) = of_type(out, RetryScheduled)
    assert opens(h.advance(retry.delay + 1)) == []  # waits for the driver to report the close
    (opened,) = opens(h.close(None))
    assert opened.attempt == 2


def test_transport_failed_retries_with_growing_backoff() -> None:
    h = Harness(backoff_initial=1, backoff_max=8)
    h.proto.connect(h.now)
    h.drain()
    for attempt in range(2, 8):
        h.proto.transport_failed(OSError("refused"), h.now)
        out = h.drain()
        assert [type(e) for e in errors(out)] == [TransportError]
        (retry,) = of_type(out, RetryScheduled)
        assert 0 <= retry.delay <= min(8, 2 ** (attempt - 2))
        assert retry.attempt == attempt
        (opened,) = opens(h.advance(retry.delay))
        assert opened.attempt == attempt


def test_permanent_transport_failure_is_failed_state() -> None:
    h = Harness()
    h.proto.connect(h.now)
    h.proto.transport_failed(OSError("no TLS"), h.now, permanent=True)
    out = h.drain()
    assert StateChanged(S.CONNECTING, S.FAILED) in out
    assert h.proto.next_deadline() is None
    h.proto.connect(h.now)
    assert opens(h.drain())


def test_unavailable_after_timeout_while_attempts_go_on() -> None:
    h = Harness(unavailable_timeout=10, connect_timeout=100)
    h.proto.connect(h.now)
    h.drain()
    h.proto.transport_failed(OSError("down"), h.now)
    out = h.advance(10)
    assert StateChanged(S.CONNECTING, S.UNAVAILABLE) in out
    assert h.proto.state is S.UNAVAILABLE
    h.advance(30)
    h.open()
    out = h.establish()
    assert StateChanged(S.UNAVAILABLE, S.CONNECTED) in out


def test_unavailable_timer_cleared_once_connected() -> None:
    h = Harness(unavailable_timeout=10)
    h.connect()
    out = h.advance(9.9)
    out += h.advance(20)
    assert not [e for e in out if isinstance(e, StateChanged)]
    assert h.proto.state is S.CONNECTED


def test_frame_before_transport_opened_is_taken_as_the_open() -> None:
    h = Harness()
    h.proto.connect(h.now)
    h.drain()
    assert of_type(h.establish(), Connected)


def test_config_is_validated() -> None:
    with pytest.raises(InvalidArgument):
        ProtocolConfig(url="http://x/app/k")
    with pytest.raises(InvalidArgument):
        ProtocolConfig(url="ws://x/app/k", pong_timeout=0)
    with pytest.raises(InvalidArgument):
        ProtocolConfig(url="ws://x/app/k", max_frame_bytes=1)


def test_disconnect_before_open_completes_closes_the_late_socket() -> None:
    h = Harness()
    h.proto.connect(h.now)
    h.drain()
    h.proto.disconnect(h.now)
    out = h.drain()
    assert closes(out)
    assert h.proto.state is S.DISCONNECTED
    h.proto.transport_opened(h.now)  # the driver's open raced the disconnect
    assert closes(h.drain())
    h.close(1000)
    assert h.proto.next_deadline() is None
    assert opens(h.advance(100)) == []
