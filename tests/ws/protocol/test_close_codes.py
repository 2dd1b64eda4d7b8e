"""§6.6 area 4: the close-code policy, one test per boundary of the protocol's table (§1.11)."""

from __future__ import annotations

import pytest

from quvel_ws.errors import ConnectionClosed, ConnectionRefused, ServerError
from quvel_ws.protocol import ConnectionState, RetryScheduled, StateChanged

from .harness import Harness, errors, of_type, opens

S = ConnectionState
JITTER = 0.5

# code -> (action, delay low bound, delay high bound) for a first failure (backoff attempt 0)
RECONNECTS = {
    1000: ("reconnect", 0.0, 1.0),
    1001: ("reconnect", 0.0, 1.0),
    1005: ("reconnect", 0.0, 1.0),
    1006: ("reconnect", 0.0, 1.0),
    3999: ("reconnect", 0.0, 1.0),
    1002: ("backoff", 1.0, 1.0),
    1003: ("backoff", 1.0, 1.0),
    1004: ("backoff", 1.0, 1.0),
    4100: ("backoff", 1.0, 1.0),
    4199: ("backoff", 1.0, 1.0),
    4200: ("retry", 0.0, JITTER),
    4299: ("retry", 0.0, JITTER),
}
REFUSED = [4001, 4099, 4300, 4399]


def connected_with_channel() -> Harness:
    h = Harness(immediate_retry_jitter=JITTER)
    h.connect("1.1")
    h.proto.subscribe("chat", h.now)
    h.drain()
    h.succeed("chat")
    return h


@pytest.mark.parametrize("code", sorted(RECONNECTS))
def test_close_code_reconnects(code: int) -> None:
    action, low, high = RECONNECTS[code]
    h = connected_with_channel()
    out = h.close(code, "bye")
    assert StateChanged(S.CONNECTED, S.CONNECTING) in out
    (retry,) = of_type(out, RetryScheduled)
    assert low <= retry.delay <= high
    closed = [e for e in errors(out) if isinstance(e, ConnectionClosed)]
    if code in (1000, 1001):
        assert closed == []  # a clean close is not an error (pusher-js getCloseError)
    else:
        assert [(c.code, c.action) for c in closed] == [(code, action)]
    assert h.proto.socket_id is None
    (opened,) = opens(h.advance(retry.delay))
    assert opened.url == h.config.url
    h.proto.transport_opened(h.now)
    h.establish("2.2")
    assert h.proto.state is S.CONNECTED


def test_close_without_code_is_1006() -> None:
    h = connected_with_channel()
    out = h.close(None)
    (closed,) = errors(out)
    assert isinstance(closed, ConnectionClosed)
    assert closed.code == 1006


def test_close_4000_reconnects_now_over_tls() -> None:
    h = connected_with_channel()
    out = h.close(4000, "SSL only")
    (retry,) = of_type(out, RetryScheduled)
    assert retry.delay == 0
    (opened,) = opens(out)
    assert opened.url.startswith("wss://")
    assert h.proto.url == opened.url


def test_close_4000_when_already_tls_backs_off_instead_of_looping() -> None:
    h = Harness(url="wss://example.test/app/key")
    h.connect()
    (retry,) = of_type(h.close(4000), RetryScheduled)
    assert retry.delay >= 1.0


@pytest.mark.parametrize("code", REFUSED)
def test_close_code_refused_stops(code: int) -> None:
    h = connected_with_channel()
    out = h.close(code, "refused")
    (error,) = errors(out)
    assert isinstance(error, ConnectionRefused)
    assert error.code == code
    assert StateChanged(S.CONNECTED, S.DISCONNECTED) in out
    assert of_type(out, RetryScheduled) == []
    assert h.proto.next_deadline() is None
    assert opens(h.advance(3600)) == []
    # channels stay in the map: a later connect() resubscribes them
    assert h.proto.channels() == ["chat"]
    h.proto.connect(h.now)
    assert opens(h.drain())


def test_error_message_after_connect_is_informational() -> None:
    h = connected_with_channel()
    for code in (4001, 4009, 4200, 4201, 4301):
        out = h.frame("pusher:error", {"code": code, "message": "m"})
        assert [type(e) for e in errors(out)] == [ServerError]
        assert of_type(out, StateChanged) == []
        assert of_type(out, RetryScheduled) == []
    assert h.proto.state is S.CONNECTED


def test_close_while_waiting_to_retry_is_ignored() -> None:
    h = connected_with_channel()
    h.close(1006)
    assert h.close(4001) == []
    assert h.proto.state is S.CONNECTING


def test_disconnect_means_no_reconnect() -> None:
    h = connected_with_channel()
    h.proto.disconnect(h.now)
    out = h.drain()
    assert out[0].__class__.__name__ == "CloseTransport"
    assert StateChanged(S.CONNECTED, S.DISCONNECTED) in out
    h.close(1000)
    assert h.proto.next_deadline() is None
    assert opens(h.advance(3600)) == []
    h.proto.disconnect(h.now)  # idempotent
    assert h.drain() == []


def test_disconnect_while_waiting_to_retry_cancels_the_retry() -> None:
    h = connected_with_channel()
    h.close(1006)
    h.proto.disconnect(h.now)
    h.drain()
    assert h.proto.next_deadline() is None
    assert opens(h.advance(3600)) == []


def test_connect_after_disconnect_waits_for_the_old_socket_to_close() -> None:
    h = connected_with_channel()
    h.proto.disconnect(h.now)
    h.proto.connect(h.now)
    assert opens(h.drain()) == []
    assert opens(h.close(1000))
