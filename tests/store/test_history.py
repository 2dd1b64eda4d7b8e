"""History: undo/redo/jump per store and per app, server commits that survive undo, bounds, replay, CLI."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from quvel_store import Store, action, create_app
from quvel_store.history import History, load_timeline, replay

ROOT = Path(__file__).resolve().parents[2]


class Board(BaseModel):
    items: list[str] = []
    title: str = ""
    count: int = 0


class BoardStore(Store[Board]):
    id = "board"
    history_skip = ("receive",)

    @action
    def add(self, item: str) -> None:
        self.patch(lambda s: s.items.append(item))

    @action(atomic=True)
    def add_two(self, a: str, b: str) -> None:
        self.add(a)
        with self.batch():  # nested: still one commit
            self.add(b)
            self.patch({"count": self.state.count + 2})

    @action
    def receive(self, item: str) -> None:  # fed by a live channel: not undoable
        self.patch(lambda s: s.items.append(f"srv:{item}"))


class Other(BaseModel):
    n: int = 0


class OtherStore(Store[Other]):
    id = "other"


def test_undo_redo_and_recorded_arguments() -> None:
    app = create_app(plugins=[History()])
    board = app.use(BoardStore)
    board.add("a")
    board.patch({"title": "T"})
    assert [c.action for c in board.history] == ["add", None]  # type: ignore[attr-defined]
    assert board.history[0].args == ("a",)  # type: ignore[attr-defined]
    assert board.undo()
    assert board.state == Board(items=["a"])
    assert board.undo()
    assert board.state == Board()
    assert not board.undo()  # type: ignore[attr-defined]
    assert board.redo()
    assert board.state == Board(items=["a"])
    board.add("b")  # a new commit drops what could be redone
    assert not board.redo()
    assert board.state == Board(items=["a", "b"])
    app.dispose()


def test_nested_transactions_are_one_step() -> None:
    app = create_app(plugins=[History()])
    board = app.use(BoardStore)
    board.add("x")
    board.add_two("a", "b")
    assert board.state == Board(items=["x", "a", "b"], count=2)
    board.undo()  # type: ignore[attr-defined]
    assert board.state == Board(items=["x"])
    board.redo()  # type: ignore[attr-defined]
    assert board.state == Board(items=["x", "a", "b"], count=2)
    with board.batch():
        board.patch({"title": "t"})
        with board.batch():
            board.add("c")
    board.undo()  # type: ignore[attr-defined]
    assert board.state == Board(items=["x", "a", "b"], count=2)
    app.dispose()


def test_undo_never_removes_what_the_server_sent_afterwards() -> None:
    app = create_app(plugins=[History()])
    board = app.use(BoardStore)
    board.add("mine")
    board.receive("1")
    board.undo()  # type: ignore[attr-defined]
    assert board.state.items == ["srv:1"]
    board.receive("2")  # arrives while "mine" is undone
    board.redo()  # type: ignore[attr-defined]
    assert board.state.items == ["mine", "srv:1", "srv:2"]
    assert not board.history[1].undoable  # type: ignore[attr-defined]
    board.jump_to(-1)  # type: ignore[attr-defined]
    assert board.state.items == ["srv:1", "srv:2"]
    board.jump_to(0)  # type: ignore[attr-defined]
    assert board.state.items == ["mine", "srv:1", "srv:2"]
    app.dispose()


def test_app_undo_across_stores_and_jump() -> None:
    history = History()
    app = create_app(plugins=[history])
    board, other = app.use(BoardStore), app.use(OtherStore)
    board.add("a")
    other.patch({"n": 1})
    board.add("b")
    app.undo()
    assert board.state.items == ["a"]
    assert other.state.n == 1
    app.undo()
    assert other.state.n == 0
    app.redo()
    assert other.state.n == 1
    assert board.state.items == ["a"]
    history.jump_to(1)
    assert board.state.items == ["a"]
    assert other.state.n == 0
    history.jump_to(3)
    assert board.state.items == ["a", "b"]
    assert other.state.n == 1
    app.dispose()


def test_subscribers_see_one_commit_per_undo() -> None:
    app = create_app(plugins=[History()])
    board = app.use(BoardStore)
    board.add("a")
    board.receive("1")
    seen: list[list[str]] = []
    board.subscribe(lambda e, s: seen.append(list(s.items)))
    board.undo()  # type: ignore[attr-defined]
    assert seen == [["srv:1"]]
    app.dispose()


def test_bounded_by_count_and_bytes() -> None:
    history = History(limit=1000)
    app = create_app(plugins=[history])
    other = app.use(OtherStore)
    for i in range(100_000):
        other.patch({"n": i})
    assert len(history) == 1000
    assert len(other.history) == 1000
    assert other.history[0].after.n == 99_000  # type: ignore[attr-defined]
    app.dispose()
    small = History(max_bytes=10_000)
    app = create_app(plugins=[small])
    board = app.use(BoardStore)
    for i in range(500):
        board.add(str(i))
    assert small.bytes <= 10_000
    assert 0 < len(small) < 500
    app.dispose()


def test_one_history_per_app() -> None:
    history = History()
    create_app(plugins=[history]).use(OtherStore)
    with pytest.raises(Exception, match="one History per app"):
        create_app(plugins=[history]).use(OtherStore)


def test_replay_of_an_exported_timeline_reaches_the_same_final_state(tmp_path: Path) -> None:
    history = History()
    app = create_app(plugins=[history])
    board, other = app.use(BoardStore), app.use(OtherStore)
    board.add("a")
    board.receive("1")
    board.add_two("b", "c")
    other.patch({"n": 7})
    board.undo()  # type: ignore[attr-defined]
    board.receive("2")
    board.redo()  # type: ignore[attr-defined]
    board.add("d")
    board.undo()  # type: ignore[attr-defined]
    path = tmp_path / "bug.jsonl"
    assert history.export(path) == len(history)
    records = load_timeline(path)
    assert len(records) == len(history)
    fresh = create_app(stores=[BoardStore, OtherStore])
    states: list[object] = []
    replay(fresh, records, on_commit=lambda r: states.append(r["state"]))
    assert fresh.use(BoardStore).state == board.state
    assert fresh.use(OtherStore).state == other.state
    app.dispose()
    fresh.dispose()


def test_quvel_timeline_prints_a_table(tmp_path: Path) -> None:
    history = History()
    app = create_app(plugins=[history])
    app.use(BoardStore).add("hello")
    app.use(BoardStore).receive("1")
    buf = io.StringIO()
    history.export(buf)
    path = tmp_path / "t.jsonl"
    path.write_text(buf.getvalue() + "garbage\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "quvel", "timeline", str(path), "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "COLUMNS": "200", "PATH": ""},
        check=True,
    ).stdout
    assert 'add("hello")' in out
    assert "no-undo" in out
    assert "not JSON" in out
    app.dispose()


class FirstStore(Store[Board]):
    id = "first"
    history_skip = ("rename_first",)

    @action
    def add(self, item: str) -> None:
        self.patch(lambda s: s.items.append(item))

    @action
    def rename_first(self, name: str) -> None:  # not undoable; only fits while an item exists
        def edit(s: Board) -> None:
            s.items[0] = name

        self.patch(edit)

    @action
    def outer(self, a: str, b: str) -> None:
        self.add(a)
        self.add(b)
        self.patch({"title": f"{a}+{b}"})  # the outer call commits after two inner calls


def test_undo_inside_an_open_batch_is_refused_and_changes_nothing() -> None:
    from quvel_store.history import HistoryError

    app = create_app(plugins=[History()])
    board = app.use(BoardStore)
    board.add("a")
    with board.batch():
        board.add("b")
        with pytest.raises(HistoryError, match="inside an open batch"):
            board.undo()  # type: ignore[attr-defined]
        with pytest.raises(HistoryError, match="inside an open batch"):
            app.undo()
    assert board.state.items == ["a", "b"]
    assert board.undo()  # type: ignore[attr-defined]
    assert board.state.items == ["a"]
    app.dispose()


def test_a_commit_that_no_longer_applies_is_reported_on_store_errors() -> None:
    from quvel_store.history import HistoryError

    app = create_app(plugins=[History()])
    store = app.use(FirstStore)
    errors: list[object] = []
    store.errors.subscribe(errors.append)
    store.add("a")
    store.rename_first("srv")
    assert store.undo()  # type: ignore[attr-defined]  # the rename cannot be re-applied to an empty list
    assert store.state.items == []
    assert len(errors) == 1
    event = errors[0]
    assert event.source == "history"  # type: ignore[attr-defined]
    assert isinstance(event.error, HistoryError)  # type: ignore[attr-defined]
    assert "re-applying commit #2" in str(event.error)  # type: ignore[attr-defined]
    app.dispose()


def test_typed_app_history_and_call_arguments_of_nested_actions() -> None:
    from quvel_store.history import HistoryError

    plain = create_app()
    with pytest.raises(HistoryError, match="records no history"):
        plain.undo()
    history = History()
    app = create_app(plugins=[history])
    assert app.history is history
    store = app.use(FirstStore)
    store.outer("x", "y")
    store.add(item="z")
    assert [(c.action, c.args, c.kwargs) for c in app.history.timeline] == [
        ("add", ("x",), {}),
        ("add", ("y",), {}),
        ("outer", ("x", "y"), {}),
        ("add", (), {"item": "z"}),
    ]
    app.jump_to(0)
    assert store.state == Board()
    app.dispose()


def test_kept_snapshots_keep_their_own_fields_set() -> None:
    """Commits share an unchanged fields-set between snapshots; a field set for the first time must give
    the new snapshot its own set, never add to one an older snapshot (or the history) still holds."""
    app = create_app(plugins=[History()])
    board = app.use(BoardStore)
    board.patch({"count": 1})
    board.patch({"count": 2})
    board.patch({"title": "t"})
    board.patch({"title": "u", "count": 3})
    sets = [(c.before.model_fields_set, c.after.model_fields_set) for c in board.history]  # type: ignore[attr-defined]
    assert sets == [
        (set(), {"count"}),
        ({"count"}, {"count"}),
        ({"count"}, {"count", "title"}),
        ({"count", "title"}, {"count", "title"}),
    ]
    assert board.state.model_dump(exclude_unset=True) == {"count": 3, "title": "u"}
    board.undo()  # type: ignore[attr-defined]
    board.undo()  # type: ignore[attr-defined]
    assert board.state.model_dump(exclude_unset=True) == {"count": 2}
