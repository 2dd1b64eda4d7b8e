"""The Textual binding as a person uses it: the example app under Textual's pilot (keys pressed, widgets
read) while notifications arrive from a real ``quvel serve`` process."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel
from textual.app import App, ComposeResult
from textual.reactive import reactive
from textual.widgets import OptionList, Static

from examples.textual_notifications import ConnectionLight, NotificationsApp, UnreadBadge
from quvel.demo import demo_stack
from quvel_store import LoopBindingError, Store, create_app
from quvel_ui import BindingError
from quvel_ui.textual import bind, share_loop
from tests.ui.conftest import Served, eventually, image_path

INVOICE = "App\\Notifications\\InvoicePaid"

pytestmark = pytest.mark.slow


async def test_notifications_app_follows_the_store_and_marks_read(quvel_serve: Served) -> None:
    async with demo_stack(ws_url=quvel_serve.ws_url, credentials=quvel_serve.credentials) as stack:
        app = NotificationsApp(stack, "Ann")
        async with app.run_test(size=(90, 16)) as pilot:
            await eventually(lambda: app.store is not None and app.store.state.loads >= 1, "the first load")
            store = app.store
            assert store is not None
            badge, light = app.query_one(UnreadBadge), app.query_one(ConnectionLight)
            options = app.query_one("#list", OptionList)
            assert (badge.count, options.option_count) == (0, 0)
            assert light.status == "connected"
            assert light.has_class("connected")

            older = await stack.backend.notify(1, INVOICE, {"title": "Invoice paid", "body": "#1041"})
            await eventually(lambda: options.option_count == 1, "the first notification in the list")
            newer = await stack.backend.notify(1, INVOICE, {"title": "Task assigned", "body": "by Ben"})
            await stack.backend.notify(2, INVOICE, {"title": "Not for Ann"})
            await eventually(lambda: badge.count == 2, "the badge to count two")
            assert options.option_count == 2
            assert [options.get_option_at_index(i).id for i in range(2)] == [newer.id, older.id]
            assert "2 unread" in str(badge.render())
            assert badge.has_class("has-unread")

            await pilot.press("down", "r")  # choose the older one, mark it read through the API
            await eventually(lambda: badge.count == 1, "the badge to drop to one")
            assert stack.backend.sent_to(1)[0].read_at is not None  # the back end has it read
            assert stack.backend.sent_to(1)[1].read_at is None
            await pilot.pause()
            shot = image_path("textual-notifications.svg")
            app.save_screenshot(shot.name, str(shot.parent))
            assert "Invoice&#160;paid" in shot.read_text(encoding="utf-8")

            await pilot.press("a")
            await eventually(lambda: badge.count == 0, "mark all read")
            assert not badge.has_class("has-unread")
        assert store.disposed  # the app's client was closed with the app


class Counter(BaseModel):
    n: int = 0


class CounterStore(Store[Counter]):
    id = "counter"


class Probe(Static):
    n: reactive[int] = reactive(-1)


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield Probe()


async def test_a_binding_ends_with_its_widget() -> None:
    quvel = create_app()
    store = quvel.use(CounterStore)
    selection = store.select(lambda s: s.n)
    host = Host()
    async with host.run_test() as pilot:
        share_loop(quvel)
        probe = host.query_one(Probe)
        binding = bind(probe, selection, "n")
        assert probe.n == 0  # the current value, at once
        store.patch({"n": 3})
        assert probe.n == 3
        assert binding.values == 2

        await pilot.pause()
        await probe.remove()
        await pilot.pause()
        assert binding.disposed  # the widget's lifetime owned it
        store.patch({"n": 4})
        assert probe.n == 3
        assert binding.values == 2

        # Removed before its first turn on the loop: the next value finds it gone and ends the binding.
        second = Probe()
        await host.mount(second)
        early = bind(second, selection, "n")
        await second.remove()
        store.patch({"n": 5})
        assert early.disposed
        assert second.n == 4

        with pytest.raises(BindingError, match="not mounted yet"):
            bind(Probe(), selection, "n")
        with pytest.raises(BindingError, match="no attribute 'nope'"):
            bind(host.screen, selection, "nope")
        with pytest.raises(BindingError, match="needs an Observable"):
            bind(host.screen, store.state, "styles")  # type: ignore[arg-type]


async def test_values_from_another_thread_are_applied_on_the_ui_loop() -> None:
    from reactivex.subject import Subject

    host = Host()
    async with host.run_test() as pilot:
        probe = host.query_one(Probe)
        seen: list[tuple[int, bool]] = []
        loop_thread = asyncio.get_running_loop()
        source: Subject[int] = Subject()

        def record(value: int) -> None:
            seen.append((value, asyncio.get_running_loop() is loop_thread))

        bind(probe, source, record)
        await asyncio.to_thread(source.on_next, 7)
        await eventually(lambda: bool(seen), "the value from the worker thread", pause=pilot.pause)
        assert seen == [(7, True)]


async def test_share_loop_refuses_an_app_bound_to_another_open_loop() -> None:
    quvel = create_app()
    other = asyncio.new_event_loop()
    try:
        quvel.bind_loop(other)
        with pytest.raises(LoopBindingError, match="another event loop"):
            share_loop(quvel)
    finally:
        other.close()
    share_loop(quvel)  # that loop is closed: this one may take the app
    assert quvel.loop is asyncio.get_running_loop()
