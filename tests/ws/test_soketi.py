"""The client against Soketi, a production Pusher-protocol server, with auth signed by the official SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from quvel_ws import (
    AuthorizationError,
    ConnectionState,
    Member,
    PresenceHandlers,
    SubscriptionSucceeded,
    WebSocketService,
)
from tests.peers import SoketiServer
from tests.ws.conftest import AuthServer, sdk_for
from tests.ws.helpers import Collector, in_thread

pytestmark = pytest.mark.peers


@pytest.fixture
async def ws(soketi: SoketiServer, auth_server: AuthServer) -> AsyncIterator[WebSocketService]:
    service = WebSocketService(
        soketi.ws_url,
        auth_endpoint=auth_server.url + "/broadcasting/auth",
        user_auth_endpoint=auth_server.url + "/broadcasting/user-auth",
    )
    yield service
    await service.shutdown()


async def test_public_channel_receives_sdk_events(ws: WebSocketService, soketi: SoketiServer) -> None:
    ch = ws.channel("news")
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen(".NewUpdate"))
    await subscribed.first()
    assert ws.socket_id
    assert ws.current_state is ConnectionState.CONNECTED
    await in_thread(sdk_for(soketi).trigger, "news", "NewUpdate", {"x": 1})
    assert await got.first() == {"x": 1}


async def test_private_channel_is_authorised_by_the_endpoint(
    ws: WebSocketService, soketi: SoketiServer, auth_server: AuthServer
) -> None:
    ch = ws.channel("orders.1", type="private")
    assert ch.name == "private-orders.1"
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen("OrderShipped"))
    await subscribed.first()
    assert auth_server.socket_ids("private-orders.1") == [ws.socket_id]
    await in_thread(sdk_for(soketi).trigger, "private-orders.1", "App\\Events\\OrderShipped", {"id": 7})
    assert await got.first() == {"id": 7}


async def test_presence_members_and_subscribe_api(ws: WebSocketService, soketi: SoketiServer) -> None:
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


async def test_encrypted_channel_decrypts_sdk_events(ws: WebSocketService, soketi: SoketiServer) -> None:
    ch = ws.channel("secrets", type="encrypted")
    assert ch.name == "private-encrypted-secrets"
    subscribed = Collector(ch.subscribed)
    got = Collector(ch.listen(".Secret"))
    await subscribed.first()
    await in_thread(sdk_for(soketi).trigger, "private-encrypted-secrets", "Secret", {"pin": "1234"})
    assert await got.first() == {"pin": "1234"}


async def test_auth_403_is_a_typed_error_and_others_keep_working(
    ws: WebSocketService, soketi: SoketiServer, auth_server: AuthServer
) -> None:
    auth_server.fail["private-denied"] = 403
    errors = Collector(ws.channel("denied", type="private").errors)
    ok = Collector(ws.channel("news2").listen(".Ping"))
    ok_sub = Collector(ws.channel("news2").subscribed)
    error = await errors.first()
    assert isinstance(error, AuthorizationError)
    assert error.status == 403
    await ok_sub.first()
    await in_thread(sdk_for(soketi).trigger, "news2", "Ping", "still alive")
    assert await ok.first() == "still alive"
    assert isinstance((await Collector(ws.channel("news2").subscribed).first()), SubscriptionSucceeded)
