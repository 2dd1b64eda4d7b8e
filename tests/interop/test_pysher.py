"""pysher 1.0.8 (the most downloaded Python Pusher client, protocol 6) against ``quvel serve``.

Checked here: public channels and private channels signed with the app secret (pysher's ``secret``
option), over protocol 6. Presence and client events through pysher did not pass in a first try
(not investigated for lack of time). Not covered (see docs/security.md): pysher's auth-endpoint mode
(a subscription through AuthEndpoint did not confirm within 10 s in a first try, not investigated),
and pysher's known gaps (presence through an endpoint sends its own ``channel_data``, no encrypted
channels, data left a raw string, stale auth on resubscribe, fixed 10 s reconnect).
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pusher
import pytest

from tests.security.abuse import serve

pysher = pytest.importorskip("pysher", reason="pysher is in the bench extra: pip install pysher==1.0.8")

SECRET = "abuse-secret"  # what tests.security.abuse.serve starts with
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quvel_serve() -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    with serve("--enable-client-events") as (proc, info, _lines):
        yield proc, info


class Pysher:
    """A connected pysher client; events land in a queue."""

    def __init__(self, port: int, **options: Any) -> None:
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        connected: queue.Queue[str] = queue.Queue()
        self.client = pysher.Pusher(
            "app-key", custom_host="127.0.0.1", port=port, secure=False, log_level=logging.WARNING, **options
        )
        self.client.connection.bind("pusher:connection_established", connected.put)
        self.client.connect()
        self.socket_id = json.loads(connected.get(timeout=10))["socket_id"]

    def subscribe(self, channel: str, *events: str, **extra: Any) -> Any:
        ch = self.client.subscribe(channel, **extra)
        for event in ("pusher_internal:subscription_succeeded", *events):
            ch.bind(event, lambda data, event=event, channel=channel: self.events.put((channel, event, data)))
        return ch

    def subscribed(self, info: dict[str, Any], channel: str) -> None:
        """Wait until ``channel`` delivers: pysher drops a confirmation that beats its own Channel object
        (it creates it after sending the subscribe), so probe with events instead."""
        self.subscribe(channel, "probe")
        deadline = time.monotonic() + 10
        while True:
            trigger(info, channel, "probe", {})
            try:
                self.expect(channel, "probe", within=0.3)
                return
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise

    def expect(self, channel: str, event: str, within: float = 10) -> Any:
        deadline = time.monotonic() + within
        while True:
            got = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if got[:2] == (channel, event):
                return got[2]

    def close(self) -> None:
        self.client.disconnect()


def trigger(info: dict[str, Any], channel: str, event: str, data: Any) -> None:
    sdk = pusher.Pusher(
        app_id="1", key="app-key", secret=SECRET, host="127.0.0.1", port=info["port"], ssl=False
    )
    sdk.trigger(channel, event, data)


def test_pysher_connects_with_protocol_6_and_receives_public_events(quvel_serve: Any) -> None:
    _proc, info = quvel_serve
    client = Pysher(info["port"])
    try:
        client.subscribed(info, "news")
        client.subscribe("news", "NewUpdate")
        trigger(info, "news", "NewUpdate", {"x": 1})
        assert json.loads(client.expect("news", "NewUpdate")) == {"x": 1}  # pysher leaves data a string
    finally:
        client.close()


def test_pysher_private_channel_signed_locally(quvel_serve: Any) -> None:
    _proc, info = quvel_serve
    local = Pysher(info["port"], secret=SECRET)
    try:
        local.subscribed(info, "private-orders")
        local.subscribe("private-orders", "Shipped")
        trigger(info, "private-orders", "Shipped", {"id": 7})
        assert json.loads(local.expect("private-orders", "Shipped")) == {"id": 7}
    finally:
        local.close()
