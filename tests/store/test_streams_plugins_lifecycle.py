"""connect(), plugins, lifecycle, keyed stores and container injection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel
from reactivex.subject import Subject

from quvel_store import (
    App,
    PluginContext,
    PluginError,
    ServiceContainer,
    StateValidationError,
    Store,
    StoreDefinitionError,
    StoreDisposedError,
    StoreErrorEvent,
    action,
    create_app,
)
from tests.store.models import CounterState, CounterStore, Item, ItemsState, ItemsStore


class Message(BaseModel):
    id: int
    text: str


class Feed(Store[ItemsState]):
    id = "feed"

    @action
    def receive(self, message: Message) -> None:
        if message.text == "bad":
            raise ValueError("cannot fold this message")
        self.patch(lambda s: s.items.append(Item(id=message.id, title=message.text)))


# ---- connect ----------------------------------------------------------------------------------------------


def test_connect_folds_items_and_survives_a_raising_handler(app: App) -> None:
    store = app.use(Feed)
    channel: Subject[Message] = Subject()
    errors: list[StoreErrorEvent] = []
    store.errors.subscribe(errors.append)
    store.connect(channel, store.receive)
    channel.on_next(Message(id=1, text="hello"))
    channel.on_next(Message(id=2, text="bad"))
    channel.on_next(Message(id=3, text="still flowing"))
    assert [i.title for i in store.state.items] == ["hello", "still flowing"]
    assert len(errors) == 1
    assert errors[0].source == "connect"
    assert errors[0].item == Message(id=2, text="bad")


def test_connect_with_a_reducer_patches_per_item(app: App) -> None:
    store = app.use(ItemsStore)
    numbers: Subject[int] = Subject()
    store.connect(numbers, reducer=lambda draft, n: setattr(draft, "count", draft.count + n))
    for n in (1, 2, 3):
        numbers.on_next(n)
    numbers.on_next("x")  # type: ignore[arg-type]  # an invalid item is reported, the stream goes on
    numbers.on_next(4)
    assert store.state.count == 10


def test_dispose_releases_a_connected_subject(app: App) -> None:
    store = app.use(Feed)
    channel: Subject[Message] = Subject()
    store.connect(channel, store.receive)
    assert len(channel.observers) == 1
    store.dispose()
    assert channel.observers == []
    channel.on_next(Message(id=1, text="after dispose"))  # nobody listens, nothing breaks


def test_disposing_the_connection_handle_releases_it(app: App) -> None:
    store = app.use(Feed)
    channel: Subject[Message] = Subject()
    handle = store.connect(channel, store.receive)
    handle.dispose()
    assert channel.observers == []


def test_a_failing_source_is_reported(app: App) -> None:
    store = app.use(Feed)
    channel: Subject[Message] = Subject()
    errors: list[StoreErrorEvent] = []
    store.errors.subscribe(errors.append)
    store.connect(channel, store.receive)
    channel.on_error(ConnectionError("socket closed"))
    assert isinstance(errors[0].error, ConnectionError)


async def test_items_from_another_thread_are_handled_on_the_loop(app: App) -> None:
    app.bind_loop()
    store = app.use(Feed)
    channel: Subject[Message] = Subject()
    threads: list[int] = []
    got = asyncio.Event()

    def handler(message: Message) -> None:
        threads.append(threading.get_ident())
        store.receive(message)
        got.set()

    store.connect(channel, handler)
    worker = threading.Thread(target=lambda: channel.on_next(Message(id=1, text="from a thread")))
    worker.start()
    await asyncio.wait_for(got.wait(), 5)
    worker.join()
    assert threads == [threading.get_ident()]
    assert store.state.items[0].title == "from a thread"


async def test_async_handler_errors_reach_the_error_stream(app: App) -> None:
    class AsyncFeed(Store[ItemsState]):
        id = "async-feed"

        @action
        async def receive(self, text: str) -> None:
            await asyncio.sleep(0)
            if text == "bad":
                raise ValueError(text)
            self.patch({"note": text})

    store = app.use(AsyncFeed)
    channel: Subject[str] = Subject()
    reported = asyncio.Event()
    store.errors.subscribe(lambda e: reported.set())
    store.connect(channel, store.receive)
    channel.on_next("bad")
    channel.on_next("good")
    await asyncio.wait_for(reported.wait(), 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert store.state.note == "good"


# ---- plugins ----------------------------------------------------------------------------------------------


class Persisted(Store[CounterState]):
    id = "persisted"
    persist = {"key": "counter-v1"}

    @action
    def inc(self) -> int:
        self.patch({"n": self.state.n + 1})
        return self.state.n


def test_plugins_apply_to_existing_and_later_stores_and_read_options(app: App) -> None:
    before = app.use(CounterStore)
    seen: list[tuple[str, Mapping[str, Any]]] = []
    written: dict[str, int] = {}

    def persistence(ctx: PluginContext) -> dict[str, Any]:
        seen.append((ctx.store.store_id, dict(ctx.options)))
        assert ctx.container is app.container
        assert ctx.app is app
        options = ctx.options.get("persist")
        if options:
            ctx.store.subscribe(lambda e, s: written.__setitem__(options["key"], s.n))
        return {"plugin_marker": f"marked {ctx.store.store_id}"}

    app.use_plugin(persistence)
    after = app.use(Persisted)
    after.inc()
    assert seen == [("counter", {}), ("persisted", {"persist": {"key": "counter-v1"}})]
    assert before.plugin_marker == "marked counter"  # type: ignore[attr-defined]
    assert after.plugin_marker == "marked persisted"  # type: ignore[attr-defined]
    assert written == {"counter-v1": 1}


def test_plugins_can_wrap_actions(app: App) -> None:
    calls: list[str] = []

    def audit(ctx: PluginContext) -> None:
        for name in ctx.actions:

            def wrapper(original: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
                calls.append(f"before {_name}")
                result = original(*args, **kwargs)
                calls.append(f"after {_name} -> {result}")
                return result

            ctx.wrap_action(name, wrapper)

    app.use_plugin(audit)
    store = app.use(Persisted)
    assert store.inc() == 1
    assert calls == ["before inc", "after inc -> 1"]


def test_plugin_errors_and_reserved_names(app: App) -> None:
    app.use(CounterStore)

    def broken(ctx: PluginContext) -> None:
        raise RuntimeError("plugin bug")

    with pytest.raises(PluginError, match="counter"):
        app.use_plugin(broken)
    other = create_app()
    other.use_plugin(lambda ctx: {"state": 1})
    with pytest.raises(PluginError, match="state"):
        other.use(CounterStore)
    assert other.get("counter") is None  # a store that failed to start is not kept
    other.dispose()


def test_wrap_action_refuses_a_wrapper_that_is_no_function(app: App) -> None:
    def plugin(ctx: PluginContext) -> None:
        not_a_function: Any = 5
        ctx.wrap_action("inc", not_a_function)

    with pytest.raises(PluginError, match=r"wrap_action\('inc', \.\.\.\) needs a function"):
        app.use_plugin(plugin).use(CounterStore)
    assert app.get("counter") is None  # the store that failed to start is not kept


# ---- lifecycle --------------------------------------------------------------------------------------------


def test_init_and_dispose_hooks_and_fresh_store_after_dispose(app: App) -> None:
    log: list[str] = []

    class Life(Store[CounterState]):
        id = "life"

        def on_init(self) -> None:
            log.append(f"init {self.state.n}")

        def on_dispose(self) -> None:
            log.append(f"dispose {self.state.n}")

    store = app.use(Life)
    assert app.use(Life) is store
    store.patch({"n": 4})
    cleanup: list[bool] = []
    store.add_cleanup(lambda: cleanup.append(True))
    store.dispose()
    store.dispose()  # idempotent
    assert store.disposed
    assert cleanup == [True]
    with pytest.raises(StoreDisposedError):
        store.patch({"n": 1})
    with pytest.raises(StoreDisposedError):
        store.subscribe(lambda e, s: None)
    fresh = app.use(Life)
    assert fresh is not store
    assert fresh.state.n == 0
    assert log == ["init 0", "dispose 4", "init 0"]


def test_app_dispose_disposes_everything(app: App) -> None:
    a, b = app.use(CounterStore), app.use(ItemsStore)
    done: list[str] = []
    app.mutations.subscribe(on_completed=lambda: done.append("mutations"))
    a.observe().subscribe(on_completed=lambda: done.append("a"))
    app.dispose()
    assert a.disposed
    assert b.disposed
    assert sorted(done) == ["a", "mutations"]
    with pytest.raises(StoreDisposedError):
        app.use(CounterStore)


def test_keyed_stores_are_one_per_key(app: App) -> None:
    room1 = app.use(CounterStore, key="room-1")
    room2 = app.use(CounterStore, key="room-2")
    assert app.use(CounterStore, key="room-1") is room1
    assert room1 is not room2
    assert (room1.store_id, room1.key) == ("counter:room-1", "room-1")
    room1.inc()
    assert (room1.state.n, room2.state.n) == (1, 0)
    assert set(app.snapshot()) == {"counter:room-1", "counter:room-2"}


def test_every_store_gets_the_container(app: App) -> None:
    assert isinstance(app.container, ServiceContainer)
    assert app.use(CounterStore).container is app.container
    given = ServiceContainer()
    mine = create_app(container=given)
    assert mine.use(CounterStore).container is given
    mine.dispose()


def test_store_definition_errors() -> None:
    with pytest.raises(StoreDefinitionError):

        class Bad(Store[CounterState]):
            id = "has:colon"

    class NoId(Store[CounterState]):
        pass

    class NoModel(Store):  # type: ignore[type-arg]
        id = "no-model"

    other = create_app()
    with pytest.raises(StoreDefinitionError):
        other.use(NoId)
    with pytest.raises(StoreDefinitionError):
        other.use(NoModel)

    class Same(Store[CounterState]):
        id = "counter"

    other.use(CounterStore)
    with pytest.raises(StoreDefinitionError):
        other.use(Same)
    other.dispose()


def test_initial_state_hook_is_validated(app: App) -> None:
    class Seeded(Store[CounterState]):
        id = "seeded"

        def initial_state(self) -> CounterState:
            return CounterState(n=5)

    class Broken(Store[CounterState]):
        id = "broken"

        def initial_state(self) -> CounterState:
            return {"n": "five"}  # type: ignore[return-value]

    store = app.use(Seeded)
    store.patch({"n": 9})
    store.reset()
    assert store.state.n == 5
    with pytest.raises(StateValidationError):
        app.use(Broken)


async def test_aclose_shuts_down_only_a_container_the_app_made() -> None:
    closed: list[str] = []

    class Service:
        def __init__(self, name: str) -> None:
            self.name = name

        def shutdown(self) -> None:
            closed.append(self.name)

    app = create_app()
    app.container.add_service("mine", Service("mine"))
    async with app:
        app.use(CounterStore).inc()
    assert app.disposed
    assert closed == ["mine"]

    given = ServiceContainer()
    given.add_service("theirs", Service("theirs"))
    other = create_app(container=given)
    await other.aclose()
    assert closed == ["mine"]
    await given.shutdown()
    assert closed == ["mine", "theirs"]
