"""§6.6 area 5 (and 11): the per-channel state machine, the seven sub/unsub sequences of pusher-js's
integration tests, resubscription after reconnect, subscription errors and timeouts, cache channels."""

from __future__ import annotations

import pytest

from quvel_ws.errors import (
    AuthorizationError,
    ConnectionClosed,
    InvalidChannelName,
    ServerError,
    SubscriptionError,
    SubscriptionRefused,
    SubscriptionTimeout,
)
from quvel_ws.protocol import (
    AuthorizeChannel,
    ChannelEvent,
    ChannelState,
    ConnectionState,
    SubscriptionCount,
    SubscriptionFailed,
    SubscriptionSucceeded,
    Unsubscribed,
)

from .harness import Harness, closes, errors, of_type, sent, sent_events

CS = ChannelState


def connected() -> Harness:
    h = Harness(subscription_timeout=10)
    h.connect("1.1")
    return h


def subscribes(out: list) -> list[str]:  # type: ignore[type-arg]
    return [f["data"]["channel"] for f in sent(out) if f["event"] == "pusher:subscribe"]


def unsubscribes(out: list) -> list[str]:  # type: ignore[type-arg]
    return [f["data"]["channel"] for f in sent(out) if f["event"] == "pusher:unsubscribe"]


def sub(h: Harness, name: str) -> list:  # type: ignore[type-arg]
    h.proto.subscribe(name, h.now)
    out = h.drain()
    if name.startswith(("private-", "presence-")) and of_type(out, AuthorizeChannel):
        data = '{"user_id":"1"}' if name.startswith("presence-") else None
        out += h.authorize(name, channel_data=data)
    return out


def unsub(h: Harness, name: str) -> list:  # type: ignore[type-arg]
    h.proto.unsubscribe(name, h.now)
    return h.drain()


def wait(h: Harness, name: str) -> list:  # type: ignore[type-arg]
    if not name.startswith("presence-"):
        return h.succeed(name)
    data = {"presence": {"ids": ["1"], "hash": {"1": None}, "count": 1}}
    return h.succeed(name, data)


# --- the seven sequences (public, private and presence, as pusher-js runs them) -------------------------

KINDS = ["chat", "private-chat", "presence-chat"]


@pytest.mark.parametrize("name", KINDS)
def test_sub_sub_is_sub(name: str) -> None:
    h = connected()
    out = sub(h, name) + sub(h, name) + wait(h, name)
    assert subscribes(out) == [name]
    assert len(of_type(out, AuthorizeChannel)) == (0 if name == "chat" else 1)
    assert h.proto.channel_state(name) is CS.SUBSCRIBED
    assert len(of_type(out, SubscriptionSucceeded)) == 1


@pytest.mark.parametrize("name", KINDS)
def test_sub_wait_sub_is_sub(name: str) -> None:
    h = connected()
    out = sub(h, name) + wait(h, name) + sub(h, name)
    assert subscribes(out) == [name]
    assert h.proto.channel_state(name) is CS.SUBSCRIBED


@pytest.mark.parametrize("name", KINDS)
def test_sub_unsub_is_nop(name: str) -> None:
    h = connected()
    out = sub(h, name) + unsub(h, name)
    assert h.proto.channel_state(name) is CS.CANCELLED
    assert of_type(out, Unsubscribed) == [Unsubscribed(name)]
    out2 = wait(h, name)  # the server confirms the subscription we no longer want
    assert unsubscribes(out2) == [name]
    assert of_type(out2, SubscriptionSucceeded) == []
    assert h.proto.channel_state(name) is CS.UNSUBSCRIBED
    assert name not in h.proto.channels()


def test_sub_unsub_before_auth_answer_sends_nothing() -> None:
    h = connected()
    h.proto.subscribe("private-x", h.now)
    h.proto.unsubscribe("private-x", h.now)
    out = h.drain() + h.authorize("private-x")
    assert sent(out) == []
    assert h.proto.channels() == []


@pytest.mark.parametrize("name", KINDS)
def test_sub_wait_unsub_is_nop(name: str) -> None:
    h = connected()
    sub(h, name)
    wait(h, name)
    out = unsub(h, name)
    assert unsubscribes(out) == [name]
    assert of_type(out, Unsubscribed) == [Unsubscribed(name)]
    assert name not in h.proto.channels()  # removed immediately


@pytest.mark.parametrize("name", KINDS)
def test_sub_unsub_sub_is_sub(name: str) -> None:
    h = connected()
    out = sub(h, name) + unsub(h, name)
    h.proto.subscribe(name, h.now)  # reinstates the cancelled pending subscription
    out += h.drain()
    assert h.proto.channel_state(name) is CS.PENDING
    out += wait(h, name)
    assert subscribes(out) == [name]
    assert unsubscribes(out) == []
    assert h.proto.channel_state(name) is CS.SUBSCRIBED
    assert len(of_type(out, SubscriptionSucceeded)) == 1


@pytest.mark.parametrize("name", KINDS)
def test_sub_unsub_wait_sub_is_sub(name: str) -> None:
    h = connected()
    out = sub(h, name) + unsub(h, name) + wait(h, name) + sub(h, name) + wait(h, name)
    assert subscribes(out) == [name, name]
    assert unsubscribes(out) == [name]
    assert h.proto.channel_state(name) is CS.SUBSCRIBED


@pytest.mark.parametrize("name", KINDS)
def test_sub_unsub_unsub_is_nop(name: str) -> None:
    h = connected()
    out = sub(h, name) + unsub(h, name) + unsub(h, name) + wait(h, name)
    assert of_type(out, Unsubscribed) == [Unsubscribed(name)]
    assert unsubscribes(out) == [name]
    assert name not in h.proto.channels()


def test_unsubscribe_is_idempotent() -> None:
    h = connected()
    sub(h, "chat")
    wait(h, "chat")
    out = unsub(h, "chat") + unsub(h, "chat") + unsub(h, "never-subscribed")
    assert unsubscribes(out) == ["chat"]
    assert of_type(out, Unsubscribed) == [Unsubscribed("chat")]


def test_no_events_after_cancel() -> None:
    h = connected()
    sub(h, "chat")
    unsub(h, "chat")
    out = h.frame("msg", {"a": 1}, "chat") + h.frame("pusher:cache_miss", channel="chat", omit_data=True)
    assert of_type(out, ChannelEvent) == []


def test_reinstated_channel_gets_events() -> None:
    h = connected()
    sub(h, "chat")
    unsub(h, "chat")
    sub(h, "chat")
    wait(h, "chat")
    assert of_type(h.frame("msg", {"a": 1}, "chat"), ChannelEvent) == [ChannelEvent("chat", "msg", {"a": 1})]


def test_no_events_after_unsubscribe() -> None:
    h = connected()
    sub(h, "chat")
    wait(h, "chat")
    unsub(h, "chat")
    assert h.frame("msg", {"a": 1}, "chat") == []


# --- wire format -------------------------------------------------------------------------------------


def test_public_subscribe_frame_has_empty_auth() -> None:
    h = connected()
    assert sent(sub(h, "chat")) == [{"event": "pusher:subscribe", "data": {"channel": "chat", "auth": ""}}]


def test_private_subscribe_waits_for_auth_with_the_socket_id() -> None:
    h = connected()
    h.proto.subscribe("private-orders.1", h.now)
    out = h.drain()
    assert out == [AuthorizeChannel("private-orders.1", "1.1", "subscribe")]
    assert sent(h.authorize("private-orders.1", auth="app-key:abc")) == [
        {"event": "pusher:subscribe", "data": {"channel": "private-orders.1", "auth": "app-key:abc"}}
    ]


def test_presence_subscribe_sends_channel_data_verbatim() -> None:
    h = connected()
    h.proto.subscribe("presence-room", h.now)
    h.drain()
    channel_data = '{"user_id": 1,  "user_info": {"name": "A"}}'  # odd spacing must survive byte for byte
    (frame,) = sent(h.authorize("presence-room", channel_data=channel_data))
    assert frame["data"]["channel_data"] == channel_data


def test_encrypted_subscribe_strips_shared_secret() -> None:
    h = connected()
    h.proto.subscribe("private-encrypted-x", h.now)
    h.drain()
    (frame,) = sent(h.authorize("private-encrypted-x", shared_secret=b"k" * 32))
    assert frame == {
        "event": "pusher:subscribe",
        "data": {"channel": "private-encrypted-x", "auth": "app-key:sig"},
    }


@pytest.mark.parametrize(
    "name",
    ["", "a" * 201, "has space", "emoji-😀", "#server-to-user-1", "#anything", "slash/no", "star*"],
)
def test_invalid_channel_names_are_refused(name: str) -> None:
    h = connected()
    with pytest.raises(InvalidChannelName):
        h.proto.subscribe(name, h.now)
    assert h.drain() == []


@pytest.mark.parametrize(
    "name", ["a" * 200, "-_=@,.;", "private-App.Models.User.1", "cache-x", "presence-cache-y"]
)
def test_valid_channel_names(name: str) -> None:
    h = connected()
    h.proto.subscribe(name, h.now)
    assert h.drain()


# --- before connected, reconnect ------------------------------------------------------------------------


def test_subscribe_before_connected_is_queued_until_connection_established() -> None:
    h = Harness()
    h.proto.subscribe("chat", h.now)
    h.proto.subscribe("private-a", h.now)
    assert h.drain() == []
    assert h.proto.channel_state("chat") is CS.UNSUBSCRIBED
    out = h.open()
    assert sent(out) == []  # socket open, but no connection_established yet: nothing may be sent
    out = h.establish("9.9")
    assert subscribes(out) == ["chat"]
    assert of_type(out, AuthorizeChannel) == [AuthorizeChannel("private-a", "9.9")]


def test_reconnect_reauthorises_with_new_socket_id_and_resubscribes_everything() -> None:
    h = connected()
    for name in [*KINDS, "private-encrypted-e"]:
        h.proto.subscribe(name, h.now)
    h.drain()
    h.authorize("private-chat")
    h.authorize("presence-chat", channel_data='{"user_id":"1"}')
    h.authorize("private-encrypted-e", shared_secret=b"k" * 32)
    for name in [*KINDS, "private-encrypted-e"]:
        wait(h, name)
    sub(h, "gone")
    wait(h, "gone")
    unsub(h, "gone")
    h.close(1006)
    out = h.reopen("2.2")
    assert sorted(a.channel for a in of_type(out, AuthorizeChannel)) == [
        "presence-chat",
        "private-chat",
        "private-encrypted-e",
    ]
    assert {a.socket_id for a in of_type(out, AuthorizeChannel)} == {"2.2"}
    assert subscribes(out) == ["chat"]  # "gone" is not resubscribed
    for name in KINDS:
        assert h.proto.channel_state(name) is CS.PENDING
    out = h.authorize("private-chat") + wait(h, "chat") + wait(h, "private-chat")
    assert [s.channel for s in of_type(out, SubscriptionSucceeded)] == ["chat", "private-chat"]


def test_auth_answer_for_a_stale_socket_id_is_ignored() -> None:
    h = connected()
    h.proto.subscribe("private-a", h.now)
    h.drain()
    h.close(1006)
    h.reopen("2.2")
    assert sent(h.authorize("private-a", socket_id="1.1")) == []  # signed for the old socket
    assert h.proto.channel_state("private-a") is CS.PENDING
    assert subscribes(h.authorize("private-a", socket_id="2.2")) == ["private-a"]
    assert sent(h.authorize("private-a", socket_id="2.2")) == []  # a duplicate answer is ignored


def test_connection_loss_clears_pending_and_subscribed() -> None:
    h = connected()
    sub(h, "a")
    wait(h, "a")
    h.proto.subscribe("private-b", h.now)
    sub(h, "c")
    unsub(h, "c")  # cancelled while pending: dropped on disconnect, never resubscribed
    h.close(1006)
    assert h.proto.channel_state("a") is CS.UNSUBSCRIBED
    assert h.proto.channel_state("private-b") is CS.UNSUBSCRIBED
    assert h.proto.channels() == ["a", "private-b"]


def test_subscribe_while_reconnecting_is_queued() -> None:
    h = connected()
    h.close(1006)
    h.proto.subscribe("late", h.now)
    assert h.drain() == []
    assert subscribes(h.reopen("3.3")) == ["late"]


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 500, 0, 200])
def test_auth_failure_clears_pending_and_allows_retry(status: int) -> None:
    h = connected()
    h.proto.subscribe("private-a", h.now)
    h.drain()
    error = AuthorizationError("private-a", "denied", status=status)
    h.proto.channel_authorization_failed("private-a", "1.1", error, h.now)
    out = h.drain()
    assert out == [SubscriptionFailed("private-a", error)]
    assert h.proto.channel_state("private-a") is CS.FAILED
    assert h.proto.next_deadline() == h.now + 120  # only the heartbeat; no subscription timer left
    h.proto.subscribe("private-a", h.now)  # retry
    assert of_type(h.drain(), AuthorizeChannel)
    assert h.proto.channel_state("private-a") is CS.PENDING


def test_server_subscription_error_soketi_shape_fails_and_clears_pending() -> None:
    h = connected()
    sub(h, "private-a")
    out = h.frame(
        "pusher:subscription_error",
        {"type": "AuthError", "error": "The connection is unauthorized.", "status": 401},
        "private-a",
        encode=False,
    )
    (failed,) = of_type(out, SubscriptionFailed)
    assert isinstance(failed.error, SubscriptionError)
    assert (failed.error.type, failed.error.status, failed.error.message) == (
        "AuthError",
        401,
        "The connection is unauthorized.",
    )
    assert h.proto.channel_state("private-a") is CS.FAILED
    assert of_type(h.advance(60), SubscriptionFailed) == []  # no extra timeout later
    assert sub(h, "private-a")  # a retry is allowed


def test_server_subscription_error_string_data() -> None:
    h = connected()
    sub(h, "chat")
    out = h.frame("pusher:subscription_error", "nope", "chat", encode=False)
    (failed,) = of_type(out, SubscriptionFailed)
    assert failed.error.message == "nope"


def test_reverb_4009_answering_a_pending_subscribe_fails_it_and_keeps_the_socket() -> None:
    h = connected()
    sub(h, "private-a")
    out = h.frame("pusher:error", {"code": 4009, "message": "Connection is unauthorized"})
    (failed,) = of_type(out, SubscriptionFailed)
    assert failed.channel == "private-a"
    assert isinstance(failed.error, SubscriptionRefused)
    assert isinstance(failed.error, AuthorizationError)
    assert (failed.error.code, failed.error.message) == (4009, "Connection is unauthorized")
    assert errors(out) == []  # reported once, as the channel's failure
    assert closes(out) == []
    assert h.proto.state is ConnectionState.CONNECTED
    assert h.proto.channel_state("private-a") is CS.FAILED
    assert of_type(h.advance(60), SubscriptionFailed) == []  # no timeout later
    assert subscribes(sub(h, "private-a")) == ["private-a"]  # explicit retry


def test_channel_less_error_goes_to_the_oldest_unanswered_subscribe() -> None:
    h = connected()
    sub(h, "private-a")
    sub(h, "news")
    sub(h, "presence-b")
    h.succeed("private-a", {})  # answered: the next error is not its
    out = h.frame("pusher:error", '{"code":4009,"message":"Connection is unauthorized"}', encode=False)
    (failed,) = of_type(out, SubscriptionFailed)
    assert failed.channel == "presence-b"  # public subscribes are never refused for a signature
    assert h.proto.channel_state("news") is CS.PENDING
    assert h.proto.channel_state("private-a") is CS.SUBSCRIBED


def test_pusher_cloud_invalid_signature_without_a_code_is_attributed() -> None:
    h = connected()
    sub(h, "private-a")
    out = h.frame("pusher:error", {"code": None, "message": "Invalid signature: Expected HMAC"})
    (failed,) = of_type(out, SubscriptionFailed)
    assert isinstance(failed.error, SubscriptionRefused)
    assert failed.error.code is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (4200, "Invalid message format"),
        (4301, "Rate limit exceeded"),
        (4009, "The client is not a member of the specified channel."),
    ],
)
def test_errors_of_one_message_are_reported_and_leave_the_subscribe_alone(code: int, message: str) -> None:
    h = connected()
    sub(h, "private-a")
    out = h.frame("pusher:error", {"code": code, "message": message})
    (error,) = errors(out)
    assert isinstance(error, ServerError)
    assert (error.code, error.message) == (code, message)
    assert of_type(out, SubscriptionFailed) == []
    assert closes(out) == []
    assert h.proto.channel_state("private-a") is CS.PENDING
    assert of_type(h.succeed("private-a", {}), SubscriptionSucceeded)


def test_channel_less_4009_with_nothing_pending_is_a_server_error() -> None:
    h = connected()
    sub(h, "private-a")
    h.proto.subscribe("private-b", h.now)
    h.drain()  # authorising: pusher:subscribe not sent yet, so the error cannot be its answer
    h.succeed("private-a", {})
    (error,) = errors(h.frame("pusher:error", {"code": 4009, "message": "Connection is unauthorized"}))
    assert isinstance(error, ServerError)
    assert h.proto.channel_state("private-b") is CS.PENDING


def test_refusal_of_a_cancelled_subscribe_ends_it_silently() -> None:
    h = connected()
    sub(h, "private-a")
    unsub(h, "private-a")
    out = h.frame("pusher:error", {"code": 4009, "message": "Connection is unauthorized"})
    assert of_type(out, SubscriptionFailed) == []
    assert errors(out) == []
    assert h.proto.channel_state("private-a") is CS.UNSUBSCRIBED


def test_after_a_refusal_a_reconnect_subscribes_again() -> None:
    h = connected()
    sub(h, "private-a")
    h.frame("pusher:error", {"code": 4009, "message": "Connection is unauthorized"})
    h.close(None)
    out = h.reopen()
    assert of_type(out, AuthorizeChannel)[0].channel == "private-a"


def test_subscription_timeout_covers_an_auth_that_never_answers() -> None:
    h = connected()
    h.proto.subscribe("private-a", h.now)
    h.drain()
    (failed,) = of_type(h.advance(10), SubscriptionFailed)
    assert isinstance(failed.error, SubscriptionTimeout)
    assert sent(h.authorize("private-a")) == []  # a late answer is ignored


def test_late_succeeded_after_timeout_is_accepted() -> None:
    h = connected()
    sub(h, "chat")
    h.advance(10)
    out = wait(h, "chat")
    assert of_type(out, SubscriptionSucceeded)
    assert h.proto.channel_state("chat") is CS.SUBSCRIBED


def test_succeeded_for_a_channel_we_left_is_released() -> None:
    h = connected()
    sub(h, "chat")
    h.advance(10)  # timed out
    unsub(h, "chat")
    assert unsubscribes(wait(h, "chat")) == ["chat"]


def test_encrypted_auth_without_shared_secret_fails() -> None:
    h = connected()
    h.proto.subscribe("private-encrypted-x", h.now)
    h.drain()
    (failed,) = of_type(h.authorize("private-encrypted-x"), SubscriptionFailed)
    assert "shared_secret" in failed.error.message


def test_presence_auth_without_channel_data_and_no_signin_fails() -> None:
    h = connected()
    h.proto.subscribe("presence-x", h.now)
    h.drain()
    (failed,) = of_type(h.authorize("presence-x"), SubscriptionFailed)
    assert isinstance(failed.error, AuthorizationError)


def test_presence_auth_with_bad_channel_data_fails() -> None:
    h = connected()
    h.proto.subscribe("presence-x", h.now)
    h.drain()
    (failed,) = of_type(h.authorize("presence-x", channel_data="not json"), SubscriptionFailed)
    assert isinstance(failed.error, AuthorizationError)


def test_oversize_subscribe_frame_fails_the_subscription_instead_of_killing_the_socket() -> None:
    h = Harness(max_frame_bytes=200)
    h.connect()
    h.proto.subscribe("presence-x", h.now)
    h.drain()
    out = h.authorize("presence-x", channel_data='{"user_id":"1","user_info":{"bio":"' + "x" * 300 + '"}}')
    (failed,) = of_type(out, SubscriptionFailed)
    assert failed.error.type == "PayloadTooLarge"
    assert sent(out) == []


# --- subscription_count, cache channels ---------------------------------------------------------------


def test_subscription_count() -> None:
    h = connected()
    sub(h, "chat")
    wait(h, "chat")
    out = h.frame("pusher_internal:subscription_count", {"subscription_count": 12}, "chat")
    assert out == [SubscriptionCount("chat", 12)]
    assert h.proto.subscription_count("chat") == 12
    assert [type(e) for e in errors(h.frame("pusher_internal:subscription_count", {"x": 1}, "chat"))] == [
        type(errors(h.raw("bad"))[0])
    ]


def test_succeeded_data_forms() -> None:
    h = connected()
    sub(h, "a")
    sub(h, "b")
    (s1,) = of_type(h.succeed("a"), SubscriptionSucceeded)  # Soketi: no data key
    (s2,) = of_type(
        h.frame("pusher_internal:subscription_succeeded", "{}", "b", encode=False), SubscriptionSucceeded
    )  # Reverb: "{}"
    assert (s1.data, s2.data) == (None, {})


@pytest.mark.parametrize("name", ["cache-x", "private-cache-x", "presence-cache-x"])
def test_cache_miss_and_cached_event_after_subscription(name: str) -> None:
    h = connected()
    sub(h, name)
    out = wait(h, name)
    out += h.frame("pusher:cache_miss", channel=name, omit_data=True)
    assert of_type(out, ChannelEvent) == [ChannelEvent(name, "pusher:cache_miss", None)]
    sub(h, "cache-y")
    out = wait(h, "cache-y") + h.frame("last-event", {"v": 1}, "cache-y")
    assert of_type(out, ChannelEvent) == [ChannelEvent("cache-y", "last-event", {"v": 1})]


def test_subscription_succeeded_again_after_each_reconnect() -> None:
    h = connected()
    sub(h, "chat")
    count = len(of_type(wait(h, "chat"), SubscriptionSucceeded))
    for i in range(3):
        out = h.close(1006)
        assert [type(e) for e in errors(out)] == [ConnectionClosed]
        h.reopen(f"{i}.0")
        count += len(of_type(wait(h, "chat"), SubscriptionSucceeded))
    assert count == 4


def test_unsubscribe_while_disconnected_sends_nothing() -> None:
    h = connected()
    sub(h, "chat")
    wait(h, "chat")
    h.close(1006)
    out = unsub(h, "chat")
    assert sent(out) == []
    assert of_type(out, Unsubscribed) == [Unsubscribed("chat")]
    assert subscribes(h.reopen("5.5")) == []
    assert sent_events(h.drain()) == []


def test_subscription_timeouts_fire_in_order_for_many_channels() -> None:
    h = connected()  # subscription_timeout=10
    names = [f"private-c{i}" for i in range(300)]
    for i, name in enumerate(names):
        h.now = 1000.0 + i * 0.01
        h.proto.subscribe(name, h.now)
    h.drain()
    assert h.proto.next_deadline() == pytest.approx(1010.0)
    h.authorize(names[0])
    wait(h, names[0])  # the earliest one succeeds: the next deadline moves to the second
    assert h.proto.next_deadline() == pytest.approx(1010.01)
    out = h.advance(10.005 - (h.now - 1000.0))  # up to 1010.005: names[1] is not due yet either
    assert of_type(out, SubscriptionFailed) == []
    out = h.advance(1)  # to ~1011.005: the ones subscribed within the first second time out, in order
    assert [f.channel for f in of_type(out, SubscriptionFailed)] == names[1:101]
    out = h.advance(5)
    assert [f.channel for f in of_type(out, SubscriptionFailed)] == names[101:]
