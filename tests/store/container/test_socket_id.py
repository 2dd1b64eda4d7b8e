"""container.api sends X-Socket-ID once the socket is connected (Echo's interceptor), so the back end's
``broadcast(...)->toOthers()`` leaves the sender out. Real server, real demo back end, real clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from quvel.demo import DemoBackend, PusherCredentials
from quvel_store.container import ApiService, Config, ServiceContainer
from quvel_store.errors import ApiTransportError
from quvel_ws.server import AppConfig, PusherServer

ROOM = "room.7"
EVENT = "NewMessage"  # App\Events\NewMessage


@pytest.fixture
async def stack() -> AsyncIterator[tuple[PusherServer, DemoBackend]]:
    async with PusherServer(apps=[AppConfig()]) as server:
        credentials = PusherCredentials(server.http_url, "1", "app-key", "app-secret")
        async with DemoBackend(credentials, seed=1) as backend:
            yield server, backend


def _container(server: PusherServer, backend: DemoBackend, token: str) -> ServiceContainer:
    container = ServiceContainer(Config({"api_url": backend.url, "ws_url": server.ws_url}, env=False))
    container.api.set_token(token)
    return container


async def _joined(container: ServiceContainer, received: list[Any]) -> None:
    channel = container.ws.join(ROOM)
    subscribed = asyncio.get_running_loop().create_future()
    channel.subscribed.subscribe(lambda _: subscribed.done() or subscribed.set_result(None))
    channel.listen(EVENT).subscribe(received.append)
    await container.ws.connect(timeout=5)
    await asyncio.wait_for(subscribed, 5)


async def test_the_sender_is_left_out_of_its_own_broadcast(stack: tuple[PusherServer, DemoBackend]) -> None:
    server, backend = stack
    ann_got: list[Any] = []
    ben_got: list[Any] = []
    async with (
        _container(server, backend, "token-ann") as ann,
        _container(server, backend, "token-ben") as ben,
    ):
        await _joined(ann, ann_got)
        await _joined(ben, ben_got)
        # Ben posts through his container's API: the request carries his socket id by itself.
        await ben.api.post(f"/api/rooms/{ROOM.split('.')[1]}/messages", {"text": "from ben"})
        # Then Ann posts: Ben gets hers, so had his own been sent to him it would have arrived first.
        await ann.api.post(f"/api/rooms/{ROOM.split('.')[1]}/messages", {"text": "from ann"})
        for _ in range(200):
            if len(ann_got) >= 1 and len(ben_got) >= 1:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    assert [m["text"] for m in ben_got] == ["from ann"]
    assert [m["text"] for m in ann_got] == ["from ben"]


async def test_x_socket_id_follows_the_connection_and_stays_on_the_apis_origin(
    stack: tuple[PusherServer, DemoBackend],
) -> None:
    server, backend = stack
    seen: list[httpx.Headers] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers)

    async with _container(server, backend, "token-ann") as container:
        container.api.client.event_hooks["request"].append(record)
        await container.api.get("/api/user")
        assert "x-socket-id" not in seen[-1]  # not connected yet: nothing to exclude
        await container.ws.connect(timeout=5)
        socket_id = container.ws.socket_id
        assert socket_id
        await container.api.get("/api/user")
        assert seen[-1]["x-socket-id"] == socket_id
        await container.api.get("/api/user", headers={"X-Socket-ID": "9.9"})
        assert seen[-1]["x-socket-id"] == "9.9"  # a header the caller gave wins
        with pytest.raises(ApiTransportError):  # nothing listens there
            await container.api.get("http://127.0.0.1:9/elsewhere")
        assert "x-socket-id" not in seen[-1]  # another origin never gets it


async def test_a_replaced_api_service_gets_the_header_too(stack: tuple[PusherServer, DemoBackend]) -> None:
    server, backend = stack
    seen: list[httpx.Headers] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers)

    container = ServiceContainer(Config({"ws_url": server.ws_url}, env=False))
    async with container:
        container.api = ApiService(backend.url, token="token-ann")
        container.api.client.event_hooks["request"].append(record)
        await container.ws.connect(timeout=5)
        await container.api.get("/api/user")
        assert seen[-1]["x-socket-id"] == container.ws.socket_id
