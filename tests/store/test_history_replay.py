"""Replay by actions (issue 17): an exported timeline run again as its action calls (where the arguments
are JSON) against a fresh app reaches the same final state; the rest is applied as recorded states."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import ActionEvent, Store, action, create_app
from quvel_store.history import History, HistoryError, load_timeline, replay_actions


class Tag(BaseModel):
    name: str


class Board(BaseModel):
    items: list[str] = []
    count: int = 0


class BoardStore(Store[Board]):
    id = "board"

    @action
    def add(self, item: str) -> None:
        self.patch(lambda s: s.items.append(item))

    @action(atomic=True)
    def add_two(self, a: str, b: str) -> None:
        self.add(a)
        with self.batch():
            self.add(b)

    @action
    def add_and_count(self, item: str, *, by: int = 1) -> None:  # not atomic: an inner commit, then its own
        self.add(item)
        self.patch({"count": self.state.count + by})
        self.app.use(Counter).bump(by)  # another store's action, called from this one

    @action
    async def fetch(self, item: str) -> None:
        await asyncio.sleep(0)
        self.add(f"fetched:{item}")

    @action
    def add_tag(self, tag: Tag) -> None:  # a model argument: not JSON as recorded
        self.add(f"#{tag.name}")


class Count(BaseModel):
    n: int = 0


class Counter(Store[Count]):
    id = "counter"

    @action
    def bump(self, by: int) -> None:
        self.patch({"n": self.state.n + by})


def _starts(app: Any) -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
    seen: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []

    def keep(event: ActionEvent) -> None:
        if event.phase == "start":
            seen.append((event.store_id, event.name, tuple(event.args), dict(event.kwargs)))

    app.actions.subscribe(keep)
    return seen


async def test_an_exported_timeline_replays_by_its_actions_to_the_same_state(tmp_path: Path) -> None:
    history = History()
    app = create_app(plugins=[history])
    calls = _starts(app)
    board = app.use(BoardStore)
    keyed = app.use(BoardStore, "side")
    board.add("a")
    board.add_two("b", "c")
    board.add_and_count("d", by=3)
    await board.fetch("e")
    board.patch({"count": 10})  # no action: replayed as its state
    board.add("f")
    board.undo()  # type: ignore[attr-defined]  # travel: replayed as its state
    keyed.add("k")
    board.add_tag(Tag(name="t"))  # replayed as its state
    board.add("g")
    assert board.state.items == ["a", "b", "c", "d", "fetched:e", "#t", "g"]

    path = tmp_path / "t.jsonl"
    history.export(path)
    records = load_timeline(path)
    tagged = [r["call"] for r in records if r["call"] and r["call"]["action"] == "add_tag"]
    assert tagged
    assert not any(call["exact"] for call in tagged)

    fresh = create_app()
    replayed = _starts(fresh)
    ran = await replay_actions(fresh, records, stores=[BoardStore, Counter])
    assert ran == 7  # add a, add_two, add_and_count, fetch, add f, add k, add g: outermost calls only
    for store_id in ("board", "board:side", "counter"):
        assert fresh.get(store_id).state == app.get(store_id).state  # type: ignore[union-attr]
    # the same calls ran again, in the same order (inner ones from inside their callers), except the one
    # whose argument was not JSON
    assert replayed == [c for c in calls if c[1] not in {"add_tag"} and c[2] != ("#t",)]


async def test_an_unknown_store_or_action_in_a_timeline_is_refused(tmp_path: Path) -> None:
    history = History()
    app = create_app(plugins=[history])
    app.use(Counter).bump(2)
    records = [{**r} for r in load_timeline(_export(history, tmp_path))]
    with pytest.raises(HistoryError, match="pass its class"):
        await replay_actions(create_app(), records, stores=[])
    records[0]["call"] = {**records[0]["call"], "action": "nope"}
    with pytest.raises(HistoryError, match="no action 'nope'"):
        await replay_actions(create_app(), records, stores=[Counter])


def _export(history: History, tmp_path: Path) -> Path:
    path = tmp_path / "t.jsonl"
    history.export(path)
    return path
