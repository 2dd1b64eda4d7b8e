"""A store action folds a channel into state; disposing of the store releases the channel (on Soketi)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from quvel_store import ServiceContainer, Store, action, create_app
from quvel_ws import WebSocketService
from tests.peers import SoketiServer
from tests.ws.conftest import sdk_for
from tests.ws.helpers import Collector, in_thread

pytestmark = pytest.mark.peers


class Order(BaseModel):
    id: int
    status: str


class OrdersState(BaseModel):
    orders: list[Order] = []


class OrdersStore(Store[OrdersState]):
    id = "orders"

    @action
    def watch(self) -> None:
        self.connect(self.container.ws.channel("orders").listen(".OrderShipped", Order), self.received)

    @action
    def received(self, order: Order) -> None:
        self.patch(lambda s: s.orders.append(order))


async def occupied(server: SoketiServer, channel: str) -> bool:
    return bool((await in_thread(sdk_for(server).channel_info, channel))["occupied"])


async def test_store_folds_a_channel_and_releases_it(soketi: SoketiServer) -> None:
    container = ServiceContainer(ws=WebSocketService(soketi.ws_url))
    app = create_app(container, stores=[OrdersStore])
    store = app.use(OrdersStore)
    ready = asyncio.Event()
    probe = container.ws.channel("orders").subscribed.subscribe(lambda _: ready.set())
    store.watch()
    await asyncio.wait_for(ready.wait(), 10)
    probe.dispose()
    store_errors = Collector(store.errors)
    channel_errors = Collector(container.ws.channel("orders").errors)
    sdk = sdk_for(soketi)
    await in_thread(sdk.trigger, "orders", "OrderShipped", {"id": 1, "status": "shipped"})
    await in_thread(sdk.trigger, "orders", "OrderShipped", {"id": "bad"})  # invalid: skipped, reported
    await in_thread(sdk.trigger, "orders", "OrderShipped", {"id": 2, "status": "shipped"})

    states = Collector(store.observe())
    await states.wait(lambda items: bool(items) and len(items[-1].orders) >= 2)
    assert [o.id for o in store.state.orders] == [1, 2]
    assert [type(e).__name__ for e in await channel_errors.count(1)] == ["PayloadValidationError"]
    channel_errors.dispose()
    assert await occupied(soketi, "orders")  # the store's connection still holds the channel
    store.dispose()

    async def released() -> None:
        while await occupied(soketi, "orders"):  # noqa: ASYNC110 - polling Soketi's HTTP API
            await asyncio.sleep(0.05)

    await asyncio.wait_for(released(), 10)
    ws_state = Collector(container.ws.state)
    await container.shutdown()
    assert ws_state.completed  # the container shut the WebSocket service down
    assert store_errors.items == []  # the invalid payload was the channel's error, not the store's
