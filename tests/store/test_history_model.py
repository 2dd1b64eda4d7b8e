"""Model-based test of History (issue 17): random commits (patches, actions, nested batches with failing
savepoints, batches that fail, non-undoable "server" commits), undo, redo and jump_to, checked after every
step against a reference: the list of commits (their writes, whether undoable, and whether active,
redoable or dropped) folded from the initial state."""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pydantic import BaseModel

from quvel_store import Store, action, create_app
from quvel_store.history import History, HistoryError

EXAMPLES = int(os.environ.get("QUVEL_MODEL_EXAMPLES", "150"))
FIELDS = ("a", "b")
Op = tuple[str, str, Any]  # ("set", field, value) or ("append", "items", value)


class Doc(BaseModel):
    a: int = 0
    b: int = 0
    items: list[int] = []


class DocStore(Store[Doc]):
    id = "doc"
    history_skip = ("receive",)

    @action(atomic=True)
    def set_both(self, a: int, b: int) -> None:
        self.patch({"a": a})
        self.patch({"b": b})

    @action
    def receive(self, item: int) -> None:  # live data: not undoable
        self.patch(lambda s: s.items.append(item))


class Boom(Exception):
    pass


class Entry:
    def __init__(self, ops: list[Op], undoable: bool) -> None:
        self.ops = ops
        self.undoable = undoable
        self.status = "active"  # or "redoable" (undone, can be redone) or "dead" (undone for good)


class HistoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = create_app(plugins=[History(limit=100_000)])
        self.store = self.app.use(DocStore)
        self.entries: list[Entry] = []
        self.values = itertools.count(1)  # every write a new value, so every commit changes the state

    # ---- the reference ------------------------------------------------------------------------------
    def commit(self, ops: list[Op], undoable: bool = True) -> None:
        if undoable:
            for entry in self.entries:
                if entry.status == "redoable":
                    entry.status = "dead"
        self.entries.append(Entry(ops, undoable))

    def expected(self) -> Doc:
        state: dict[str, Any] = {"a": 0, "b": 0, "items": []}
        for entry in self.entries:
            if entry.status != "active":
                continue
            for op, field, value in entry.ops:
                if op == "set":
                    state[field] = value
                else:
                    state["items"] = [*state["items"], value]
        return Doc(**state)

    # ---- commits ------------------------------------------------------------------------------------
    @rule(field=st.sampled_from(FIELDS))
    def patch(self, field: str) -> None:
        value = next(self.values)
        self.store.patch({field: value})
        self.commit([("set", field, value)])

    @rule()
    def append(self) -> None:
        value = next(self.values)
        self.store.patch(lambda s: s.items.append(value))
        self.commit([("append", "items", value)])

    @rule()
    def action_call(self) -> None:
        a, b = next(self.values), next(self.values)
        self.store.set_both(a, b)
        self.commit([("set", "a", a), ("set", "b", b)])

    @rule()
    def server_event(self) -> None:
        value = next(self.values)
        self.store.receive(value)
        self.commit([("append", "items", value)], undoable=False)

    @rule(fail_inner=st.booleans(), fail_outer=st.booleans())
    def nested_batch(self, fail_inner: bool, fail_outer: bool) -> None:
        a, b, item = next(self.values), next(self.values), next(self.values)
        ops: list[Op] = [("set", "a", a)]
        try:
            with self.store.batch():
                self.store.patch({"a": a})
                try:
                    with self.store.batch():  # a savepoint
                        self.store.patch({"b": b})
                        with pytest.raises(HistoryError, match="inside an open batch"):
                            self.store.undo()  # type: ignore[attr-defined]
                        if fail_inner:
                            raise Boom
                    ops.append(("set", "b", b))
                except Boom:
                    pass
                self.store.patch(lambda s: s.items.append(item))
                ops.append(("append", "items", item))
                if fail_outer:
                    raise Boom
        except Boom:
            return  # nothing committed
        self.commit(ops)

    # ---- time travel --------------------------------------------------------------------------------
    @rule(across_app=st.booleans())
    def undo(self, across_app: bool) -> None:
        done = self.app.undo() if across_app else self.store.undo()  # type: ignore[attr-defined]
        target = next((e for e in reversed(self.entries) if e.undoable and e.status == "active"), None)
        assert done == (target is not None)
        if target is not None:
            target.status = "redoable"

    @rule(across_app=st.booleans())
    def redo(self, across_app: bool) -> None:
        done = self.app.redo() if across_app else self.store.redo()  # type: ignore[attr-defined]
        target = next((e for e in self.entries if e.status == "redoable"), None)
        assert done == (target is not None)
        if target is not None:
            target.status = "active"

    @rule(data=st.data())
    def jump(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(-1, len(self.entries) - 1))
        self.store.jump_to(index)  # type: ignore[attr-defined]
        for i, entry in enumerate(self.entries):
            if entry.undoable and entry.status != "dead":
                entry.status = "active" if i <= index else "redoable"

    # ---- checks -------------------------------------------------------------------------------------
    @invariant()
    def state_matches(self) -> None:
        assert self.store.state == self.expected()

    @invariant()
    def history_matches(self) -> None:
        history = self.store.history  # type: ignore[attr-defined]
        assert len(history) == len(self.entries)
        for commit, entry in zip(history, self.entries, strict=True):
            assert commit.undoable == entry.undoable
            assert commit.active == (entry.status == "active")
            assert commit.redoable == (entry.status == "redoable")
        assert history.can_undo == any(e.undoable and e.status == "active" for e in self.entries)
        assert history.can_redo == any(e.status == "redoable" for e in self.entries)


HistoryMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None)
TestHistoryModel = HistoryMachine.TestCase
