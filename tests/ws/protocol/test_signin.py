"""§6.6 area 10: user authentication (pusher:signin), the server-to-user channel and the watchlist."""

from __future__ import annotations

from quvel_ws.errors import ProtocolError, ServerError, SigninError
from quvel_ws.protocol import (
    AuthorizeUser,
    ChannelEvent,
    GlobalEvent,
    Member,
    SignedIn,
    SubscriptionFailed,
    SubscriptionSucceeded,
    UserAuthData,
    UserEvent,
)

from .harness import Harness, errors, of_type, sent

USER_DATA = '{"id":"42","user_info":{"name":"Ada"},"watchlist":["2","3"]}'


def signed_in() -> Harness:
    h = Harness()
    h.connect("1.1")
    h.proto.signin(h.now)
    assert h.drain() == [AuthorizeUser("1.1")]
    h.proto.user_authorized("1.1", UserAuthData("app-key:sig", USER_DATA), h.now)
    signin = {"event": "pusher:signin", "data": {"auth": "app-key:sig", "user_data": USER_DATA}}
    assert sent(h.drain()) == [signin]
    out = h.frame("pusher:signin_success", {"user_data": USER_DATA}, encode=False)
    assert of_type(out, SignedIn) == [
        SignedIn("42", {"id": "42", "user_info": {"name": "Ada"}, "watchlist": ["2", "3"]})
    ]
    assert sent(out) == [{"event": "pusher:subscribe", "data": {"channel": "#server-to-user-42", "auth": ""}}]
    assert h.succeed("#server-to-user-42") == []  # internal: no SubscriptionSucceeded for it
    return h


def test_signin_success_with_string_encoded_data() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.signin(h.now)
    h.proto.user_authorized("1.1", UserAuthData("a", USER_DATA), h.now)
    h.drain()
    out = h.frame("pusher:signin_success", {"user_data": USER_DATA})  # data as a JSON string (Pusher)
    assert [s.user_id for s in of_type(out, SignedIn)] == ["42"]


def test_signin_flow_and_user_events() -> None:
    h = signed_in()
    assert h.proto.user_id == "42"
    out = h.frame("notify", {"x": 1}, "#server-to-user-42")
    assert out == [UserEvent("notify", {"x": 1})]
    assert h.frame("pusher:cache_miss", channel="#server-to-user-42", omit_data=True) == []
    assert "#server-to-user-42" not in h.proto.channels()


def test_signin_before_connect_runs_once_connected() -> None:
    h = Harness()
    h.proto.signin(h.now)
    assert h.drain() == []
    out = h.connect("7.7")
    assert of_type(out, AuthorizeUser) == [AuthorizeUser("7.7")]


def test_signin_again_after_every_reconnect_and_cleanup_on_disconnect() -> None:
    h = signed_in()
    h.close(1006)
    assert h.proto.user_id is None
    out = h.reopen("2.2")
    assert of_type(out, AuthorizeUser) == [AuthorizeUser("2.2")]
    h.proto.user_authorized("1.1", UserAuthData("stale", USER_DATA), h.now)  # stale socket id
    assert h.drain() == []


def test_user_auth_failure_is_a_signin_error() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.signin(h.now)
    h.drain()
    h.proto.user_authorization_failed("1.1", SigninError("denied", status=403), h.now)
    (error,) = errors(h.drain())
    assert isinstance(error, SigninError)
    assert error.status == 403


def test_signin_success_with_bad_user_data() -> None:
    for data in ({"user_data": "not json"}, {"user_data": '{"id":""}'}, {"nothing": 1}, "x"):
        h = Harness()
        h.connect("1.1")
        h.proto.signin(h.now)
        h.drain()
        out = h.frame("pusher:signin_success", data, encode=False)
        assert [type(e) for e in errors(out)] == [SigninError]
        assert h.proto.user_id is None


def test_reverb_without_signin_support_is_handled_gracefully() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.signin(h.now)
    h.drain()
    h.proto.user_authorized("1.1", UserAuthData("a", USER_DATA), h.now)
    h.drain()
    out = h.frame("pusher:error", {"code": 4200, "message": "Invalid message format"})
    assert [type(e) for e in errors(out)] == [ServerError]
    assert h.proto.state.value == "connected"


def test_watchlist_events_one_global_event_per_entry() -> None:
    h = signed_in()
    entries = [{"name": "online", "user_ids": ["1"]}, {"name": "offline", "user_ids": ["2", "3"]}]
    out = h.frame("pusher_internal:watchlist_events", {"events": entries}, encode=False)
    assert out == [GlobalEvent("online", entries[0]), GlobalEvent("offline", entries[1])]
    out = h.frame("pusher_internal:watchlist_events", {"events": "x"})
    assert [type(e) for e in errors(out)] == [ProtocolError]


def test_presence_without_channel_data_waits_for_signin_and_uses_user_id() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.signin(h.now)
    h.proto.subscribe("presence-room", h.now)
    h.drain()
    assert sent(h.authorize("presence-room")) == []  # parked until we know who "me" is
    h.proto.user_authorized("1.1", UserAuthData("a", USER_DATA), h.now)
    h.drain()
    out = h.frame("pusher:signin_success", {"user_data": USER_DATA}, encode=False)
    subscribed_to = [f["data"]["channel"] for f in sent(out)]
    assert subscribed_to == ["#server-to-user-42", "presence-room"]
    out = h.succeed("presence-room", {"presence": {"ids": ["42"], "hash": {"42": {"n": "Ada"}}, "count": 1}})
    (ok,) = of_type(out, SubscriptionSucceeded)
    assert ok.me == Member("42", {"n": "Ada"})


def test_parked_presence_fails_when_signin_fails() -> None:
    h = Harness()
    h.connect("1.1")
    h.proto.signin(h.now)
    h.proto.subscribe("presence-room", h.now)
    h.drain()
    h.authorize("presence-room")
    h.proto.user_authorization_failed("1.1", SigninError("denied", status=403), h.now)
    out = h.drain()
    assert [type(e).__name__ for e in errors(out)] == ["SigninError"]
    assert [f.channel for f in of_type(out, SubscriptionFailed)] == ["presence-room"]


def test_user_channel_events_never_become_channel_events() -> None:
    h = signed_in()
    assert of_type(h.frame("x", {}, "#server-to-user-42"), ChannelEvent) == []
