"""SyncedCollection on its own: keyed merging, the journal of live changes during a reload, pruning,
versions, the retry loop and its status, disposal, configuration errors and model-event folding.

The loader here is a plain coroutine (what the collection calls); the tests against a real HTTP back
end and real servers are in tests/examples/test_tasks_recipe.py and tests/faults."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from reactivex.subject import Subject

from quvel_store import (
    ModelEvent,
    ResyncFailed,
    ResyncPolicy,
    Store,
    SyncedCollection,
    SyncedCollectionError,
    SyncInfo,
    SyncStatus,
    create_app,
    model_event_names,
)
from quvel_store.errors import ApiNotFound, ApiServerError, ApiTimeout

FAST = ResyncPolicy(initial=0.01, maximum=0.04, jitter=0.5)


class Post(BaseModel):
    id: int
    title: str = ""
    version: int = 0
    deleted_at: str | None = None


class PostsState(BaseModel):
    items: list[Post] = []
    sync: SyncInfo = SyncInfo()


class Posts(Store[PostsState]):
    id = "posts"


class Server:
    """What the loader reads, with a queue of failures to raise first and an optional gate."""

    def __init__(self, *rows: Post) -> None:
        self.rows = list(rows)
        self.fail: list[BaseException] = []
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def load(self) -> list[Post]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise self.fail.pop(0)
        return list(self.rows)


def collection(server: Server, **options: Any) -> tuple[Posts, SyncedCollection[Post]]:
    store = create_app().use(Posts)
    options.setdefault("policy", FAST)
    return store, SyncedCollection(store, Post, load=server.load, rng=random.Random(1), **options)


def ids(store: Posts) -> list[int]:
    return [p.id for p in store.state.items]


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 - state changes are synchronous here
            await asyncio.sleep(0.005)

    await asyncio.wait_for(loop(), within)


def http_503() -> ApiServerError:
    return ApiServerError("GET /api/posts answered 503", method="GET", url="/api/posts", status=503, body={})


async def test_reload_and_live_events_hold_each_item_once() -> None:
    server = Server(Post(id=1), Post(id=2))
    store, posts = collection(server, order=lambda p: p.id)
    posts.upsert(Post(id=2, title="live"))  # arrived live before the list
    posts.upsert({"id": 3})  # a mapping is validated into the model
    await posts.reload()
    assert ids(store) == [1, 2, 3]
    posts.upsert(Post(id=1, title="again"))
    await posts.reload()
    assert ids(store) == [1, 2, 3]
    assert store.state.sync.status is SyncStatus.SYNCED
    assert store.state.sync.loads == 2


async def test_a_live_change_during_an_inflight_reload_is_not_undone() -> None:
    server = Server(Post(id=1, title="old"), Post(id=2))
    store, posts = collection(server, prune=True)
    await posts.reload()
    server.gate = asyncio.Event()
    running = asyncio.ensure_future(posts.reload())
    await until(lambda: server.calls == 2)
    assert store.state.sync.status is SyncStatus.RESYNCING
    posts.upsert(Post(id=1, title="new"))  # changed live while the (older) list is in flight
    posts.remove(2)  # deleted live
    posts.upsert(Post(id=3))  # created live, not in the list
    server.gate.set()
    await running
    assert {p.id: p.title for p in store.state.items} == {1: "new", 3: ""}


async def test_prune_drops_what_the_list_lacks_and_merge_keeps_it() -> None:
    for prune, expected in ((True, [2]), (False, [1, 2])):
        server = Server(Post(id=1), Post(id=2))
        store, posts = collection(server, prune=prune, order=lambda p: p.id)
        await posts.reload()
        server.rows = [Post(id=2)]  # 1 was deleted while we were away
        await posts.reload()
        assert ids(store) == expected


async def test_limit_keeps_the_items_that_sort_last_through_live_events_and_reloads() -> None:
    server = Server(*(Post(id=i) for i in range(1, 6)))
    store, posts = collection(server, order=lambda p: p.id, limit=3)
    await posts.reload()
    assert ids(store) == [3, 4, 5]
    posts.upsert(Post(id=6))
    assert ids(store) == [4, 5, 6]
    posts.upsert(Post(id=1))  # older than the window: not held
    assert ids(store) == [4, 5, 6]
    await posts.reload()  # the list brings 1..5 back: merged, then cut to the newest 3 again
    assert ids(store) == [4, 5, 6]

    newest_first, feed = collection(
        Server(*(Post(id=i) for i in range(1, 6))), order=lambda p: p.id, reverse=True, limit=2
    )
    await feed.reload()
    assert ids(newest_first) == [5, 4]


@pytest.mark.parametrize("limit", [0, -1, True])
def test_a_limit_needs_an_order_and_a_positive_count(limit: int) -> None:
    store = create_app().use(Posts)
    with pytest.raises(SyncedCollectionError, match="needs an order"):
        SyncedCollection(store, Post, load=Server().load, order=lambda p: p.id, limit=limit)
    with pytest.raises(SyncedCollectionError, match="needs an order"):
        SyncedCollection(store, Post, load=Server().load, limit=5)


async def test_version_lets_the_newer_copy_win_either_way() -> None:
    server = Server(Post(id=1, version=1))
    store, posts = collection(server, version=lambda p: p.version)
    posts.upsert(Post(id=1, version=2, title="newer"))
    await posts.reload()  # the list's copy is older
    assert store.state.items[0].title == "newer"
    assert posts.upsert(Post(id=1, version=1)).version == 2  # an older live copy is ignored


async def test_resync_retries_transient_errors_until_it_succeeds() -> None:
    server = Server(Post(id=1))
    server.fail = [http_503(), ApiTimeout("timed out", method="GET", url="/api/posts"), http_503()]
    store, posts = collection(server)
    statuses: list[SyncStatus] = []
    posts.statuses.subscribe(statuses.append)
    errors: list[Any] = []
    store.errors.subscribe(lambda event: errors.append(event.error))
    await posts.resync()
    assert ids(store) == [1]
    assert server.calls == 4
    assert store.state.sync == SyncInfo(status=SyncStatus.SYNCED, loads=1)
    assert [type(e) for e in errors] == [ResyncFailed] * 3
    assert [e.attempt for e in errors] == [1, 2, 3]
    assert all(0 < e.retry_in <= FAST.maximum for e in errors)
    assert isinstance(errors[0].__cause__, ApiServerError)
    assert statuses[0] is SyncStatus.STALE
    assert statuses[-1] is SyncStatus.SYNCED
    assert SyncStatus.RESYNCING in statuses


async def test_a_failed_attempt_is_visible_in_the_state() -> None:
    server = Server(Post(id=1))
    server.fail = [http_503()]
    server.gate = asyncio.Event()
    store, posts = collection(server, policy=ResyncPolicy(initial=5.0, maximum=5.0))
    task = posts.resync()
    server.gate.set()
    await until(lambda: store.state.sync.attempts == 1)
    info = store.state.sync
    assert info.status is SyncStatus.STALE
    assert info.error is not None
    assert "ApiServerError" in info.error
    assert info.retry_in is not None
    assert 2.5 <= info.retry_in <= 5.0
    task.cancel()


async def test_an_error_that_retrying_cannot_fix_stops_the_retries() -> None:
    server = Server(Post(id=1))
    server.fail = [ApiNotFound("no such route", method="GET", url="/api/posts", status=404, body={})]
    store, posts = collection(server)
    errors: list[Any] = []
    store.errors.subscribe(lambda event: errors.append(event.error))
    await posts.resync()
    assert server.calls == 1
    assert store.state.sync.status is SyncStatus.STALE
    assert store.state.sync.retry_in is None
    assert errors[0].retry_in is None
    await posts.resync()  # the next subscription (or an explicit resync) tries again
    assert store.state.sync.status is SyncStatus.SYNCED


async def test_following_resyncs_on_each_subscription_and_goes_stale_when_lost() -> None:
    server = Server(Post(id=1))
    store, posts = collection(server)
    subscribed: Subject[object] = Subject()
    lost: Subject[object] = Subject()
    handle = posts.follow(subscribed, lost=lost)
    subscribed.on_next("first")
    await until(lambda: store.state.sync.status is SyncStatus.SYNCED)
    lost.on_next("connecting")
    assert store.state.sync.status is SyncStatus.STALE
    server.gate = asyncio.Event()
    subscribed.on_next("again")
    await until(lambda: server.calls == 2)
    handle.dispose()  # stop following: the running resync is cancelled
    server.gate.set()
    await asyncio.sleep(0.05)
    assert store.state.sync.loads == 1
    subscribed.on_next("ignored")
    await asyncio.sleep(0.05)
    assert server.calls == 2


async def test_dispose_ends_the_retries() -> None:
    server = Server(Post(id=1))
    server.fail = [http_503()] * 1000
    store, posts = collection(server)
    task = posts.resync()
    await until(lambda: server.calls >= 2)
    store.dispose()
    await asyncio.sleep(0.01)
    assert task.done()
    calls = server.calls
    await asyncio.sleep(0.1)
    assert server.calls == calls


def test_backoff_is_capped_and_jittered() -> None:
    policy = ResyncPolicy(initial=0.5, maximum=4.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    delays = [[policy.delay(n, rng) for _ in range(200)] for n in range(1, 8)]
    for n, draws in enumerate(delays, start=1):
        ceiling = min(4.0, 0.5 * 2 ** (n - 1))
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert max(draws) - min(draws) > ceiling / 4  # drawn, not fixed
    assert max(max(d) for d in delays) <= 4.0


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"maximum": 0.1, "initial": 1}, {"jitter": 2}, {"multiplier": 0.5}, {"timeout": 0}],
)
def test_a_policy_out_of_range_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(SyncedCollectionError, match="out of range"):
        ResyncPolicy(**kwargs)


def test_a_state_without_the_fields_is_a_clear_error() -> None:
    store = create_app().use(Posts)
    with pytest.raises(SyncedCollectionError, match="no field 'posts'"):
        SyncedCollection(store, Post, load=Server().load, items="posts")
    with pytest.raises(SyncedCollectionError, match="must be a SyncInfo"):
        SyncedCollection(store, Post, load=Server().load, info="items")


def test_model_event_names_are_laravels_broadcast_as_names() -> None:
    assert model_event_names("Post") == {
        ModelEvent.CREATED: ".PostCreated",
        ModelEvent.UPDATED: ".PostUpdated",
        ModelEvent.TRASHED: ".PostTrashed",
        ModelEvent.RESTORED: ".PostRestored",
        ModelEvent.DELETED: ".PostDeleted",
    }
    with pytest.raises(SyncedCollectionError):
        model_event_names("App\\Models\\Post")


class FakeChannel:
    """A channel of Subjects, one per event name (the real server is in tests/examples)."""

    def __init__(self) -> None:
        self.events: dict[str, Subject[Any]] = {}
        self.subscribed: Subject[Any] = Subject()

    def listen(self, event: str) -> Subject[Any]:
        return self.events.setdefault(event, Subject())


async def test_model_events_fold_into_the_collection() -> None:
    server = Server()
    store, posts = collection(server, order=lambda p: p.id)
    channel = FakeChannel()
    errors: list[Any] = []
    store.errors.subscribe(lambda event: errors.append(event.error))
    posts.follow_models(channel)
    send = lambda name, model: channel.events[f".Post{name}"].on_next({"model": model, "connection": None})  # noqa: E731
    send("Created", {"id": 1, "title": "a"})
    send("Created", {"id": 2, "title": "b"})
    send("Updated", {"id": 1, "title": "a2"})
    assert [(p.id, p.title) for p in store.state.items] == [(1, "a2"), (2, "b")]
    send("Trashed", {"id": 1, "deleted_at": "2026-01-01T00:00:00.000000Z"})
    send("Deleted", {"id": 1, "deleted_at": "2026-01-01T00:00:00.000000Z"})
    assert ids(store) == [2]
    send("Restored", {"id": 1, "title": "back"})
    assert ids(store) == [1, 2]
    send("Deleted", 2)  # a model without soft deletes is broadcast as its key
    assert ids(store) == [1]
    channel.events[".PostCreated"].on_next({"no": "model"})  # reported, the stream goes on
    send("Created", {"id": 3})
    assert ids(store) == [1, 3]
    assert len(errors) == 1
    assert isinstance(errors[0], SyncedCollectionError)
    channel.subscribed.on_next("subscribed")  # a (re)subscription reloads
    await until(lambda: server.calls == 1)


async def test_trashed_models_can_be_kept() -> None:
    store, posts = collection(Server(), order=lambda p: p.id)
    channel = FakeChannel()
    posts.follow_models(channel, "Post", trashed="keep")
    channel.listen(".PostCreated").on_next({"model": {"id": 1}})
    channel.listen(".PostTrashed").on_next({"model": {"id": 1, "deleted_at": "x"}})
    channel.listen(".PostDeleted").on_next({"model": {"id": 1, "deleted_at": "x"}})
    assert [(p.id, p.deleted_at) for p in store.state.items] == [(1, "x")]
