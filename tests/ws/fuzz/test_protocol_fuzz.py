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
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

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
    OpenTransport,
    ProtocolConfig,
    PusherProtocol,
    SendFrame,
    UserAuthData,
)

CHANNELS = [
    "chat",
    "private-a",
    "presence-r",
    "private-encrypted-e",
    "cache-c",
    "#server-to-user-1",
    "bad name",
    "",
]
VALID = CHANNELS[:5]
EVENTS = [
    "pusher:connection_established",
    "pusher:error",
    "pusher:ping",
    "pusher:pong",
    "pusher_internal:subscription_succeeded",
    "pusher_internal:member_added",
    "pusher_internal:member_removed",
    "pusher_internal:subscription_count",
    "pusher:subscription_error",
    "pusher:signin_success",
    "pusher_internal:watchlist_events",
    "pusher:cache_miss",
    "client-x",
    "app",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "socket_id",
                    "activity_timeout",
                    "code",
                    "message",
                    "presence",
                    "hash",
                    "ids",
                    "user_id",
                    "user_info",
                    "subscription_count",
                    "user_data",
                    "id",
                    "events",
                    "name",
                    "nonce",
                    "ciphertext",
                    "type",
                    "status",
                    "error",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)

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


ESTABLISHED = orjson.dumps(
    {"event": "pusher:connection_established", "data": '{"socket_id":"1.1","activity_timeout":30}'}
).decode()
PRESENCE = '{"presence":{"ids":["1"],"hash":{"1":null},"count":1}}'


def succeeded(channel: str) -> str:
    data = PRESENCE if channel.startswith("presence-") else "{}"
    return orjson.dumps(
        {"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": data}
    ).decode()


operations = st.lists(
    st.one_of(
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
        st.tuples(
            st.just("transport"),
            st.sampled_from(["opened", "failed", "closed"]),
            st.sampled_from([None, 1000, 1002, 1006, 4000, 4001, 4100, 4200, 4300]),
        ),
        st.tuples(
            st.just("conn"),
            st.sampled_from(["connect", "disconnect", "check", "signin", "user_ok", "user_fail"]),
        ),
    ),
    min_size=3,
    max_size=60,
)


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
def test_random_operations_keep_the_core_consistent(
    ops: list[tuple[Any, ...]], seed: int, start_connected: bool
) -> None:
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
                proto.channel_authorized(
                    op[1], sid if variant != 4 else "9.9", ChannelAuthData("a:b", data, secret), now
                )
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
            proto.receive(
                '{"event":"pusher:connection_established","data":{"socket_id":"1.1","activity_timeout":30}}',
                0.0,
            )
        proto.receive(data, 1.0)
        for out in proto.events_to_process():
            if isinstance(out, ErrorRaised):
                assert isinstance(out.error, WsError)


# --- model-based: the channel state machine against a small reference model of pusher-js's flags ----


class _ModelChannel:
    def __init__(self) -> None:
        self.pending = False
        self.cancelled = False
        self.subscribed = False
        self.failed = False
        self.auth_sent = False

    def state(self) -> ChannelState:
        if self.cancelled:
            return ChannelState.CANCELLED
        if self.pending:
            return ChannelState.PENDING
        if self.subscribed:
            return ChannelState.SUBSCRIBED
        return ChannelState.FAILED if self.failed else ChannelState.UNSUBSCRIBED


MODEL_CHANNELS = ["pub-a", "pub-b", "private-x", "private-y"]
names = st.sampled_from(MODEL_CHANNELS)


class ChannelMachine(RuleBasedStateMachine):
    """Random interleavings of user calls, auth answers, server confirmations and reconnects; after
    every step each channel's state and the subscribe/unsubscribe frames on the wire match the model."""

    def __init__(self) -> None:
        super().__init__()
        self.proto = PusherProtocol(ProtocolConfig(url="ws://h/app/k"), rng=random.Random(0))
        self.model: dict[str, _ModelChannel] = {}
        self.connected = False
        self.opening = False
        self.sid = 0
        self.now = 0.0
        self.wire: list[tuple[str, str]] = []
        self.expected: list[tuple[str, str]] = []
        self.proto.connect(self.now)
        self._drain()

    def _drain(self) -> None:
        for out in self.proto.events_to_process():
            if isinstance(out, OpenTransport):
                self.opening = True
            elif isinstance(out, SendFrame):
                msg = orjson.loads(out.text)
                if msg["event"] in ("pusher:subscribe", "pusher:unsubscribe"):
                    self.wire.append((msg["event"], msg["data"]["channel"]))

    def _begin(self, name: str) -> None:
        ch = self.model[name]
        ch.pending, ch.cancelled, ch.subscribed, ch.failed = True, False, False, False
        ch.auth_sent = not name.startswith("private-")
        if ch.auth_sent:
            self.expected.append(("pusher:subscribe", name))

    @rule(name=names)
    def subscribe(self, name: str) -> None:
        self.proto.subscribe(name, self.now)
        ch = self.model.get(name)
        if ch is None:
            ch = self.model[name] = _ModelChannel()
        elif ch.pending:
            ch.cancelled = False
            return
        elif ch.subscribed:
            return
        if self.connected:
            self._begin(name)

    @rule(name=names)
    def unsubscribe(self, name: str) -> None:
        self.proto.unsubscribe(name, self.now)
        ch = self.model.get(name)
        if ch is None or ch.cancelled:
            return
        if ch.pending:
            ch.cancelled = True
            return
        del self.model[name]
        if ch.subscribed and self.connected:
            self.expected.append(("pusher:unsubscribe", name))

    @precondition(lambda self: self.connected)
    @rule(name=names, ok=st.booleans())
    def auth_answer(self, name: str, ok: bool) -> None:
        sid = f"{self.sid}.1"
        if ok:
            self.proto.channel_authorized(name, sid, ChannelAuthData("k:s"), self.now)
        else:
            failure = SubscriptionError(name, "no", status=403)
            self.proto.channel_authorization_failed(name, sid, failure, self.now)
        ch = self.model.get(name)
        if ch is None or not ch.pending or ch.auth_sent or not name.startswith("private-"):
            return
        if ch.cancelled:
            del self.model[name]
        elif ok:
            ch.auth_sent = True
            self.expected.append(("pusher:subscribe", name))
        else:
            ch.pending, ch.failed = False, True

    @precondition(lambda self: self.connected)
    @rule(name=names)
    def server_confirms(self, name: str) -> None:
        self.proto.receive(succeeded(name), self.now)
        ch = self.model.get(name)
        if ch is None or ch.cancelled:
            self.model.pop(name, None)
            self.expected.append(("pusher:unsubscribe", name))
            return
        ch.pending, ch.subscribed, ch.failed = False, True, False

    @precondition(lambda self: self.connected)
    @rule(code=st.sampled_from([1006, 4200, 1000]))
    def drop(self, code: int) -> None:
        self.proto.transport_closed(code, "", self.now)
        self.connected = False
        for name, ch in list(self.model.items()):
            if ch.cancelled:
                del self.model[name]
            else:
                ch.pending = ch.subscribed = ch.failed = ch.auth_sent = False

    @precondition(lambda self: not self.connected)
    @rule()
    def reconnect(self) -> None:
        self._drain()
        while not self.opening:  # run the clock to the scheduled retry
            deadline = self.proto.next_deadline()
            assert deadline is not None
            self.now = max(self.now, deadline)
            self.proto.tick(self.now)
            self._drain()
        self.opening = False
        self.proto.transport_opened(self.now)
        self.sid += 1
        established = {"socket_id": f"{self.sid}.1", "activity_timeout": 30}
        self.proto.receive(
            orjson.dumps({"event": "pusher:connection_established", "data": established}), self.now
        )
        assert self.proto.state is ConnectionState.CONNECTED
        self.connected = True
        for name in self.model:
            self._begin(name)

    @invariant()
    def matches_the_model(self) -> None:
        self._drain()
        assert self.wire == self.expected
        self.wire, self.expected = [], []
        for name in MODEL_CHANNELS:
            ch = self.model.get(name)
            assert self.proto.channel_state(name) is (ch.state() if ch else ChannelState.UNSUBSCRIBED), name
        assert sorted(self.proto.channels()) == sorted(self.model)


ChannelMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_channel_state_machine_matches_the_model = ChannelMachine.TestCase
