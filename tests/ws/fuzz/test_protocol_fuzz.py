"""Property test of the protocol core: random frames, bytes, clock ticks and user calls.

No exception may escape ``receive``/``tick``/transport callbacks; user calls raise only the
documented typed errors; and the state machine's invariants hold after every step.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from quvel_ws.errors import (
    ClientEventError,
    InvalidArgument,
    NotConnected,
    SigninError,
    SubscriptionError,
    WsError,
)
from quvel_ws.protocol import (
    ChannelAuthData,
    ChannelState,
    ConnectionState,
    ErrorRaised,
    ProtocolConfig,
    PusherProtocol,
    UserAuthData,
)

CHANNELS = ["chat", "private-a", "presence-r", "private-encrypted-e", "cache-c", "#server-to-user-1",
            "bad name", ""]
VALID = CHANNELS[:5]
EVENTS = ["pusher:connection_established", "pusher:error", "pusher:ping", "pusher:pong",
          "pusher_internal:subscription_succeeded", "pusher_internal:member_added",
          "pusher_internal:member_removed", "pusher_internal:subscription_count", "pusher:subscription_error",
          "pusher:signin_success", "pusher_internal:watchlist_events", "pusher:cache_miss", "client-x", "app"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["socket_id", "activity_timeout", "code", "message", "presence", "hash", "ids",
                         "user_id", "user_info", "subscription_count", "user_data", "id", "events", "name",
                         "nonce", "ciphertext", "type", "status", "error"]), inner, max_size=4),
    max_leaves=8)

datas = st.one_of(
    json_values,
    json_values.map(lambda v: orjson.dumps(v).decode()),  # the usual JSON-string form
    st.just({"socket_id": "1.2", "activity_timeout": 30}),
    st.just(orjson.dumps({"socket_id": "1.2", "activity_timeout": 30}).decode()),
    st.just({"presence": {"ids": ["1", 2], "hash": {"1": {"n": 1}}, "count": 2}}),
    st.just({"user_id": 1, "user_info": {"n": 1}}),
    st.just({"user_data": '{"id":"1"}'}),
    st.just({"events": [{"name": "online", "user_ids": ["1"]}, 3]}),
)


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return draw(st.text(max_size=40))
    msg: dict[str, Any] = {"event": draw(st.sampled_from(EVENTS) | st.text(max_size=5))}
    if draw(st.booleans()):
        msg["channel"] = draw(st.sampled_from(CHANNELS) | st.integers(-(2**40), 2**40))
    if draw(st.booleans()):
        msg["data"] = draw(datas)
    if draw(st.booleans()):
        msg["user_id"] = draw(st.integers(-(2**40), 2**40) | st.text(max_size=3) | st.none())
    return orjson.dumps(msg).decode()


ESTABLISHED = orjson.dumps({"event": "pusher:connection_established",
                            "data": '{"socket_id":"1.1","activity_timeout":30}'}).decode()
PRESENCE = '{"presence":{"ids":["1"],"hash":{"1":null},"count":1}}'


def succeeded(channel: str) -> str:
    data = PRESENCE if channel.startswith("presence-") else "{}"
    return orjson.dumps({"event": "pusher_internal:subscription_succeeded", "channel": channel,
                         "data": data}).decode()


operations = st.lists(st.one_of(
    st.tuples(st.just("frame"), frames()),
    st.tuples(st.just("frame"), st.just(ESTABLISHED)),
    st.tuples(st.just("frame"), st.sampled_from(VALID).map(succeeded)),
    st.tuples(st.just("frame"), st.sampled_from(VALID).map(succeeded)),
    st.tuples(st.just("tick"), st.floats(0, 3, allow_nan=False) | st.floats(0, 200, allow_nan=False)),
    st.tuples(st.just("sub"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("sub"), st.sampled_from(VALID)),
    st.tuples(st.just("unsub"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("auth"), st.sampled_from(VALID), st.integers(0, 4)),
    st.tuples(st.just("whisper"), st.sampled_from(CHANNELS), st.sampled_from(["client-x", "x"])),
    st.tuples(st.just("transport"), st.sampled_from(["opened", "failed", "closed"]),
              st.sampled_from([None, 1000, 1002, 1006, 4000, 4001, 4100, 4200, 4300])),
    st.tuples(st.just("conn"), st.sampled_from(["connect", "disconnect", "check", "signin", "user_ok",
                                                "user_fail"])),
), min_size=3, max_size=60)


def check_invariants(proto: PusherProtocol, now: float) -> None:
    assert isinstance(proto.state, ConnectionState)
    for name, ch in proto._channels.items():
        assert not (ch.subscribed and ch.pending), name
        assert not (ch.cancelled and not ch.pending), name
        assert isinstance(proto.channel_state(name), ChannelState)
    if proto.state is not ConnectionState.CONNECTED:
        assert not any(ch.subscribed for ch in proto._channels.values())
    assert set(proto._timed) <= set(proto._channels)
    for name, ch in proto._channels.items():
        if ch.deadline is not None or ch.refresh_deadline is not None:
            assert name in proto._timed, name
    for out in proto.events_to_process():
        if isinstance(out, ErrorRaised):
            assert isinstance(out.error, WsError)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, seed=st.integers(0, 2**16), start_connected=st.booleans())
def test_random_operations_keep_the_core_consistent(ops: list[tuple[Any, ...]], seed: int,
                                                    start_connected: bool) -> None:
    proto = PusherProtocol(ProtocolConfig(url="ws://h/app/k", max_frame_bytes=500), rng=random.Random(seed))
    now = 0.0
    proto.connect(now)
    if start_connected:  # most interesting states are behind the handshake: start there half the time
        proto.transport_opened(now)
        proto.receive(ESTABLISHED, now)
    reached: set[str] = set()
    for op in ops:
        kind = op[0]
        if kind == "frame":
            proto.receive(op[1], now)
        elif kind == "tick":
            now += op[1]
            proto.tick(now)
            deadline = proto.next_deadline()
            assert deadline is None or deadline > now, (deadline, now)
        elif kind == "sub":
            with contextlib.suppress(InvalidArgument):
                proto.subscribe(op[1], now)
        elif kind == "unsub":
            proto.unsubscribe(op[1], now)
        elif kind == "auth":
            sid = proto.socket_id or "0.0"
            variant = op[2]
            if variant == 0:
                proto.channel_authorization_failed(op[1], sid, SubscriptionError(op[1], "x", status=403), now)
            else:
                secret = b"k" * 32 if variant in (1, 2) else b"short"
                data = '{"user_id":"1"}' if variant in (1, 3) else None
                proto.channel_authorized(op[1], sid if variant != 4 else "9.9",
                                         ChannelAuthData("a:b", data, secret), now)
        elif kind == "whisper":
            with contextlib.suppress(ClientEventError, NotConnected, InvalidArgument):
                proto.send_client_event(op[1], op[2], {"x": 1}, now)
        elif kind == "transport":
            if op[1] == "opened":
                proto.transport_opened(now)
            elif op[1] == "failed":
                proto.transport_failed(OSError("x"), now)
            else:
                proto.transport_closed(op[2], "", now)
        else:
            action = op[1]
            if action == "connect":
                proto.connect(now)
            elif action == "disconnect":
                proto.disconnect(now)
            elif action == "check":
                proto.check_connection(now)
            elif action == "signin":
                proto.signin(now)
            elif action == "user_ok":
                proto.user_authorized(proto.socket_id or "", UserAuthData("a:b", '{"id":"1"}'), now)
            else:
                proto.user_authorization_failed(proto.socket_id or "", SigninError("no"), now)
        check_invariants(proto, now)
        reached.add(proto.state.value)
        reached.update(f"channel {ch.state.value}" for ch in proto._channels.values())
    for what in sorted(reached):
        event(what)  # `pytest --hypothesis-show-statistics` shows how much of the machine was walked


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_in_any_phase_never_raise(data: bytes | str) -> None:
    for connect in (False, True):
        proto = PusherProtocol(ProtocolConfig(url="ws://h/app/k"))
        proto.connect(0.0)
        proto.transport_opened(0.0)
        if connect:
            proto.receive('{"event":"pusher:connection_established","data":{"socket_id":"1.1",'
                          '"activity_timeout":30}}', 0.0)
        proto.receive(data, 1.0)
        for out in proto.events_to_process():
            if isinstance(out, ErrorRaised):
                assert isinstance(out.error, WsError)
