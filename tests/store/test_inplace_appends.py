"""One-at-a-time appends to a list field stay linear: each commit extends the same list in place.

f16083d fixed a regression where every append copied the whole list (20,000 appends went quadratic)
and no test noticed. These tests check the mechanism, not the clock: across a commit the list object
keeps its identity when nobody else holds the old state, and is copied when someone does.
"""

from __future__ import annotations

from typing import Any

from quvel_store import App, MutationEvent
from tests.store.models import Item, ItemsStore

APPENDS = 20_000


def test_20000_appends_with_a_subscriber_extend_one_list_in_place(app: App) -> None:
    store = app.use(ItemsStore)
    seen = [0]

    def count(_event: MutationEvent, _state: Any) -> None:  # keeps no snapshot
        seen[0] += 1

    store.subscribe(count)
    first = id(store.state.items)
    copies = 0
    for n in range(APPENDS):
        # id() only: holding the list itself would (rightly) force the store to copy it
        before = id(store.state.items)
        store.patch(lambda s, n=n: s.items.append(Item(id=n, title="t")))
        # a copy is made while the old list is alive, so it always has another id
        if id(store.state.items) != before:
            copies += 1
    assert copies == 0, f"{copies} of {APPENDS} appends copied the list (appends are quadratic again)"
    assert id(store.state.items) == first
    assert seen[0] == APPENDS
    items = store.state.items
    assert len(items) == APPENDS
    assert [items[0].id, items[-1].id] == [0, APPENDS - 1]


def test_an_append_copies_the_list_while_an_old_snapshot_is_held(app: App) -> None:
    # The control for the test above: the identity check does see a copy when one is required.
    store = app.use(ItemsStore)
    store.patch(lambda s: s.items.append(Item(id=0, title="a")))
    old = store.state
    store.patch(lambda s: s.items.append(Item(id=1, title="b")))
    assert store.state.items is not old.items
    assert [i.id for i in old.items] == [0]
    assert [i.id for i in store.state.items] == [0, 1]
