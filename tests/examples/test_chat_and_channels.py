"""The presence chat room, the public updates feed and the encrypted channel, in process against the
embedded server (the example scripts themselves run in test_run_examples.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from examples.encrypted_channel import VaultStore
from examples.updates_feed import FeedStore
from quvel.demo import DemoStack, demo_stack, next_value, wait_until
from quvel.demo.chat import RoomNotJoined, RoomStore
from quvel_store import QuvelError, ResyncFailed, SyncStatus
from tests.demo.conftest import RawPusherClient


@pytest.fixture
async def stack() -> AsyncIterator[DemoStack]:
    async with demo_stack() as running:
        yield running


async def joined(stack: DemoStack, user: str, room: str = "9") -> RoomStore:
    client = await stack.client(user)
    store = client.app.use(RoomStore, key=room)
    await store.join(room)
    await next_value(client.ws.channel(f"room.{room}", type="presence").subscribed)
    return store


async def test_members_follow_here_joining_and_leaving(stack: DemoStack) -> None:
    ann = await joined(stack, "Ann")
    await wait_until(ann, lambda s: [m.name for m in s.members] == ["Ann"])
    ben = await joined(stack, "Ben")
    await wait_until(ann, lambda s: len(s.members) == 2)
    assert ann.member_names == ["Ann", "Ben"]
    assert ann.state.activity == ["Ben joined"]
    ben.dispose()  # leaving the channel
    await wait_until(ann, lambda s: len(s.members) == 1)
    assert ann.state.activity == ["Ben joined", "Ben left"]


async def test_typing_whisper_then_message_clears_it(stack: DemoStack) -> None:
    ann, ben = await joined(stack, "Ann"), await joined(stack, "Ben")
    await wait_until(ann, lambda s: len(s.members) == 2)
    ben.set_typing("Ben")
    await wait_until(ann, lambda s: s.typing == ["Ben"])
    assert ben.state.typing == []  # a whisper is not echoed to its sender
    sent = await ben.send("hello")
    state = await wait_until(ann, lambda s: bool(s.messages))
    assert state.messages[-1].id == sent.id
    assert state.typing == []
    assert ben.state.messages[-1].id == sent.id  # the sender keeps its own copy from the API answer
    assert len(ben.state.messages) == 1  # and does not get the broadcast back (toOthers)


async def test_a_malformed_whisper_goes_to_errors_and_the_room_keeps_working(stack: DemoStack) -> None:
    ann, ben = await joined(stack, "Ann"), await joined(stack, "Ben")
    await wait_until(ann, lambda s: len(s.members) == 2)
    errors: list[Exception] = []
    ann.errors.subscribe(errors.append)
    ben.container.ws.channel("room.9", type="presence").whisper("typing", {"nobody": True})
    ben.set_typing("Ben")
    await wait_until(ann, lambda s: s.typing == ["Ben"])
    assert len(errors) == 1


async def test_history_is_reloaded_when_the_room_is_subscribed_again(stack: DemoStack) -> None:
    assert stack.server is not None
    ann = await joined(stack, "Ann")
    await stack.server.stop()
    missed = await stack.backend.send_message("9", 2, "said while Ann was away")
    await stack.server.start()
    state = await wait_until(ann, lambda s: any(m.id == missed.id for m in s.messages), timeout=20)
    assert state.messages[-1].text == "said while Ann was away"


async def test_history_reload_is_retried_while_the_api_is_down_after_a_restart(stack: DemoStack) -> None:
    """A deploy: the WebSocket server comes back before the app. The reload on resubscription gets 503s
    and retries until the API answers, so the message said meanwhile still reaches the room."""
    assert stack.server is not None
    ann = await joined(stack, "Ann")
    await wait_until(ann, lambda s: s.sync.status == SyncStatus.SYNCED)
    failed: list[Exception] = []
    ann.errors.subscribe(lambda event: failed.append(event.error))
    await stack.server.stop()
    missed = await stack.backend.send_message("9", 2, "said during the deploy")
    stack.backend.api_unavailable(1.5)
    refused = stack.backend.stats.api_refused
    await stack.server.start()
    state = await wait_until(ann, lambda s: any(m.id == missed.id for m in s.messages), timeout=30)
    assert stack.backend.stats.api_refused > refused  # the first reloads were refused
    assert state.sync.status == SyncStatus.SYNCED
    assert failed
    assert all(isinstance(e, ResyncFailed) for e in failed)
    assert [m.id for m in state.messages].count(missed.id) == 1


async def test_feed_validates_updates_and_skips_bad_ones(stack: DemoStack) -> None:
    client = await stack.client("Ann")
    feed = client.app.use(FeedStore)
    feed.follow()
    channel = client.ws.channel("updates")
    await next_value(channel.subscribed)
    bad = []
    channel.errors.subscribe(bad.append)
    await stack.backend.post_update({"id": "x"})
    await stack.backend.post_update({"id": 1, "title": "ok", "level": "warning"})
    await wait_until(feed, lambda s: len(s.updates) == 1)
    assert feed.latest is not None
    assert feed.latest.title == "ok"
    assert feed.warnings == 1
    assert len(bad) == 1


async def test_following_the_feed_twice_adds_each_update_once(stack: DemoStack) -> None:
    client = await stack.client("Ann")
    feed = client.app.use(FeedStore)
    feed.follow()
    feed.follow()
    await next_value(client.ws.channel("updates").subscribed)
    await stack.backend.post_update({"id": 1, "title": "one"})
    await stack.backend.post_update({"id": 2, "title": "two"})
    state = await wait_until(feed, lambda s: len(s.updates) >= 2)
    assert [u.id for u in state.updates] == [1, 2]


async def test_encrypted_channel_server_sees_ciphertext_store_gets_plaintext(stack: DemoStack) -> None:
    client = await stack.client("Ann")
    vault = client.app.use(VaultStore)
    vault.open(3)
    await next_value(client.ws.channel("vault.3", type="encrypted").subscribed)
    # An eavesdropper with a valid subscription but no shared secret: what the server relays.
    raw = await RawPusherClient.connect(stack.ws_url)
    try:
        async with httpx.AsyncClient(base_url=stack.backend.url) as http:
            auth = await http.post(
                "/broadcasting/auth",
                headers={"Authorization": "Bearer token-ben"},
                data={"socket_id": raw.socket_id, "channel_name": "private-encrypted-vault.3"},
            )
        await raw.subscribe("private-encrypted-vault.3", auth.json())
        await stack.backend.broadcast(
            "private-encrypted-vault.3",
            "App\\Events\\SecretShared",
            {"name": "k", "value": "plaintext-marker-123"},
        )
        frame = await raw.next_event(lambda f: f.get("event") == "App\\Events\\SecretShared")
    finally:
        await raw.close()
    relayed = json.loads(frame["data"])
    assert set(relayed) == {"nonce", "ciphertext"}
    assert "plaintext-marker-123" not in frame["data"]
    await wait_until(vault, lambda s: s.secrets == {"k": "plaintext-marker-123"})


async def test_room_actions_before_join_are_a_clear_error(stack: DemoStack) -> None:
    from quvel.demo.chat import RoomNotJoined

    client = await stack.client("Ann")
    room = client.app.use(RoomStore, key="x")
    with pytest.raises(RoomNotJoined):
        await room.send("hello?")
    with pytest.raises(RoomNotJoined):
        room.set_typing("Ann")
    assert room.state.messages == []


async def test_joining_twice_folds_each_event_once(stack: DemoStack) -> None:
    ann = await joined(stack, "Ann")
    await ann.join("9")  # again: a no-op, not a second set of subscriptions
    await joined(stack, "Cleo")
    await wait_until(ann, lambda s: len(s.members) == 2)
    sent = await stack.backend.send_message("9", 3, "once")
    await wait_until(ann, lambda s: any(m.id == sent.id for m in s.messages))
    # Cleo's join and the message each reached the store once (a second subscription would log twice).
    assert ann.state.activity == ["Cleo joined"]
    assert [m.text for m in ann.state.messages] == ["once"]


async def test_moving_to_another_room_leaves_the_first_and_forgets_it(stack: DemoStack) -> None:
    assert stack.server is not None
    ann = await joined(stack, "Ann", room="1")
    first = await stack.backend.send_message("1", 2, "in room 1")
    await wait_until(ann, lambda s: any(m.id == first.id for m in s.messages))
    await ann.join("2")
    assert ann.state.room_id == "2"
    assert ann.state.messages == []
    assert ann.state.activity == []
    for _ in range(100):  # the unsubscribe frame travels to the server
        if "presence-room.1" not in stack.server.channels():
            break
        await asyncio.sleep(0.02)
    assert "presence-room.1" not in stack.server.channels()
    await stack.backend.send_message("1", 2, "room 1 again")  # nobody from this store listens there
    second = await stack.backend.send_message("2", 2, "in room 2")
    state = await wait_until(ann, lambda s: any(m.id == second.id for m in s.messages))
    assert [m.text for m in state.messages] == ["in room 2"]
    assert ann.member_names == ["Ann"]


async def test_leave_forgets_the_room_and_room_actions_then_refuse(stack: DemoStack) -> None:
    ann = await joined(stack, "Ann")
    ann.leave()
    assert ann.state.room_id is None
    assert ann.state.members == []
    with pytest.raises(RoomNotJoined) as caught:
        await ann.send("hello?")
    assert isinstance(caught.value, QuvelError)
    with pytest.raises(RoomNotJoined):
        ann.set_typing("Ann")
