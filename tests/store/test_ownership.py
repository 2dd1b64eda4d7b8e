"""Issue 10 case 4: what a store's actions and an ``app.scope()`` open through ``container.ws`` belongs to
them and ends with them (the store's ``dispose()``, the scope's ``dispose()``), against the embedded
server, which tells us when the channel is really left."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import ServiceContainer, Store, StoreDisposedError, action, create_app, use_websockets
from quvel_ws import Subscription
from quvel_ws.server import AppConfig, PusherServer
from tests.ws.helpers import Collector, until


class FeedState(BaseModel):
    updates: list[Any] = []


class Feed(Store[FeedState]):
    id = "feed"
    sub: Subscription | None = None

    @action
    def add(self, data: Any) -> None:
        self.patch(lambda s: s.updates.append(data))

    @action
    async def follow(self, channel: str) -> None:
        # the seed's own style: keep the handle on the store
        self.sub = await self.container.ws.subscribe(channel, event=".NewUpdate", callback=self.add)

    @action
    def follow_observable(self, channel: str) -> None:
        self.container.ws.channel(channel).listen(".NewUpdate").subscribe(on_next=self.add)


async def _quiet(server: PusherServer, channel: str) -> None:
    """One more event goes out on ``channel`` and has had time to arrive (nobody should get it)."""
    await server.trigger(channel, "NewUpdate", {"n": "late"})
    await asyncio.sleep(0.2)


@pytest.fixture
async def server() -> Any:
    async with PusherServer(apps=[AppConfig()], port=0) as running:
        yield running


async def test_what_an_action_subscribes_ends_with_the_store(
    server: PusherServer, caplog: pytest.LogCaptureFixture
) -> None:
    container = ServiceContainer(config={"ws_url": server.ws_url})
    app = create_app(container)
    try:
        feed = app.use(Feed)
        await feed.follow("news")
        assert feed.sub is not None
        await feed.sub.ready
        await server.trigger("news", "NewUpdate", {"n": 1})
        await until(lambda: feed.state.updates == [{"n": 1}])
        with caplog.at_level(logging.ERROR):
            feed.dispose()
            await until(lambda: "news" not in server.channels())  # the server saw the unsubscribe
            assert not feed.sub.active
            await _quiet(server, "news")
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        await app.aclose()
        await container.shutdown()


async def test_channel_observables_subscribed_in_an_action_end_with_the_store(server: PusherServer) -> None:
    container = ServiceContainer(config={"ws_url": server.ws_url})
    app = create_app(container)
    try:
        feed = app.use(Feed)
        feed.follow_observable("sport")
        ready = Collector(container.ws.channel("sport").subscribed)
        await ready.first()
        ready.dispose()
        await server.trigger("sport", "NewUpdate", {"n": 1})
        await until(lambda: feed.state.updates == [{"n": 1}])
        feed.dispose()
        await until(lambda: "sport" not in server.channels())
    finally:
        await app.aclose()
        await container.shutdown()


async def test_what_a_scope_opens_ends_with_the_scope(server: PusherServer) -> None:
    container = ServiceContainer(config={"ws_url": server.ws_url})
    app = create_app(container)
    try:
        ws = container.ws
        scope = app.scope()
        with scope:
            sub = await ws.subscribe("weather", event="Rain", callback=lambda _: None)
            room = ws.channel("lobby")
            lobby = room.listen(".Hello").subscribe(on_next=lambda _: None)
        outside = await ws.subscribe("weather")  # outside the scope: not the scope's
        await sub.ready
        await until(lambda: {"weather", "lobby"} <= set(server.channels()))
        scope.dispose()
        assert not sub.active
        await until(lambda: "lobby" not in server.channels())
        assert "weather" in server.channels()  # `outside` still holds it
        outside.unsubscribe()
        await until(lambda: "weather" not in server.channels())
        lobby.dispose()  # already ended by the scope: a no-op
    finally:
        await app.aclose()
        await container.shutdown()


async def test_outside_any_owner_nothing_is_adopted(server: PusherServer) -> None:
    """Code outside stores and scopes keeps what it opens until it lets go (and a second app on the same
    container does not take it either)."""
    container = ServiceContainer(config={"ws_url": server.ws_url})
    first, second = create_app(container), create_app(container)
    try:
        feed = first.use(Feed)
        sub = await container.ws.subscribe("news")
        await sub.ready
        feed.dispose()
        second.dispose()
        await asyncio.sleep(0.1)
        assert sub.active
        assert "news" in server.channels()
        sub.unsubscribe()
        await until(lambda: "news" not in server.channels())
    finally:
        await first.aclose()
        await container.shutdown()


class Room(Store[FeedState]):
    id = "room"

    def on_init(self) -> None:
        self.sockets = use_websockets(self)

    @action
    def add(self, data: Any) -> None:
        self.patch(lambda s: s.updates.append(data))


async def test_use_websockets_subscriptions_end_with_their_owner(server: PusherServer) -> None:
    """The seed's ``useWebSockets()``: ``subscribe``/``unsubscribe``/``unsubscribe_all``, released with
    the store or scope that owns them, even when ``subscribe`` ran outside the owner's own code."""
    container = ServiceContainer(config={"ws_url": server.ws_url})
    app = create_app(container)
    try:
        room = app.use(Room)
        subscribe, unsubscribe, _ = room.sockets
        a = await subscribe("a", event=".NewUpdate", callback=room.add)  # plain code, not an action
        b = await subscribe(channel_name="b", type="public", event=".NewUpdate", callback=room.add)
        await a.ready
        await b.ready
        unsubscribe(b)
        await until(lambda: "b" not in server.channels())
        await server.trigger("a", "NewUpdate", {"n": 1})
        await until(lambda: room.state.updates == [{"n": 1}])
        room.dispose()
        assert not a.active
        await until(lambda: "a" not in server.channels())
        with pytest.raises(StoreDisposedError):
            await subscribe("c")

        scope = app.scope()
        scoped = use_websockets(scope)
        c = await scoped.subscribe("c")
        d = await scoped.subscribe("d")
        await until(lambda: {"c", "d"} <= set(server.channels()))
        scoped.unsubscribe_all()
        await until(lambda: not {"c", "d"} & set(server.channels()))
        assert not c.active
        assert not d.active
        e = await scoped.subscribe("e")
        await e.ready
        scope.dispose()
        await until(lambda: "e" not in server.channels())
        with pytest.raises(StoreDisposedError):
            use_websockets(scope)
    finally:
        await app.aclose()
        await container.shutdown()
