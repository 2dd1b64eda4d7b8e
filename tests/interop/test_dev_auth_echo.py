"""laravel-echo and pusher-js authorised by ``quvel serve --dev-auth``, as a Vue app would be before its
Laravel back end exists: Echo's ``private()`` and ``join()`` (``here``/``joining``/``leaving``) sign at the
server's own ``/broadcasting/auth`` with Echo's ``bearerToken`` option, and an event sent by ``quvel
trigger`` reaches Echo's ``listen()`` under Laravel's ``App\\Events`` namespace."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pusher
import pytest

from quvel_ws.server import DEFAULT_SECRET
from tests.interop.conftest import NodePeer
from tests.peers import ROOT, read_json_line

pytestmark = [pytest.mark.peers, pytest.mark.slow]

Peer = Callable[[], NodePeer]


@pytest.fixture
def dev_serve() -> Iterator[dict[str, Any]]:
    """``quvel serve --port 0 --dev-auth`` in its own process; yields its start-up JSON line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--dev-auth"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        yield read_json_line(proc, timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def trigger(port: int, channel: str, event: str, data: dict[str, Any]) -> None:
    sent = subprocess.run(
        [sys.executable, "-m", "quvel", "trigger", "--port", str(port), channel, event, json.dumps(data)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr


def echo_peer(node_peer: Peer, info: dict[str, Any], user: str | None) -> NodePeer:
    peer = node_peer()
    options = {"bearerToken": user} if user is not None else {}
    peer.connect(
        info["port"], lib="echo", key=info["key"], authEndpoint=info["auth_endpoint"], options=options
    )
    return peer


def test_echo_private_channel_and_a_quvel_trigger(dev_serve: dict[str, Any], node_peer: Peer) -> None:
    js = echo_peer(node_peer, dev_serve, user="7")
    js.send("echo_listen", kind="private", channel="orders.7", event="OrderShipped")
    js.expect("subscribed", channel="orders.7")

    trigger(dev_serve["port"], "private-orders.7", "App\\Events\\OrderShipped", {"order": 42})

    got = js.expect("echo_event", channel="orders.7")
    assert got["event"] == "OrderShipped"
    assert got["data"] == {"order": 42}


def test_echo_join_here_joining_leaving_as_the_bearer_users(
    dev_serve: dict[str, Any], node_peer: Peer
) -> None:
    ann = echo_peer(node_peer, dev_serve, user="7")
    ann.send("echo_join", channel="room.1")
    assert ann.expect("here", channel="room.1")["users"] == [{"name": "User 7"}]

    guest = echo_peer(node_peer, dev_serve, user=None)  # no token: user 1
    guest.send("echo_join", channel="room.1")
    here = guest.expect("here", channel="room.1")["users"]
    assert sorted(u["name"] for u in here) == ["User 1", "User 7"]
    assert ann.expect("joining", channel="room.1")["user"] == {"name": "User 1"}

    guest.send("echo_leave", channel="presence-room.1")
    assert ann.expect("leaving", channel="room.1")["user"] == {"name": "User 1"}

    ann.send("echo_listen", kind="join", channel="room.1", event=".moved")
    trigger(dev_serve["port"], "presence-room.1", "moved", {"to": "room.2"})
    assert ann.expect("echo_event", channel="room.1", event=".moved")["data"] == {"to": "room.2"}


def test_pusher_js_presence_ids_and_user_sign_in(dev_serve: dict[str, Any], node_peer: Peer) -> None:
    """pusher-js's own auth options: the member id is Laravel's int identifier, and sign-in works."""
    js = node_peer()
    auth = dev_serve["auth_endpoint"]
    js.connect(
        dev_serve["port"],
        key=dev_serve["key"],
        authEndpoint=auth,
        userAuthEndpoint=auth.replace("/auth", "/user-auth"),
        headers={"Authorization": "Bearer 12"},
    )
    js.send("subscribe", channel="presence-board")
    joined = js.expect("subscribed", channel="presence-board")
    assert joined["me"] == {"id": 12, "info": {"name": "User 12"}}
    assert joined["count"] == 1

    js.send("subscribe", channel="private-App.Models.User.12")
    js.expect("subscribed", channel="private-App.Models.User.12")
    trigger(dev_serve["port"], "private-App.Models.User.12", "ping", {"n": 1})
    assert js.expect("event", channel="private-App.Models.User.12", event="ping")["data"] == {"n": 1}

    js.send("signin")
    api = pusher.Pusher(
        dev_serve["app_id"],
        dev_serve["key"],
        DEFAULT_SECRET,
        host="127.0.0.1",
        port=dev_serve["port"],
        ssl=False,
    )
    for _ in range(50):  # pusher-js joins #server-to-user-12 silently after pusher:signin_success
        api.send_to_user("12", "Notice", {"text": "hi"})
        with contextlib.suppress(TimeoutError):
            assert js.expect("user_event", event="Notice", timeout=0.2)["data"] == {"text": "hi"}
            break
    else:
        raise AssertionError("the signed-in pusher-js never got its user event")
