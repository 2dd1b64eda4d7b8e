"""Server rendering: one app per request, JSON from ``app.snapshot()``, a client that hydrates, and a
request-side WebSocket service that never opens a socket (proved with a listener counting connections)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from examples.server_rendering import render_dashboard
from quvel.demo import DemoStack, demo_stack, wait_until
from quvel.demo.notifications import NotificationStore


@pytest.fixture
async def stack() -> AsyncIterator[DemoStack]:
    async with demo_stack() as running:
        yield running


@pytest.fixture
async def counting_listener() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP listener that records every connection made to it (and closes it)."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/app/app-key", accepted
    finally:
        server.close()
        await server.wait_closed()


async def test_request_apps_never_open_a_socket_and_never_share_state(
    stack: DemoStack, counting_listener: tuple[str, list[int]]
) -> None:
    ws_url, accepted = counting_listener
    for user_id, count in ((1, 2), (2, 1), (3, 3)):
        for n in range(count):
            await stack.backend.notify(
                user_id, "App\\Notifications\\TaskAssigned", {"title": f"{user_id}/{n}"}
            )
    settings = {"api_url": stack.backend.url, "ws_url": ws_url, "tenant_id": "acme"}
    users = list(stack.backend.users.values())
    pages = await asyncio.gather(*(render_dashboard(settings, u.token, u.id) for u in users * 3))
    await asyncio.sleep(0.2)  # give any (wrong) background connect attempt the time to reach the listener
    assert accepted == []
    for user, page in zip(users * 3, pages, strict=True):
        data = json.loads(page)
        held = {n["id"] for n in data["state"]["notifications"]["notifications"]}
        assert held == {r.id for r in stack.backend.sent_to(user.id)}
        assert data["ws_state"] == "initialized"
        assert data["state"]["notifications"]["sync"]["loads"] == 1  # the SyncInfo travels with the state
        # loaded, but a server render never follows the channel: not kept in sync, so not "synced"
        assert data["state"]["notifications"]["sync"]["status"] == "stale"


async def test_client_hydrates_from_the_page_then_goes_live(stack: DemoStack) -> None:
    first = await stack.backend.notify(1, "App\\Notifications\\TaskAssigned", {"title": "rendered"})
    settings = {"api_url": stack.backend.url, "ws_url": stack.ws_url, "tenant_id": "acme"}
    page = json.loads(await render_dashboard(settings, "token-ann", 1))
    browser = await stack.client("Ann")
    browser.app.register(NotificationStore)  # hydrate needs to know the class behind each store id
    browser.app.hydrate(page["state"])
    notes = browser.app.use(NotificationStore)
    assert [n.id for n in notes.state.notifications] == [first.id]
    await notes.subscribe_to_socket(1)
    live = await stack.backend.notify(1, "App\\Notifications\\TaskAssigned", {"title": "live"})
    state = await wait_until(notes, lambda s: len(s.notifications) == 2)
    assert state.notifications[0].id == live.id


async def test_bad_page_state_is_refused_and_changes_nothing(stack: DemoStack) -> None:
    browser = await stack.client("Ann")
    notes = browser.app.use(NotificationStore)
    before = notes.state
    with pytest.raises(ValueError, match="notifications"):
        browser.app.hydrate({"notifications": {"notifications": [{"id": 1}]}})
    assert notes.state == before
