"""Random frames never take the server down: every one gets at most errors, and the socket and the
server keep serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from quvel_ws.server import AppConfig, PusherServer, ServerThread

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
events = st.sampled_from(
    [
        "pusher:subscribe",
        "pusher:unsubscribe",
        "pusher:ping",
        "pusher:signin",
        "client-x",
        "pusher:pong",
        "other",
        "",
    ]
)
channels = st.sampled_from(
    [
        "news",
        "private-a",
        "presence-b",
        "private-encrypted-c",
        "cache-d",
        "#server-to-user-1",
        "bad name",
        "x" * 250,
    ]
) | st.text(max_size=20)
messages = st.fixed_dictionaries(
    {"event": events},
    optional={
        "data": json_values
        | st.fixed_dictionaries(
            {"channel": channels},
            optional={"auth": st.text(max_size=20), "channel_data": json_values | st.text(max_size=20)},
        ),
        "channel": channels,
    },
)
frames = messages.map(json.dumps) | st.text(max_size=50) | st.binary(max_size=50)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = AppConfig(enable_client_events=True, max_client_events_per_second=10_000)
    with PusherServer(apps=[app]).start_in_thread() as running:
        yield running


def barrier(ws: ClientConnection) -> list[dict[str, Any]]:
    ws.send('{"event":"pusher:ping","data":{}}')
    seen: list[dict[str, Any]] = []
    while True:
        msg = json.loads(ws.recv(timeout=5))
        if msg["event"] == "pusher:pong":
            return seen
        seen.append(msg)


ALLOWED = {
    "pusher:error",
    "pusher:subscription_error",
    "pusher_internal:subscription_succeeded",
    "pusher:cache_miss",
    "pusher:pong",
    "pusher:signin_success",
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=5))
def test_random_frames(server: ServerThread, batch: list[str | bytes]) -> None:
    with connect(server.ws_url) as ws:
        json.loads(ws.recv(timeout=5))
        try:
            for frame in batch:
                ws.send(frame)
            answers = barrier(ws)
        except ConnectionClosed:
            # Only a refused pusher:signin closes the connection (4009), as on Pusher and Soketi.
            assert ws.close_code == 4009
            assert any(isinstance(f, str) and '"pusher:signin"' in f for f in batch)
            return
    assert {m["event"] for m in answers} <= ALLOWED
    assert all(m["data"]["code"] != 4302 for m in answers if m["event"] == "pusher:error")  # no handler bug
