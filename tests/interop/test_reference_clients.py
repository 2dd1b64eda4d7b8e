"""pusher-js 8.6.0 and laravel-echo 2.5.0 (the reference clients) against the embedded server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pusher
import pytest
from websockets.sync.client import connect

from quvel_ws import EchoEvent, WebSocketService
from quvel_ws.auth import AuthEndpoint, encrypt_event
from quvel_ws.server import AppConfig, PusherServer, ServerThread
from tests.interop.conftest import MASTER_KEY, NodePeer, bearer
from tests.peers import require_node_package, run_node
from tests.ws.helpers import Collector

pytestmark = pytest.mark.peers

Peer = Callable[[], NodePeer]


def sdk(server: ServerThread, **kwargs: object) -> pusher.Pusher:
    return pusher.Pusher(
        app_id="1",
        key="app-key",
        secret="app-secret",
        host="127.0.0.1",
        port=server.port,
        ssl=False,
        **kwargs,
    )


def test_public_channel_event_through_the_http_api(server: ServerThread, node_peer: Peer) -> None:
    js = node_peer()
    js.connect(server.port)
    js.send("subscribe", channel="news")
    js.expect("subscribed", channel="news")
    assert sdk(server).trigger("news", "NewUpdate", {"x": 1}) == {"ok": True}
    got = js.expect("event", channel="news", event="NewUpdate")
    assert got["data"] == {"x": 1}


def test_echo_listens_on_a_public_channel(server: ServerThread, node_peer: Peer) -> None:
    js = node_peer()
    js.connect(server.port, lib="echo")
    js.send("echo_listen", kind="channel", channel="orders", event=".OrderShipped")
    js.expect("subscribed", channel="orders")
    server.trigger("orders", "OrderShipped", {"id": 7})
    assert js.expect("echo_event", channel="orders")["data"] == {"id": 7}


def test_private_channel_with_the_auth_endpoint(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    js = node_peer()
    js.connect(server.port, authEndpoint=auth_endpoint.url, **bearer("token-ann"))
    js.send("subscribe", channel="private-orders.1")
    js.expect("subscribed", channel="private-orders.1")
    sdk(server).trigger("private-orders.1", "Paid", {"amount": 3})
    assert js.expect("event", channel="private-orders.1", event="Paid")["data"] == {"amount": 3}
    assert auth_endpoint.requests[-1][2] == 200


def test_private_channel_refused_by_the_auth_endpoint(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    js = node_peer()
    js.connect(server.port, authEndpoint=auth_endpoint.url)  # no token: presence needs a user
    js.send("subscribe", channel="presence-room")
    err = js.expect("subscription_error", channel="presence-room")
    assert err["data"]["status"] == 403
    assert server.channels() == {}


def test_presence_here_joining_leaving_with_echo(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    ann, bob = node_peer(), node_peer()
    ann.connect(server.port, lib="echo", authEndpoint=auth_endpoint.url, **bearer("token-ann"))
    ann.send("echo_join", channel="room.1")
    assert ann.expect("here", channel="room.1")["users"] == [{"id": 1, "name": "Ann"}]

    bob.connect(server.port, lib="echo", authEndpoint=auth_endpoint.url, **bearer("token-bob"))
    bob.send("echo_join", channel="room.1")
    here = bob.expect("here", channel="room.1")["users"]
    assert sorted(u["name"] for u in here) == ["Ann", "Bob"]
    assert ann.expect("joining", channel="room.1")["user"] == {"id": 2, "name": "Bob"}
    assert server.presence_members("presence-room.1") == {
        "1": {"id": 1, "name": "Ann"},
        "2": {"id": 2, "name": "Bob"},
    }

    bob.send("disconnect")
    assert ann.expect("leaving", channel="room.1")["user"] == {"id": 2, "name": "Bob"}
    assert list(server.presence_members("presence-room.1")) == ["1"]


def test_second_tab_of_the_same_user_is_not_a_new_member(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    watcher, tab1, tab2 = node_peer(), node_peer(), node_peer()
    for peer, token in ((watcher, "token-bob"), (tab1, "token-ann"), (tab2, "token-ann")):
        peer.connect(server.port, lib="echo", authEndpoint=auth_endpoint.url, **bearer(token))
    watcher.send("echo_join", channel="room.2")
    watcher.expect("here")
    tab1.send("echo_join", channel="room.2")
    tab1.expect("here")
    assert watcher.expect("joining")["user"]["name"] == "Ann"
    tab2.send("echo_join", channel="room.2")
    assert len(tab2.expect("here")["users"]) == 2
    tab1.send("disconnect")  # Ann still has a tab open: no leaving
    tab2.send("echo_leave", channel="room.2")
    assert watcher.expect("leaving")["user"]["name"] == "Ann"
    watcher.drain()
    assert watcher.seen("joining") == []  # tab2 never produced a second joining


def test_encrypted_channel_is_decrypted_by_pusher_js(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    js = node_peer()
    js.connect(server.port, lib="echo", authEndpoint=auth_endpoint.url, **bearer("token-ann"))
    js.send("echo_listen", kind="encryptedPrivate", channel="vault.1", event=".Secret")
    js.expect("subscribed", channel="vault.1")
    # Through the official SDK (which encrypts itself) and through our helper: both decrypt.
    encrypting = sdk(server, encryption_master_key_base64=MASTER_KEY)
    encrypting.trigger("private-encrypted-vault.1", "Secret", {"n": 1})
    assert js.expect("echo_event", channel="vault.1")["data"] == {"n": 1}
    server.trigger(
        "private-encrypted-vault.1",
        "Secret",
        encrypt_event("private-encrypted-vault.1", {"n": 2}, MASTER_KEY),
    )
    assert js.expect("echo_event", channel="vault.1")["data"] == {"n": 2}


def test_whisper_between_two_echo_clients(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    ann, bob = node_peer(), node_peer()
    for peer, token in ((ann, "token-ann"), (bob, "token-bob")):
        peer.connect(server.port, lib="echo", authEndpoint=auth_endpoint.url, **bearer(token))
        peer.send("echo_listen", kind="private", channel="chat.1", event=".noop")
        peer.expect("subscribed", channel="chat.1")
        peer.send("echo_listen_whisper", kind="private", channel="chat.1", event="typing")
    bob.send("echo_whisper", kind="private", channel="chat.1", event="typing", data={"name": "Bob"})
    assert ann.expect("whisper", channel="chat.1")["data"] == {"name": "Bob"}
    bob.drain()
    assert bob.seen("whisper") == []  # never echoed to the sender


def test_whisper_on_presence_carries_the_user_id(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    ann, bob = node_peer(), node_peer()
    for peer, token in ((ann, "token-ann"), (bob, "token-bob")):
        peer.connect(server.port, authEndpoint=auth_endpoint.url, **bearer(token))
        peer.send("subscribe", channel="presence-game")
        peer.expect("subscribed", channel="presence-game")
    ann.send("bind", channel="presence-game", event="client-move")
    bob.send("trigger", channel="presence-game", event="client-move", data={"x": 1})
    assert bob.expect("triggered")["ok"] is True
    got = ann.expect("bound_event", channel="presence-game", event="client-move")
    assert got["data"] == {"x": 1}
    assert str(got["user_id"]) == "2"


def test_event_excluded_by_socket_id(server: ServerThread, node_peer: Peer) -> None:
    a, b = node_peer(), node_peer()
    for peer in (a, b):
        peer.connect(server.port)
        peer.send("subscribe", channel="feed")
        peer.expect("subscribed", channel="feed")
    client = sdk(server)
    client.trigger("feed", "First", {"n": 1}, socket_id=a.socket_id())
    client.trigger("feed", "Second", {"n": 2})
    assert b.expect("event", event="First")["data"] == {"n": 1}
    assert b.expect("event", event="Second")["data"] == {"n": 2}
    # Events arrive in order, so if ``a`` had received First it would be in its backlog by now.
    a.expect("event", event="Second")
    assert a.seen("event", event="First") == []


def test_reconnects_and_resubscribes_after_a_server_restart(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    js = node_peer()
    js.connect(server.port, authEndpoint=auth_endpoint.url, **bearer("token-ann"))
    js.send("subscribe", channel="private-inbox")
    js.expect("subscribed", channel="private-inbox")
    first_id = js.socket_id()
    server.restart()  # closes with 4200: pusher-js reconnects at once
    js.expect("state", current="connecting")
    js.expect("state", current="connected")
    js.expect("subscribed", channel="private-inbox")  # re-authorised with the new socket id
    assert js.socket_id() != first_id
    server.trigger("private-inbox", "Mail", {"n": 1})
    assert js.expect("event", event="Mail")["data"] == {"n": 1}
    assert sum(1 for r in auth_endpoint.requests if r[1].get("channel_name") == "private-inbox") == 2


def test_signin_user_channel_and_terminate(
    server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer
) -> None:
    js = node_peer()
    js.connect(server.port, userAuthEndpoint=auth_endpoint.user_auth_url, **bearer("token-ann"))
    js.send("signin")
    client = sdk(server)
    # pusher-js subscribes #server-to-user-1 silently after pusher:signin_success: wait for the server.
    _wait(lambda: "#server-to-user-1" in server.channels())
    client.send_to_user("1", "Notice", {"text": "hi"})
    assert js.expect("user_event", event="Notice")["data"] == {"text": "hi"}
    client.terminate_user_connections("1")  # the SDK's path without /apps/{id}: accepted too
    js.expect("state", current="disconnected")


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def test_unknown_key_is_refused_and_pusher_js_stops(server: ServerThread, node_peer: Peer) -> None:
    js = node_peer()
    js.connect(server.port, key="no-such-key", wait=False)
    error = js.expect("error")
    assert error["error"]["error"]["data"]["code"] == 4001
    js.expect("state", current="disconnected")  # 4001: pusher-js does not retry
    js.drain(quiet=1.5)
    assert js.seen("state", current="connecting") == []
    assert server.connection_count() == 0


def test_cache_channel_with_pusher_js(server: ServerThread, node_peer: Peer) -> None:
    js = node_peer()
    js.connect(server.port)
    js.send("subscribe", channel="cache-prices")
    js.expect("subscribed", channel="cache-prices")
    js.expect("event", channel="cache-prices", event="pusher:cache_miss")
    server.trigger("cache-prices", "Price", {"p": 1})
    js.expect("event", event="Price")
    late = node_peer()
    late.connect(server.port)
    late.send("subscribe", channel="cache-prices")
    late.expect("subscribed", channel="cache-prices")
    assert late.expect("event", channel="cache-prices", event="Price")["data"] == {"p": 1}


def test_dropped_connection_is_recovered_by_pusher_js(server: ServerThread, node_peer: Peer) -> None:
    js = node_peer()
    js.connect(server.port)
    js.send("subscribe", channel="news")
    js.expect("subscribed", channel="news")
    server.restart(abort=True)  # no close frame: 1006, as after a crash
    js.expect("state", current="connecting")
    js.expect("state", current="connected", timeout=20)
    js.expect("subscribed", channel="news")
    server.trigger("news", "Back", {"ok": True})
    assert js.expect("event", event="Back")["data"] == {"ok": True}


def test_official_node_sdk(server: ServerThread) -> None:

    require_node_package("pusher")
    script = Path(__file__).parent / "node" / "sdk.mjs"
    with connect(server.ws_url) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "sdk-news"}}))
        json.loads(ws.recv(timeout=5))
        done = run_node(script, str(server.port))
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        received = [json.loads(ws.recv(timeout=5)) for _ in range(3)]
    assert [m["event"] for m in received] == ["FromNode", "Many", "Batched"]
    assert json.loads(received[0]["data"]) == {"n": 1}
    assert result["trigger"] == {"status": 200, "body": {"ok": True}}
    assert result["triggerMany"]["body"]["channels"] == {
        "sdk-news": {"subscription_count": 1},
        "sdk-other": {"subscription_count": 0},
    }
    assert result["batch"]["status"] == 200
    assert result["channels"]["body"] == {
        "channels": {"sdk-news": {"subscription_count": 1, "occupied": True}}
    }
    assert result["channel"]["body"] == {"occupied": True, "subscription_count": 1}
    assert result["users"] == {"status": 200, "body": {"users": []}}
    assert result["terminate"] == {"status": 200, "body": {"ok": True}}

    refused = json.loads(run_node(script, str(server.port), "wrong-secret").stdout)
    assert {call["status"] for call in refused.values()} == {401}


def test_watchlist_with_pusher_js(server: ServerThread, auth_endpoint: AuthEndpoint, node_peer: Peer) -> None:
    ann, cat = node_peer(), node_peer()
    ann.connect(server.port, userAuthEndpoint=auth_endpoint.user_auth_url, **bearer("token-ann"))
    ann.send("signin")
    _wait(lambda: "#server-to-user-1" in server.channels())
    cat.connect(server.port, userAuthEndpoint=auth_endpoint.user_auth_url, **bearer("token-cat"))
    cat.send("signin")  # Cat watches users 1 and 2: Ann is online
    assert cat.expect("watchlist", name="online")["user_ids"] == ["1"]
    ann.send("disconnect")
    assert cat.expect("watchlist", name="offline")["user_ids"] == ["1"]


def test_subscription_count_with_pusher_js(node_peer: Peer) -> None:
    app = AppConfig(subscription_count_events=True, subscription_count_interval=0.05)
    with PusherServer(apps=[app]).start_in_thread() as counted:
        a, b = node_peer(), node_peer()
        a.connect(counted.port)
        a.send("subscribe", channel="room")
        assert a.expect("event", event="pusher:subscription_count")["data"] == {"subscription_count": 1}
        b.connect(counted.port)
        b.send("subscribe", channel="room")
        assert a.expect("event", event="pusher:subscription_count")["data"] == {"subscription_count": 2}


def test_heartbeat_with_pusher_js_keeps_the_connection(node_peer: Peer) -> None:
    # activity_timeout 1 s: pusher-js pings the server after 1 s of silence and answers its pings.
    with PusherServer(activity_timeout=1, pong_timeout=1).start_in_thread() as quick:
        js = node_peer()
        js.connect(quick.port)
        first = js.socket_id()
        js.drain(quiet=3.5)  # several heartbeat periods with no other traffic
        assert js.seen("state") == []  # never disconnected
        assert js.socket_id() == first
        assert quick.connection_count() == 1


def test_listen_to_all_names_events_as_laravel_echo_does(server: ServerThread, node_peer: Peer) -> None:
    """Echo's listenToAll and quvel_ws's listen_to_all() on one channel: the same names for the same
    wire events (namespace stripped inside App.Events, a leading '.' outside it)."""
    js = node_peer()
    js.connect(server.port, lib="echo")
    js.send("echo_listen_to_all", channel="feed")
    js.expect("subscribed", channel="feed")
    wire = ["App\\Events\\Chat\\Sent", "order.shipped", "App\\Events\\NewMessage", "Other\\Thing"]

    async def quvel_side() -> list[EchoEvent]:
        ws = WebSocketService(server.ws_url)
        try:
            events = Collector(ws.channel("feed").listen_to_all())
            await Collector(ws.channel("feed").subscribed).first()
            for name in wire:
                await asyncio.to_thread(server.trigger, "feed", name, {"wire": name})
            return await events.count(len(wire))
        finally:
            await ws.shutdown()

    ours = asyncio.run(quvel_side())
    theirs = [js.expect("echo_all", channel="feed") for _ in wire]
    assert [e.name for e in ours] == [t["event"] for t in theirs]
    assert [e.name for e in ours] == ["Chat\\Sent", ".order.shipped", "NewMessage", ".Other\\Thing"]
    assert [e.data for e in ours] == [t["data"] for t in theirs] == [{"wire": w} for w in wire]
    assert [e.event for e in ours] == wire
