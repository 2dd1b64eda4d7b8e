"""Fuzzing the server's WebSocket side: random frames, random JSON, random bytes from a client.

Properties, checked after every example: the server answers the fuzzing socket with a pong (or closed
it with a proper code), it logged no error, it never answered "server error" (4302: a handler raised),
an honest client on another socket still receives every event, and the fuzzing socket's channels and
connection are gone once it closes (no leaked server state).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConcurrencyError, ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from quvel_ws.server import ServerThread
from tests.fuzz.conftest import APP, ErrorLog
from tests.security.raw import channel_auth, hmac_hex

pytestmark = pytest.mark.slow

# --- strategies ------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
KNOWN_CHANNELS = [
    "news",
    "private-x",
    "presence-x",
    "private-encrypted-x",
    "cache-x",
    "private-cache-x",
    "presence-cache-x",
    "#server-to-user-1",
    "#server-to-user-",
    "fuzz-check",
]
channel_names = (
    st.sampled_from(KNOWN_CHANNELS)
    | st.text(max_size=210)
    | st.text(alphabet="abc-_=@,.;#", min_size=1, max_size=205)
)
KNOWN_EVENTS = [
    "pusher:subscribe",
    "pusher:unsubscribe",
    "pusher:ping",
    "pusher:pong",
    "pusher:signin",
    "client-x",
    "client-",
    "pusher_internal:subscription_succeeded",
    "pusher:error",
    "pusher:connection_established",
    "pusher:cache_miss",
]
event_names = st.sampled_from(KNOWN_EVENTS) | st.text(max_size=220) | st.just("client-" + "x" * 250)
subscribe_data = st.fixed_dictionaries(
    {},
    optional={
        "channel": channel_names | json_values,
        "auth": st.text(max_size=80) | json_values,
        "channel_data": st.text(max_size=80) | json_values,
        "user_data": st.text(max_size=80) | json_values,
    },
)
data_values = json_values | subscribe_data | subscribe_data.map(json.dumps)
messages = st.fixed_dictionaries(
    {"event": event_names | json_values},
    optional={"channel": channel_names | json_values, "data": data_values, "user_id": json_values},
)


@st.composite
def signed(draw: st.DrawFn) -> tuple[str, Any]:
    """A correctly signed subscribe or sign-in with odd contents (reaches the code behind the signature
    check): resolved against the socket id when sent."""
    kind = draw(st.sampled_from(["private", "presence", "signin"]))
    if kind == "signin":
        user = draw(json_values | st.fixed_dictionaries({"id": json_values}, optional={"info": json_values}))
        return "signin", json.dumps(user)
    channel = draw(st.sampled_from(["private-", "presence-", "private-encrypted-", "private-cache-"]))
    channel += draw(st.text(alphabet="abc-_=@,.;", min_size=1, max_size=20))
    if kind == "presence" or channel.startswith("presence-"):
        member = draw(
            json_values | st.fixed_dictionaries({"user_id": json_values}, optional={"user_info": json_values})
        )
        return "presence", (
            channel.replace("private-", "presence-", 1) if not channel.startswith("presence-") else channel,
            json.dumps(member),
        )
    return "private", channel


def _dumps(value: Any) -> str:
    return json.dumps(value)  # allows NaN and huge ints, which strict JSON parsers must refuse cleanly


frames = st.one_of(
    messages.map(_dumps),
    json_values.map(_dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.tuples(st.just("signed"), signed()),
    st.tuples(st.just("fragments"), st.lists(st.text(max_size=60), min_size=2, max_size=4)),
    st.tuples(st.just("ping"), st.binary(max_size=125)),
    st.just("x" * 300_000),  # over the server's frame limit: a 1009 close, never a crash
)


# --- harness ------------------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll state owned by the server thread."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def open_client(server: ServerThread) -> tuple[ClientConnection, str]:
    url = f"{server.ws_url}?protocol=7&client=fuzz&version=1"
    ws = connect(url, max_size=None, open_timeout=5, legacy=True)
    first = json.loads(ws.recv(timeout=5))
    assert first["event"] == "pusher:connection_established"
    return ws, json.loads(first["data"])["socket_id"]


def read_until(
    ws: ClientConnection,
    predicate: Callable[[dict[str, Any]], bool],
    within: float = 5.0,
    seen: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("expected frame not received")
        frame = json.loads(ws.recv(timeout=remaining))
        if seen is not None:
            seen.append(frame)
        if frame.get("event") == "pusher:ping":
            ws.send('{"event":"pusher:pong","data":{}}')
        if predicate(frame):
            return dict(frame)


class Honest:
    """A well-behaved client subscribed to ``fuzz-check``: must get every event whatever the fuzzer does."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.ws, self.socket_id = open_client(server)
        self.ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "fuzz-check"}}))
        read_until(self.ws, lambda f: f.get("event") == "pusher_internal:subscription_succeeded")
        self.counter = itertools.count()

    def check(self) -> None:
        n = next(self.counter)
        self.server.trigger("fuzz-check", "Check", {"n": n})
        read_until(self.ws, lambda f: f.get("event") == "Check" and json.loads(f["data"]) == {"n": n})


@pytest.fixture(scope="module")
def honest(fuzz_server: ServerThread) -> Iterator[Honest]:
    client = Honest(fuzz_server)
    yield client
    client.ws.close()


def send_frame(ws: ClientConnection, socket_id: str, frame: Any) -> None:
    if isinstance(frame, tuple) and frame[0] == "fragments":  # one text message in several frames
        ws.send(iter(frame[1]))
    elif isinstance(frame, tuple) and frame[0] == "ping":  # a WebSocket control frame in between
        with contextlib.suppress(ConcurrencyError):  # same payload as a ping still in flight: client-side
            ws.ping(frame[1])
    elif isinstance(frame, tuple):  # ("signed", (kind, payload))
        kind, payload = frame[1]
        if kind == "signin":
            auth = f"{APP.key}:{hmac_hex(APP.secret, f'{socket_id}::user::{payload}')}"
            ws.send(json.dumps({"event": "pusher:signin", "data": {"auth": auth, "user_data": payload}}))
        elif kind == "presence":
            channel, channel_data = payload
            auth = channel_auth(APP.key, APP.secret, socket_id, channel, channel_data)
            ws.send(
                json.dumps(
                    {
                        "event": "pusher:subscribe",
                        "data": {"channel": channel, "auth": auth, "channel_data": channel_data},
                    }
                )
            )
        else:
            auth = channel_auth(APP.key, APP.secret, socket_id, payload)
            ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": payload, "auth": auth}}))
    else:
        ws.send(frame)


BASELINE = {"fuzz-check": 1}  # the honest client's channel; everything else must be gone after each example


# --- properties ---------------------------------------------------------------------------------------------


@settings(settings.get_profile("quvel-fuzz"))
@given(batch=st.lists(frames, min_size=1, max_size=12))
def test_random_frames_never_hurt_the_server(
    fuzz_server: ServerThread, honest: Honest, server_errors: ErrorLog, batch: list[Any]
) -> None:
    ws, socket_id = open_client(fuzz_server)
    seen: list[dict[str, Any]] = []
    closed_code: int | None = None
    try:
        for frame in batch:
            send_frame(ws, socket_id, frame)
        ws.send('{"event":"pusher:ping","data":{}}')
        read_until(ws, lambda f: f.get("event") == "pusher:pong", seen=seen)
    except ConnectionClosed as exc:
        closed_code = exc.rcvd.code if exc.rcvd is not None else None
    finally:
        ws.close()
    if closed_code is not None:
        # Allowed: what Pusher closes on (bad sign-in 4009, oversize 1009, bad framing 1002/1007).
        assert closed_code in {1002, 1003, 1007, 1009, 4009, 4200, 4201}, closed_code
    server_side_errors = [
        f
        for f in seen
        if f.get("event") == "pusher:error"
        and isinstance(f.get("data"), dict)
        and f["data"].get("code") == 4302
    ]
    assert server_side_errors == [], "a frame handler raised (4302 'server error')"
    assert server_errors.take() == []
    honest.check()
    wait_until(lambda: fuzz_server.connection_count() == 1)
    wait_until(lambda: fuzz_server.channels() == BASELINE)


@settings(settings.get_profile("quvel-fuzz"))
@given(garbage=st.binary(min_size=1, max_size=400), after_upgrade=st.booleans())
def test_raw_garbage_on_the_socket(
    fuzz_server: ServerThread, honest: Honest, server_errors: ErrorLog, garbage: bytes, after_upgrade: bool
) -> None:
    """Bytes that are not WebSocket frames (or not even HTTP) never stop the server."""
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=5) as sock:
        if after_upgrade:
            sock.sendall(
                b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
        with contextlib.suppress(OSError):
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            while sock.recv(65536):
                pass
    assert server_errors.take() == []
    honest.check()
    wait_until(lambda: fuzz_server.connection_count() == 1)
    wait_until(lambda: fuzz_server.channels() == BASELINE)


@settings(settings.get_profile("quvel-fuzz"))
@given(
    ops=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from(["sub", "unsub", "close"]),
            st.sampled_from(["news", "private-a", "presence-a", "presence-b"]),
            st.sampled_from(["1", "2", "3"]),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_subscription_bookkeeping_matches_a_model(
    fuzz_server: ServerThread, honest: Honest, server_errors: ErrorLog, ops: list[tuple[int, str, str, str]]
) -> None:
    """Random subscribe/unsubscribe/close sequences over four sockets: the server's channel counts and
    presence members always equal a simple model, and nothing remains once every socket is gone."""
    clients: dict[int, tuple[ClientConnection, str]] = {}
    model: dict[int, dict[str, str | None]] = {}  # client -> channel -> user id (presence) or None

    def client(i: int) -> tuple[ClientConnection, str]:
        if i not in clients:
            clients[i] = open_client(fuzz_server)
            model[i] = {}
        return clients[i]

    try:
        for i, op, channel, user in ops:
            if op == "close":
                if i in clients:
                    clients.pop(i)[0].close()
                    model.pop(i)
                continue
            ws, sid = client(i)
            if op == "unsub":
                ws.send(json.dumps({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
                model[i].pop(channel, None)
                ws.send('{"event":"pusher:ping","data":{}}')
                read_until(ws, lambda f: f.get("event") == "pusher:pong")
                continue
            data: dict[str, Any] = {"channel": channel}
            member: str | None = None
            if channel.startswith("presence-"):
                member = user
                channel_data = json.dumps({"user_id": user, "user_info": {"n": user}})
                data.update(
                    channel_data=channel_data,
                    auth=channel_auth(APP.key, APP.secret, sid, channel, channel_data),
                )
            elif channel.startswith("private-"):
                data["auth"] = channel_auth(APP.key, APP.secret, sid, channel)
            ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
            read_until(
                ws,
                lambda f, c=channel: (
                    f.get("channel") == c
                    and f.get("event")
                    in {  # type: ignore[misc]
                        "pusher_internal:subscription_succeeded",
                        "pusher:subscription_error",
                    }
                ),
            )
            model[i].setdefault(channel, member)

            expected_counts: dict[str, int] = {"fuzz-check": 1}
            for chans in model.values():
                for name in chans:
                    expected_counts[name] = expected_counts.get(name, 0) + 1

            def counts_match(expected: dict[str, int] = expected_counts) -> bool:
                return fuzz_server.channels() == expected

            wait_until(counts_match)
            for name in ("presence-a", "presence-b"):
                users = {u for chans in model.values() for c, u in chans.items() if c == name and u}
                wait_until(lambda n=name, u=users: set(fuzz_server.presence_members(n)) == u)  # type: ignore[misc]
    finally:
        for ws, _ in clients.values():
            ws.close()
    wait_until(lambda: fuzz_server.channels() == {"fuzz-check": 1})
    wait_until(lambda: fuzz_server.connection_count() == 1)
    assert server_errors.take() == []
    honest.check()
