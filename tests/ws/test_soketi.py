"""The client against real servers, with auth signed by the official SDK: one suite run against Soketi 1.6.1
(a production Pusher-protocol server), the embedded server (``quvel_ws.server``) and a server answering
like Laravel Reverb (``tests/ws/reverb_server.py``), so a behaviour difference shows up as a failure on
one side (issue 4's conformance suite, issue 11's third server)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pusher
import pytest

from quvel_ws import (
    AuthorizationError,
    ConnectionState,
    DecryptionError,
    Member,
    PresenceHandlers,
    SubscriptionError,
    SubscriptionRefused,
    SubscriptionSucceeded,
    WebSocketService,
)
from quvel_ws.server import AppConfig, PusherServer
from tests.peers import APP_ID, APP_KEY, APP_SECRET, SoketiServer
from tests.ws.conftest import AuthServer, sdk_for
from tests.ws.helpers import Collector, in_thread, until
from tests.ws.reverb_server import ReverbLikeServer


class EmbeddedPeer:
    """The embedded server on its own thread, behind the part of ``SoketiServer``'s interface these
    tests use (addresses for the SDK, ``restart``)."""

    kind = "embedded"
    host = "127.0.0.1"

    def __init__(self) -> None:
        app = AppConfig(id=APP_ID, key=APP_KEY, secret=APP_SECRET, enable_client_events=True)
        self.thread = PusherServer(apps=[app], port=0).start_in_thread()

    @property
    def port(self) -> int:
        return self.thread.server.port

    @property
    def ws_url(self) -> str:
        return self.thread.ws_url

    def restart(self, hard: bool = True) -> None:
        """``hard``: connections drop without a close frame (1006), as when Soketi is killed."""
        self.thread.restart(abort=hard)

    def close(self) -> None:
        self.thread.close()


Peer = SoketiServer | EmbeddedPeer | ReverbLikeServer
SERVERS = [pytest.param("soketi", marks=pytest.mark.peers), "embedded", "reverb"]
SIGNIN_SERVERS = SERVERS[:2]  # Reverb does not implement pusher:signin


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """The session's Soketi, or an embedded or Reverb-like server of this test's own."""
    if request.param == "soketi":
        yield request.getfixturevalue("soketi")
        return
    if request.param == "reverb":
        reverb = ReverbLikeServer().start()
        yield reverb
        reverb.stop()
        return
    peer = EmbeddedPeer()
    yield peer
    peer.close()


@pytest.fixture(params=SERVERS)
def fresh_server(request: pytest.FixtureRequest) -> Iterator[Callable[[], Peer]]:
    """Start a server of the test's own (it may restart it): Soketi with user authentication on, or
    the embedded server (which always has it)."""
    made: list[EmbeddedPeer | ReverbLikeServer] = []
    factory: Callable[..., SoketiServer] | None = (
        request.getfixturevalue("soketi_factory") if request.param == "soketi" else None
    )

    def make() -> Peer:
        if factory is not None:
            return factory(user_authentication=True).start()
        made.append(ReverbLikeServer().start() if request.param == "reverb" else EmbeddedPeer())
        return made[-1]

    yield make
    for peer in made:
        if isinstance(peer, ReverbLikeServer):
            peer.stop()
        else:
            peer.close()


@pytest.fixture
async def ws(server: Peer, auth_server: AuthServer) -> AsyncIterator[WebSocketService]:
    service = WebSocketService(
        server.ws_url,
        auth_endpoint=auth_server.url + "/broadcasting/auth",
        user_auth_endpoint=auth_server.url + "/broadcasting/user-auth",
    )
    yield service
    await service.shutdown()


async def test_public_channel_receives_sdk_events(ws: WebSocketService, server: Peer) -> None:
    ch = ws.channel("news")
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen(".NewUpdate"))
    await subscribed.first()
    assert ws.socket_id
    assert ws.current_state is ConnectionState.CONNECTED
    await in_thread(sdk_for(server).trigger, "news", "NewUpdate", {"x": 1})
    assert await got.first() == {"x": 1}


async def test_private_channel_is_authorised_by_the_endpoint(
    ws: WebSocketService, server: Peer, auth_server: AuthServer
) -> None:
    ch = ws.channel("orders.1", type="private")
    assert ch.name == "private-orders.1"
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen("OrderShipped"))
    await subscribed.first()
    assert auth_server.socket_ids("private-orders.1") == [ws.socket_id]
    await in_thread(sdk_for(server).trigger, "private-orders.1", "App\\Events\\OrderShipped", {"id": 7})
    assert await got.first() == {"id": 7}


async def test_presence_members_and_subscribe_api(ws: WebSocketService, server: Peer) -> None:
    here: list[list[Member]] = []
    messages: list[object] = []
    sub = await ws.subscribe(
        channel_name="presence-room.7",
        type="presence",
        event="NewMessage",
        callback=messages.append,
        presence_handlers=PresenceHandlers(on_here=here.append),
    )
    members = Collector(ws.join("room.7").members)
    first = await members.wait(lambda items: bool(items and items[-1]))
    assert [m.id for m in first[-1]] == ["42"]
    assert first[-1][0].info == {"name": "Ann"}
    assert here
    assert here[0][0].id == "42"
    sub.unsubscribe()
    members.dispose()


async def test_encrypted_channel_decrypts_sdk_events(ws: WebSocketService, server: Peer) -> None:
    ch = ws.channel("secrets", type="encrypted")
    assert ch.name == "private-encrypted-secrets"
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen(".Secret"))
    await subscribed.first()
    await in_thread(sdk_for(server).trigger, "private-encrypted-secrets", "Secret", {"pin": "1234"})
    assert await got.first() == {"pin": "1234"}


async def test_auth_403_is_a_typed_error_and_others_keep_working(
    ws: WebSocketService, server: Peer, auth_server: AuthServer
) -> None:
    auth_server.fail["private-denied"] = 403
    errors = Collector(ws.channel("denied", type="private").errors)
    ok = Collector(ws.channel("news2").listen(".Ping"))
    ok_sub = Collector(ws.channel("news2").subscribed)
    error = await errors.first()
    assert isinstance(error, AuthorizationError)
    assert error.status == 403
    await ok_sub.first()
    await in_thread(sdk_for(server).trigger, "news2", "Ping", "still alive")
    assert await ok.first() == "still alive"
    assert isinstance((await Collector(ws.channel("news2").subscribed).first()), SubscriptionSucceeded)


def make_service(server: Peer, auth: AuthServer, **options: object) -> WebSocketService:
    return WebSocketService(
        server.ws_url,
        auth_endpoint=auth.url + "/broadcasting/auth",
        user_auth_endpoint=auth.url + "/broadcasting/user-auth",
        backoff_initial=0.1,
        backoff_max=0.5,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("failure", "status"), [(500, 500), ("nonjson", 200), (("sleep", 2.0), 0)])
async def test_auth_failures_carry_the_status(
    server: Peer, auth_server: AuthServer, failure: object, status: int
) -> None:
    ws = make_service(server, auth_server, auth_timeout=0.5)
    try:
        auth_server.fail["private-broken"] = failure
        errors = Collector(ws.channel("broken", "private").errors)
        fine = Collector(ws.channel("fine", "private").subscribed)
        error = await errors.first()
        assert isinstance(error, AuthorizationError)
        assert error.status == status
        await fine.first()
    finally:
        await ws.shutdown()


async def test_bad_signature_is_a_subscription_error_from_the_server(server: Peer) -> None:
    async def forged(channel: str, socket_id: str) -> dict[str, str]:
        return {"auth": "app-key:" + "0" * 64}

    ws = WebSocketService(server.ws_url, authorizer=forged)
    try:
        errors = Collector(ws.channel("forged", "private").errors)
        error = await errors.first()
        assert isinstance(error, SubscriptionError)
        if isinstance(server, ReverbLikeServer):  # a channel-less pusher:error 4009, attributed
            assert isinstance(error, SubscriptionRefused)
            assert (error.code, error.message) == (4009, "Connection is unauthorized")
        else:  # Soketi and the embedded server answer with pusher:subscription_error
            assert error.status == 401
        assert ws.current_state is ConnectionState.CONNECTED
    finally:
        await ws.shutdown()


async def test_decryption_failure_refetches_the_key_once_then_reports(
    ws: WebSocketService, server: Peer, auth_server: AuthServer
) -> None:
    ch = ws.channel("vault", type="encrypted")
    subscribed = Collector(ch.subscribed)
    errors = Collector(ch.errors)
    got = Collector(ch.listen(".Secret"))
    await subscribed.first()
    other_key = base64.b64encode(bytes(32)).decode()
    wrong = pusher.Pusher(
        app_id=APP_ID,
        key=APP_KEY,
        secret=APP_SECRET,
        host=server.host,
        port=server.port,
        ssl=False,
        encryption_master_key_base64=other_key,
    )
    await in_thread(wrong.trigger, "private-encrypted-vault", "Secret", {"pin": "0000"})
    error = await errors.first()
    assert isinstance(error, DecryptionError)
    assert len(auth_server.socket_ids("private-encrypted-vault")) == 2  # subscribe + one key refresh
    await in_thread(sdk_for(server).trigger, "private-encrypted-vault", "Secret", {"pin": "1234"})
    assert await got.first() == {"pin": "1234"}


async def test_client_events_between_two_clients_and_presence_join_leave(
    server: Peer, auth_server: AuthServer
) -> None:
    alice = make_service(server, auth_server)
    bob = make_service(server, auth_server)
    try:
        a = alice.join("team")  # join() subscribes at once, as Echo's does
        joining = Collector(a.joining)
        leaving = Collector(a.leaving)
        a_ready = Collector(a.subscribed)
        await a_ready.first()
        auth_server.user_id, auth_server.user_info = "43", {"name": "Bob"}
        b = bob.join("team")
        b_ready = Collector(b.subscribed)
        heard = Collector(a.listen_for_whisper("typing"))
        echoed = Collector(b.listen_for_whisper("typing"))
        await b_ready.first()
        member = await joining.first()
        assert (member.id, member.info) == ("43", {"name": "Bob"})
        b.whisper("typing", {"from": "bob"})
        assert await heard.first() == {"from": "bob"}
        b_ready.dispose()
        echoed.dispose()
        assert b.is_subscribed  # join() holds the channel until leave(), like Echo's
        b.leave()
        assert (await leaving.first()).id == "43"
        assert echoed.items == []
    finally:
        await alice.shutdown()
        await bob.shutdown()


async def test_last_disposal_unsubscribes_on_the_server(ws: WebSocketService, server: Peer) -> None:
    sdk = sdk_for(server)
    first = Collector(ws.channel("counted").listen(".E"))
    ready = Collector(ws.channel("counted").subscribed)
    await ready.first()
    assert (await in_thread(sdk.channel_info, "counted"))["occupied"]
    first.dispose()
    assert (await in_thread(sdk.channel_info, "counted"))["occupied"]  # `ready` still holds it
    ready.dispose()
    await until_async(lambda: in_thread(sdk.channel_info, "counted"), lambda info: not info["occupied"])


async def until_async(fetch: Any, check: Any, within: float = 10.0) -> None:
    async def loop() -> None:
        while not check(await fetch()):  # noqa: ASYNC110 - polling the server's HTTP API
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), within)


@pytest.mark.parametrize("fresh_server", SIGNIN_SERVERS, indirect=True)
async def test_user_signin_receives_user_events(
    fresh_server: Callable[[], Peer], auth_server: AuthServer
) -> None:
    server = await in_thread(fresh_server)
    ws = make_service(server, auth_server)
    try:
        user_events = Collector(ws.user_events)
        ws.signin()
        await until(lambda: ws.user_id == "42")
        assert auth_server.socket_ids() == [ws.socket_id]
        await in_thread(sdk_for(server).send_to_user, "42", "Welcome", {"hi": True})
        event = await user_events.first()
        assert event.event == "Welcome"
        assert event.data == {"hi": True}
        first_socket = ws.socket_id
        await in_thread(server.restart, True)  # signs in again on the new connection
        await until(lambda: ws.user_id == "42" and ws.socket_id not in (None, first_socket), 30)
        assert auth_server.socket_ids() == [first_socket, ws.socket_id]
        await until_async(
            lambda: in_thread(sdk_for(server).send_to_user, "42", "Again", 2),
            lambda _: len(user_events.items) >= 2,
        )
        assert user_events.items[1].event == "Again"
    finally:
        await ws.shutdown()


@pytest.mark.slow
async def test_server_restart_mid_stream(fresh_server: Callable[[], Peer], auth_server: AuthServer) -> None:
    server = await in_thread(fresh_server)
    ws = make_service(server, auth_server)
    try:
        ch = ws.channel("feed", "private")
        subscribed = Collector(ch.subscribed)
        got = Collector(ch.listen(".Tick"))
        states = Collector(ws.state)
        await subscribed.first()
        first_socket = ws.socket_id
        await in_thread(sdk_for(server).trigger, "private-feed", "Tick", {"n": 1})
        await got.first()
        await in_thread(server.restart, True)
        await subscribed.count(2, within=30)
        assert ws.socket_id != first_socket
        assert auth_server.socket_ids("private-feed") == [first_socket, ws.socket_id]  # re-authorised
        assert ConnectionState.CONNECTING in states.items
        await in_thread(sdk_for(server).trigger, "private-feed", "Tick", {"n": 2})
        assert await got.count(2) == [{"n": 1}, {"n": 2}]
    finally:
        await ws.shutdown()
