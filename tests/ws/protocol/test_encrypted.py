"""§6.6 area 9: private-encrypted- channels, with payloads and keys made by the official ``pusher`` SDK
(pusher-http-python), so interoperability with real servers' publishers is proven, not assumed."""

from __future__ import annotations

import base64
from typing import Any

import pusher
import pytest

from quvel_ws.errors import AuthorizationError, ClientEventError, DecryptionError
from quvel_ws.protocol import AuthorizeChannel, ChannelEvent, SubscriptionSucceeded

from .harness import Harness, errors, of_type

CHANNEL = "private-encrypted-orders.1"
MASTER_A = base64.b64encode(bytes(range(32))).decode()
MASTER_B = base64.b64encode(bytes(range(1, 33))).decode()


def sdk(master: str) -> Any:
    return pusher.Pusher(app_id="1", key="app-key", secret="app-secret", encryption_master_key_base64=master)


def sdk_key(master: str, channel: str = CHANNEL, socket_id: str = "1.1") -> bytes:
    """The shared_secret the SDK puts in the auth response, decoded as the driver hands it to the core."""
    auth = sdk(master).authenticate(channel=channel, socket_id=socket_id)
    return base64.b64decode(auth["shared_secret"])


def sdk_event_data(master: str, data: Any, channel: str = CHANNEL) -> str:
    """The ``data`` string the SDK's trigger() sends to the server (and the server relays verbatim)."""
    request = sdk(master)._pusher_client.trigger.make_request(channel, "ev", data)
    return str(request.params["data"])


def subscribed(master: str = MASTER_A) -> Harness:
    h = Harness(subscription_timeout=10)
    h.connect("1.1")
    h.proto.subscribe(CHANNEL, h.now)
    h.drain()
    h.authorize(CHANNEL, shared_secret=sdk_key(master))
    assert of_type(h.succeed(CHANNEL), SubscriptionSucceeded)
    return h


def event(h: Harness, data: str, name: str = "OrderShipped") -> list[Any]:
    return h.frame(name, data, CHANNEL, encode=False)


@pytest.mark.parametrize("payload", [{"id": 7, "status": "shipped"}, "plain", [1, 2], {"u": "héllo ✓"}])
def test_decrypts_sdk_encrypted_events(payload: Any) -> None:
    h = subscribed()
    out = event(h, sdk_event_data(MASTER_A, payload))
    assert of_type(out, ChannelEvent) == [ChannelEvent(CHANNEL, "OrderShipped", payload)]


def test_pusher_events_pass_through_unencrypted() -> None:
    h = subscribed()
    out = h.frame("pusher:cache_miss", channel=CHANNEL, omit_data=True)
    assert out == [ChannelEvent(CHANNEL, "pusher:cache_miss", None)]


def test_event_before_key_is_reported_not_dropped() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.subscribe(CHANNEL, h.now)
    h.drain()
    out = event(h, sdk_event_data(MASTER_A, {"x": 1}))
    (error,) = errors(out)
    assert isinstance(error, DecryptionError)
    assert error.event == "OrderShipped"


def test_rotated_key_is_fetched_once_and_held_events_are_retried_in_order() -> None:
    h = subscribed(MASTER_A)
    out = event(h, sdk_event_data(MASTER_B, {"n": 1}), "first")
    assert out == [AuthorizeChannel(CHANNEL, "1.1", "refresh_key")]
    out = event(h, sdk_event_data(MASTER_B, {"n": 2}), "second")
    assert out == []  # held behind the outstanding refresh, no second auth request
    out = h.authorize(CHANNEL, shared_secret=sdk_key(MASTER_B))
    assert of_type(out, ChannelEvent) == [
        ChannelEvent(CHANNEL, "first", {"n": 1}),
        ChannelEvent(CHANNEL, "second", {"n": 2}),
    ]
    assert of_type(event(h, sdk_event_data(MASTER_B, {"n": 3})), ChannelEvent)[0].data == {"n": 3}


def test_still_wrong_after_refresh_is_a_decryption_error() -> None:
    h = subscribed(MASTER_A)
    event(h, sdk_event_data(MASTER_B, {"n": 1}))
    out = h.authorize(CHANNEL, shared_secret=sdk_key(MASTER_A))
    (error,) = errors(out)
    assert isinstance(error, DecryptionError)
    assert error.channel == CHANNEL
    assert of_type(out, ChannelEvent) == []


def test_refresh_auth_failure_reports_every_held_event() -> None:
    h = subscribed(MASTER_A)
    event(h, sdk_event_data(MASTER_B, {"n": 1}), "a")
    event(h, sdk_event_data(MASTER_B, {"n": 2}), "b")
    failure = AuthorizationError(CHANNEL, "500", status=500)
    h.proto.channel_authorization_failed(CHANNEL, "1.1", failure, h.now)
    out = h.drain()
    reported = errors(out)
    assert all(isinstance(e, DecryptionError) for e in reported)
    assert [e.event for e in reported if isinstance(e, DecryptionError)] == ["a", "b"]


def test_refresh_that_never_answers_times_out() -> None:
    h = subscribed(MASTER_A)
    event(h, sdk_event_data(MASTER_B, {"n": 1}))
    out = h.advance(10)
    assert [type(e) for e in errors(out)] == [DecryptionError]
    deadline = h.proto.next_deadline()
    assert deadline is not None
    assert deadline > h.now


def test_connection_drop_during_refresh_reports_held_events() -> None:
    h = subscribed(MASTER_A)
    event(h, sdk_event_data(MASTER_B, {"n": 1}))
    out = h.close(1006)
    assert DecryptionError in [type(e) for e in errors(out)]


@pytest.mark.parametrize(
    "data",
    [
        '{"nonce":"AAAA"}',
        '{"nonce":"!!!","ciphertext":"AAAA"}',
        '{"nonce":"' + base64.b64encode(b"short").decode() + '","ciphertext":"' + "A" * 40 + '"}',
        '{"nonce":"' + base64.b64encode(b"n" * 24).decode() + '","ciphertext":"AAAA"}',
        "not json",
        "[1,2]",
    ],
)
def test_malformed_encrypted_payload_is_an_error_without_refresh(data: str) -> None:
    h = subscribed()
    out = event(h, data)
    assert [type(e) for e in errors(out)] == [DecryptionError]
    assert of_type(out, AuthorizeChannel) == []


def test_non_utf8_plaintext_is_a_decryption_error() -> None:
    from nacl.secret import SecretBox

    h = subscribed()
    box = SecretBox(sdk_key(MASTER_A))
    sealed = box.encrypt(b"\xff\xfe")
    data = (
        '{"nonce":"'
        + base64.b64encode(sealed.nonce).decode()
        + '","ciphertext":"'
        + base64.b64encode(sealed.ciphertext).decode()
        + '"}'
    )
    assert [type(e) for e in errors(event(h, data))] == [DecryptionError]


def test_client_events_refused_on_encrypted_channels() -> None:
    h = subscribed()
    with pytest.raises(ClientEventError):
        h.proto.send_client_event(CHANNEL, "client-x", {}, h.now)


def test_invalid_key_length_fails_the_subscription() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.subscribe(CHANNEL, h.now)
    h.drain()
    out = h.authorize(CHANNEL, shared_secret=b"short")
    assert "32" in str(out[0].error)  # type: ignore[union-attr]


def test_held_events_are_bounded() -> None:
    h = Harness(max_held_events=2)
    h.connect("1.1")
    h.proto.subscribe(CHANNEL, h.now)
    h.drain()
    h.authorize(CHANNEL, shared_secret=sdk_key(MASTER_A))
    h.succeed(CHANNEL)
    outs = [event(h, sdk_event_data(MASTER_B, {"n": i})) for i in range(4)]
    assert [len(errors(o)) for o in outs] == [0, 0, 1, 1]
