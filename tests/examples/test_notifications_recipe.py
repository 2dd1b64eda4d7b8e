"""The notification-store recipe against real servers: the embedded one and Soketi, with a restart in
the middle and not one notification lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from examples.notifications.walkthrough import walkthrough
from quvel.demo import DEMO_MASTER_KEY, DemoStack, PusherCredentials, demo_stack, next_value, wait_until
from quvel.demo.backend import NOTIFICATION_EVENT
from quvel.demo.notifications import Notification, NotificationConfigError, NotificationStore
from quvel_store.container import ServiceContainer
from quvel_store.errors import ApiNotFound, QuvelError

INVOICE = "App\\Notifications\\InvoicePaid"


@pytest.fixture
async def stack() -> AsyncIterator[DemoStack]:
    async with demo_stack(seed=3) as running:
        yield running


async def followed(stack: DemoStack, user: str = "Ann") -> NotificationStore:
    client = await stack.client(user)
    store = client.app.use(NotificationStore)
    await store.subscribe_to_socket(client.user.id)
    await wait_until(store, lambda s: s.loads >= 1)
    return store


async def test_broadcasts_fold_into_typed_state_with_getters(stack: DemoStack) -> None:
    store = await followed(stack)
    first = await stack.backend.notify(1, INVOICE, {"title": "Invoice paid", "amount": 420})
    second = await stack.backend.notify(1, "App\\Notifications\\CommentPosted", {"title": "New comment"})
    await stack.backend.notify(2, INVOICE, {"title": "for Ben only"})
    state = await wait_until(store, lambda s: len(s.notifications) == 2)
    assert [n.id for n in state.notifications] == [second.id, first.id]  # newest first
    assert isinstance(state.notifications[1], Notification)
    assert state.notifications[1].data == {"title": "Invoice paid", "amount": 420}
    assert state.notifications[1].type == INVOICE
    assert store.unread_count == 2
    assert store.latest is not None
    assert store.latest.id == second.id
    assert state.channel == "private-tenant.acme.User.1"
    assert state.received == 2


async def test_the_list_is_loaded_through_the_api_on_subscription(stack: DemoStack) -> None:
    earlier = await stack.backend.notify(1, INVOICE, {"title": "before the app started"})
    store = await followed(stack)
    assert [n.id for n in store.state.notifications] == [earlier.id]
    assert store.state.notifications[0].created_at is not None
    assert store.state.received == 0


async def test_mark_read_and_mark_all_read_go_through_the_api(stack: DemoStack) -> None:
    store = await followed(stack)
    records = [await stack.backend.notify(1, INVOICE, {"title": f"n{i}"}) for i in range(3)]
    await wait_until(store, lambda s: len(s.notifications) == 3)
    await store.mark_read(records[0].id)
    assert records[0].read_at is not None  # the back end recorded it
    assert store.unread_count == 2
    read = next(n for n in store.state.notifications if n.id == records[0].id)
    assert read.read
    await store.mark_all_read()
    assert store.unread_count == 0
    assert all(r.read_at is not None for r in records)


async def test_marking_an_unknown_notification_fails_and_changes_nothing(stack: DemoStack) -> None:
    store = await followed(stack)
    await stack.backend.notify(1, INVOICE, {"title": "x"})
    before = await wait_until(store, lambda s: len(s.notifications) == 1)
    with pytest.raises(ApiNotFound):
        await store.mark_read("not-a-notification")
    assert store.state == before


async def test_a_malformed_broadcast_is_reported_and_the_stream_goes_on(stack: DemoStack) -> None:
    store = await followed(stack)
    errors: list[Exception] = []
    store.errors.subscribe(errors.append)
    await stack.backend.broadcast(
        "private-tenant.acme.User.1", NOTIFICATION_EVENT, {"title": "no id or type"}
    )
    good = await stack.backend.notify(1, INVOICE, {"title": "fine"})
    state = await wait_until(store, lambda s: len(s.notifications) == 1)
    assert state.notifications[0].id == good.id
    assert len(errors) == 1
    assert "id" in str(errors[0])


async def test_dispose_unsubscribes_from_the_server(stack: DemoStack) -> None:
    assert stack.server is not None
    store = await followed(stack)
    channel = "private-tenant.acme.User.1"
    assert channel in stack.server.channels()
    store.dispose()
    for _ in range(100):  # the unsubscribe frame travels to the server
        if channel not in stack.server.channels():
            break
        await asyncio.sleep(0.02)
    assert channel not in stack.server.channels()
    await stack.backend.notify(1, INVOICE, {"title": "after dispose"})  # nobody is listening; no error


async def test_a_container_without_tenant_is_a_clear_error(stack: DemoStack) -> None:
    client = await stack.client("Ann", config={"tenant_id": None})
    store = client.app.use(NotificationStore)
    with pytest.raises(NotificationConfigError, match="tenant_id") as caught:
        await store.subscribe_to_socket(1)
    assert isinstance(caught.value, QuvelError)  # one hierarchy: callers catch QuvelError
    assert caught.value.key == "tenant_id"
    assert store.state.channel is None


async def test_walkthrough_on_the_embedded_server_loses_nothing(stack: DemoStack) -> None:
    server = stack.server
    assert server is not None
    lines: list[str] = []

    async def outage(while_down: Callable[[], Awaitable[Any]]) -> None:
        await server.stop()
        await while_down()
        await server.start()

    assert await walkthrough(stack, outage, log=lines.append) == 0, lines
    assert lines[-1] == "sent 5, in store 5, lost 0"
    assert stack.backend.stats.broadcast_failures == 1


@pytest.mark.peers
@pytest.mark.slow
@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "kill"])
async def test_walkthrough_on_soketi_with_a_restart_loses_nothing(soketi_factory: Any, hard: bool) -> None:
    soketi = soketi_factory().start()
    credentials = PusherCredentials(
        soketi.http_url, soketi.app_id, soketi.key, soketi.secret, DEMO_MASTER_KEY
    )
    lines: list[str] = []

    async def outage(while_down: Callable[[], Awaitable[Any]]) -> None:
        await asyncio.to_thread(soketi.stop, hard)
        await while_down()
        await asyncio.to_thread(soketi.start)

    async with demo_stack(ws_url=soketi.ws_url, credentials=credentials) as stack:
        assert await walkthrough(stack, outage, log=lines.append) == 0, lines
        assert stack.backend.stats.broadcast_failures == 1
    assert lines[-1] == "sent 5, in store 5, lost 0"


async def test_server_rendering_mode_never_subscribes(stack: DemoStack) -> None:
    """The store's action is safe on a server: the inert channel never fires ``subscribed``."""
    container = ServiceContainer(
        config={
            "api_url": stack.backend.url,
            "ws_url": stack.ws_url,
            "tenant_id": "acme",
            "server_rendering": True,
        }
    )
    async with container:
        container.api.set_token("token-ann")
        from quvel_store import create_app

        app = create_app(container=container)
        store = app.use(NotificationStore)
        await store.subscribe_to_socket(1)
        # Inert channels complete at once (EOFError); a timeout would mean a live channel that is slow.
        with pytest.raises(EOFError):
            await next_value(
                container.ws.channel("tenant.acme.User.1", type="privateNotification").subscribed, 2
            )
        assert store.state.loads == 0
        assert stack.server is not None
        assert stack.server.connection_count() == 0  # the stack's own clients are not created here
        app.dispose()


async def test_following_again_or_another_user_never_duplicates(stack: DemoStack) -> None:
    store = await followed(stack)
    await store.subscribe_to_socket(1)  # again: replaces the first subscription
    await stack.backend.notify(1, INVOICE, {"title": "once"})
    await wait_until(store, lambda s: len(s.notifications) == 1)
    await stack.backend.notify(1, INVOICE, {"title": "twice"})
    state = await wait_until(store, lambda s: len(s.notifications) == 2)
    assert state.received == 2  # each broadcast folded once


async def test_unsubscribe_from_socket_leaves_the_channel(stack: DemoStack) -> None:
    assert stack.server is not None
    store = await followed(stack)
    store.unsubscribe_from_socket()
    assert store.state.channel is None
    for _ in range(100):
        if "private-tenant.acme.User.1" not in stack.server.channels():
            break
        await asyncio.sleep(0.02)
    assert "private-tenant.acme.User.1" not in stack.server.channels()
    await store.subscribe_to_socket(1)  # and following again works
    await wait_until(store, lambda s: s.loads == 2)
    sent = await stack.backend.notify(1, INVOICE, {"title": "back"})
    await wait_until(store, lambda s: s.received == 1 and s.notifications[0].id == sent.id)


async def test_following_another_user_drops_the_first_users_list(stack: DemoStack) -> None:
    store = await followed(stack)
    await stack.backend.notify(1, INVOICE, {"title": "for user 1"})
    await wait_until(store, lambda s: len(s.notifications) == 1)
    await store.subscribe_to_socket(2)
    assert store.state.user_id == 2
    assert store.state.channel == "private-tenant.acme.User.2"
    assert store.state.notifications == []


async def test_a_list_loaded_before_the_first_subscription_is_kept(stack: DemoStack) -> None:
    """Server rendering loads first and subscribes after: the first follow keeps what was loaded."""
    await stack.backend.notify(1, INVOICE, {"title": "loaded first"})
    client = await stack.client("Ann")
    store = client.app.use(NotificationStore)
    await store.load()
    await store.subscribe_to_socket(1)
    assert [n.title for n in store.state.notifications] == ["loaded first"]
