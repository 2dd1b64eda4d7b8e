"""Property tests of drafts: any sequence of edits, committed or rolled back, matches plain Python lists and
dicts, and snapshots taken along the way never change (this exercises the in-place append path)."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from quvel_store import Store, create_app


class Row(BaseModel):
    id: int
    tag: str = ""


class Table(BaseModel):
    rows: list[Row] = []
    names: list[str] = []
    index: dict[str, int] = {}


class TableStore(Store[Table]):
    id = "table"


def apply(op: tuple[Any, ...], target: Any, plain: bool) -> None:
    """Run one edit on the draft (``plain=False``) or on a plain dict model (``plain=True``)."""
    kind = op[0]
    rows = target["rows"] if plain else target.rows
    names = target["names"] if plain else target.names
    index = target["index"] if plain else target.index
    if kind == "append":
        rows.append({"id": op[1], "tag": ""} if plain else Row(id=op[1]))
    elif kind == "extend":
        names.extend(op[1])
    elif kind == "tag" and len(rows) > 0:
        i = op[1] % len(rows)
        if plain:
            rows[i]["tag"] = op[2]
        else:
            rows[i].tag = op[2]
    elif kind == "pop" and len(names) > 0:
        names.pop(op[1] % len(names))
    elif kind == "sort":
        names.sort()
    elif kind == "set_name" and len(names) > 0:
        names[op[1] % len(names)] = op[2]
    elif kind == "put":
        index[op[1]] = op[2]
    elif kind == "drop" and op[1] in index:
        del index[op[1]]


ops = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 1000)),
    st.tuples(st.just("extend"), st.lists(st.text(max_size=3), max_size=3)),
    st.tuples(st.just("tag"), st.integers(0, 50), st.text(max_size=3)),
    st.tuples(st.just("pop"), st.integers(0, 50)),
    st.tuples(st.just("sort")),
    st.tuples(st.just("set_name"), st.integers(0, 50), st.text(max_size=3)),
    st.tuples(st.just("put"), st.sampled_from("abcd"), st.integers(0, 9)),
    st.tuples(st.just("drop"), st.sampled_from("abcd")),
)
patches = st.lists(
    st.tuples(st.lists(ops, min_size=1, max_size=6), st.booleans(), st.booleans()), max_size=25
)


@settings(max_examples=150, deadline=None)
@given(patches)
def test_drafts_behave_like_python_and_snapshots_never_change(
    script: list[tuple[list[Any], bool, bool]],
) -> None:
    app = create_app()
    store = app.use(TableStore)
    model: dict[str, Any] = {"rows": [], "names": [], "index": {}}
    held: list[tuple[Table, dict[str, Any]]] = []
    for edits, fail, hold in script:

        def change(draft: Table, edits: list[Any] = edits, fail: bool = fail) -> None:
            for op in edits:
                apply(op, draft, plain=False)
            if fail:
                raise RuntimeError("roll back")

        with contextlib.suppress(RuntimeError):
            store.patch(change)
        if not fail:
            for op in edits:
                apply(op, model, plain=True)
        assert store.state.model_dump() == model
        if hold:
            held.append((store.state, copy.deepcopy(model)))
    for snapshot, expected in held:
        assert snapshot.model_dump() == expected
    app.dispose()
