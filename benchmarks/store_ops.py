"""Store benchmark: quvel_store against python-redux 0.25 and pystorex 0.2.1, same workloads, same run.

Workloads (per library):
  patches    100,000 commits that set one field, with 10 subscribers attached
  appends    20,000 items appended one commit at a time to a list field, one subscriber attached;
             reports the time of each quarter so growth from 5,000 to 20,000 items is visible
  selectors  1,000 selectors (each reads its own field); each commit changes one field, so only one
             selector's value changes; reports time per commit and how many selector functions ran

  history    (quvel only) the patches workload, and 20,000 commits through a sync action, with and without
             History(limit=10,000) in the same run (best of 5, interleaved); reports the overhead ratio while
             the history fills (first 10,000) and once it is full (next 10,000, each evicting the oldest);
             CPU time. `--history` runs only this section (and persist)
  persist    (quvel only) 20,000 patches of a store with Persist(debounce=0.2) on SQLite against the same
             store without it (the cost on the event loop), and the cost of one synchronous SQLite write

Run:  pip install "python-redux==0.25.*" "pystorex==0.2.1"  (or pip install -e ".[bench]")
      python benchmarks/store_ops.py            # full sizes
      python benchmarks/store_ops.py --quick    # 10x smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, create_model

from quvel_store import Store, action, create_app
from quvel_store.history import History
from quvel_store.persist import Persist, SQLiteStorage

Result = dict[str, Any]


# ---------------------------------------------------------------------------------------------------------
# quvel_store
# ---------------------------------------------------------------------------------------------------------


class QItem(BaseModel):
    id: int
    title: str
    read: bool = False


class QState(BaseModel):
    count: int = 0
    items: list[QItem] = []


class QStore(Store[QState]):
    id = "bench"


def quvel_patches(n: int, subscribers: int) -> Result:
    app = create_app()
    store = app.use(QStore)
    calls = [0]

    def listener(_event: Any, _state: Any) -> None:
        calls[0] += 1

    for _ in range(subscribers):
        store.subscribe(listener)
    start = time.perf_counter()
    for i in range(n):
        store.patch({"count": i})
    elapsed = time.perf_counter() - start
    _check(store.state.count == n - 1 and calls[0] == n * subscribers, "quvel patches")
    app.dispose()
    return {"seconds": elapsed, "per_commit_us": elapsed / n * 1e6}


def quvel_appends(n: int) -> Result:
    app = create_app()
    store = app.use(QStore)
    seen = [0]
    store.subscribe(lambda _e, s: seen.__setitem__(0, len(s.items)))
    marks = _marks(n)
    times: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        item = QItem(id=i, title="item")
        store.patch(lambda s, item=item: s.items.append(item))
        if i + 1 in marks:
            times.append(time.perf_counter() - start)
    _check(seen[0] == n and len(store.state.items) == n, "quvel appends")
    app.dispose()
    return _append_result(n, times)


def quvel_selectors(n_selectors: int, commits: int) -> Result:
    fields: dict[str, Any] = {f"f{i}": (int, 0) for i in range(n_selectors)}
    wide = create_model("Wide", **fields)

    class WideStore(Store[wide]):  # type: ignore[valid-type]
        id = "wide"

    app = create_app()
    store = app.use(WideStore)
    evaluations = [0]
    changes = [0]

    def make(name: str) -> Callable[[Any], Any]:
        def select(state: Any) -> Any:
            evaluations[0] += 1
            return getattr(state, name)

        return select

    for i in range(n_selectors):
        store.select(make(f"f{i}")).subscribe(lambda _v: changes.__setitem__(0, changes[0] + 1))
    evaluations[0] = 0
    changes[0] = 0
    start = time.perf_counter()
    for c in range(commits):
        store.patch({"f0": c + 1})
    elapsed = time.perf_counter() - start
    app.dispose()
    return {
        "seconds": elapsed,
        "per_commit_us": elapsed / commits * 1e6,
        "selector_runs_per_commit": evaluations[0] / commits,
        "emissions_per_commit": changes[0] / commits,
    }


# ---------------------------------------------------------------------------------------------------------
# python-redux (sassanh), Immutable dataclass state, reducers
# ---------------------------------------------------------------------------------------------------------


def _redux() -> Any:
    import redux

    return redux


def redux_patches(n: int, subscribers: int) -> Result:
    redux = _redux()
    from immutable import Immutable

    class State(Immutable):
        count: int
        items: tuple[Any, ...]

    class SetCount(redux.BaseAction):  # type: ignore[misc,name-defined]
        value: int

    def reducer(state: State | None, action: Any) -> State:
        if state is None:
            return State(count=0, items=())
        if isinstance(action, SetCount):
            return dataclasses.replace(state, count=action.value)
        return state

    store = redux.Store(reducer, redux.StoreOptions(auto_init=True))
    calls = [0]

    def make_listener() -> Callable[[Any], None]:
        def listener(_state: Any) -> None:
            calls[0] += 1

        return listener

    listeners = [make_listener() for _ in range(subscribers)]
    for listener in listeners:
        store._subscribe(listener)  # its per-commit listener hook (autorun is built on it)
    calls[0] = 0
    try:
        start = time.perf_counter()
        for i in range(n):
            store.dispatch(SetCount(value=i))
        elapsed = time.perf_counter() - start
        _check(store._state.count == n - 1 and calls[0] == n * subscribers, "redux patches")
    finally:
        store.clean_up()
    return {"seconds": elapsed, "per_commit_us": elapsed / n * 1e6}


def redux_appends(n: int) -> Result:
    redux = _redux()
    from immutable import Immutable

    class Item(Immutable):
        id: int
        title: str
        read: bool

    class State(Immutable):
        count: int
        items: tuple[Item, ...]

    class Append(redux.BaseAction):  # type: ignore[misc,name-defined]
        item: Item

    def reducer(state: State | None, action: Any) -> State:
        if state is None:
            return State(count=0, items=())
        if isinstance(action, Append):
            return dataclasses.replace(state, items=(*state.items, action.item))
        return state

    store = redux.Store(reducer, redux.StoreOptions(auto_init=True))
    seen = [0]

    def listener(state: State) -> None:
        seen[0] = len(state.items)

    store._subscribe(listener)
    marks = _marks(n)
    times: list[float] = []
    try:
        start = time.perf_counter()
        for i in range(n):
            store.dispatch(Append(item=Item(id=i, title="item", read=False)))
            if i + 1 in marks:
                times.append(time.perf_counter() - start)
        _check(seen[0] == n, "redux appends")
    finally:
        store.clean_up()
    return _append_result(n, times)


def redux_selectors(n_selectors: int, commits: int) -> Result:
    redux = _redux()
    wide = dataclasses.make_dataclass("Wide", [(f"f{i}", int, 0) for i in range(n_selectors)], frozen=True)

    class SetF0(redux.BaseAction):  # type: ignore[misc,name-defined]
        value: int

    def reducer(state: Any, action: Any) -> Any:
        if state is None:
            return wide()
        if isinstance(action, SetF0):
            return dataclasses.replace(state, f0=action.value)
        return state

    store = redux.Store(reducer, redux.StoreOptions(auto_init=True))
    evaluations = [0]
    changes = [0]
    autoruns = []

    def make(name: str) -> Callable[[Any], Any]:
        def select(state: Any) -> Any:
            evaluations[0] += 1
            return getattr(state, name)

        return select

    for i in range(n_selectors):

        def body(_value: Any) -> None:
            changes[0] += 1

        autoruns.append(store.autorun(make(f"f{i}"))(body))
    evaluations[0] = 0
    changes[0] = 0
    try:
        start = time.perf_counter()
        for c in range(commits):
            store.dispatch(SetF0(value=c + 1))
        elapsed = time.perf_counter() - start
    finally:
        store.clean_up()
    return {
        "seconds": elapsed,
        "per_commit_us": elapsed / commits * 1e6,
        "selector_runs_per_commit": evaluations[0] / commits,
        "emissions_per_commit": changes[0] / commits,
    }


# ---------------------------------------------------------------------------------------------------------
# pystorex (NgRx-style on reactivex), immutables.Map state
# ---------------------------------------------------------------------------------------------------------


def pystorex_patches(n: int, subscribers: int) -> Result:
    import pystorex

    set_count = pystorex.create_action("[Bench] set count", lambda value: value)
    reducer = pystorex.create_reducer(
        {"count": 0, "items": []},
        pystorex.on(set_count, lambda state, action: state.set("count", action.payload)),
    )
    store = pystorex.create_store()
    store.register_root({"bench": reducer})
    calls = [0]

    def listener(_pair: Any) -> None:
        calls[0] += 1

    subs = [store.select().subscribe(listener) for _ in range(subscribers)]
    start = time.perf_counter()
    for i in range(n):
        store.dispatch(set_count(i))
    elapsed = time.perf_counter() - start
    _check(store.state["bench"]["count"] == n - 1 and calls[0] == n * subscribers, "pystorex patches")
    for sub in subs:
        sub.dispose()
    return {"seconds": elapsed, "per_commit_us": elapsed / n * 1e6}


def pystorex_appends(n: int) -> Result:
    import pystorex
    from immutables import Map

    append = pystorex.create_action("[Bench] append", lambda item: item)
    reducer = pystorex.create_reducer(
        {"count": 0, "items": []},
        pystorex.on(append, lambda state, action: state.set("items", (*state["items"], action.payload))),
    )
    store = pystorex.create_store()
    store.register_root({"bench": reducer})
    seen = [0]
    store.select(lambda s: s["bench"]["items"]).subscribe(lambda pair: seen.__setitem__(0, len(pair[1])))
    marks = _marks(n)
    times: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        store.dispatch(append(Map(id=i, title="item", read=False)))
        if i + 1 in marks:
            times.append(time.perf_counter() - start)
    _check(seen[0] == n, "pystorex appends")
    return _append_result(n, times)


def pystorex_selectors(n_selectors: int, commits: int) -> Result:
    import pystorex

    set_f0 = pystorex.create_action("[Bench] set f0", lambda value: value)
    reducer = pystorex.create_reducer(
        {f"f{i}": 0 for i in range(n_selectors)},
        pystorex.on(set_f0, lambda state, action: state.set("f0", action.payload)),
    )
    store = pystorex.create_store()
    store.register_root({"wide": reducer})
    evaluations = [0]
    changes = [0]

    def make(name: str) -> Callable[[Any], Any]:
        def select(state: Any) -> Any:
            evaluations[0] += 1
            return state["wide"][name]

        return select

    subs = [
        store.select(make(f"f{i}")).subscribe(lambda _pair: changes.__setitem__(0, changes[0] + 1))
        for i in range(n_selectors)
    ]
    evaluations[0] = 0
    start = time.perf_counter()
    for c in range(commits):
        store.dispatch(set_f0(c + 1))
    elapsed = time.perf_counter() - start
    for sub in subs:
        sub.dispose()
    return {
        "seconds": elapsed,
        "per_commit_us": elapsed / commits * 1e6,
        "selector_runs_per_commit": evaluations[0] / commits,
        "emissions_per_commit": changes[0] / commits,
    }


# ---------------------------------------------------------------------------------------------------------
# harness
# ---------------------------------------------------------------------------------------------------------


def _check(ok: bool, what: str) -> None:
    """Every run verifies its own result, so a broken workload cannot report a fast time."""
    if not ok:
        raise RuntimeError(f"benchmark sanity check failed: {what}")


def _marks(n: int) -> set[int]:
    return {n // 4, n // 2, 3 * n // 4, n}


def _append_result(n: int, times: list[float]) -> Result:
    quarters = [times[0]] + [b - a for a, b in itertools.pairwise(times)]
    q = n // 4
    return {
        "seconds": times[-1],
        "per_commit_us": times[-1] / n * 1e6,
        "quarter_us_per_append": [t / q * 1e6 for t in quarters],
        # 4.0 = linear (each quarter costs the same); 16.0 = quadratic
        "growth_first_quarter_to_all": times[-1] / times[0],
    }


class QCounterStore(Store[QState]):
    id = "bench-actions"

    @action
    def bump(self, i: int) -> None:
        self.patch({"count": i})


def _history_run(n: int, with_history: bool, actions: bool) -> tuple[float, float]:
    """µs per commit while the history fills (the first n/2 commits, limit n/2) and once it is full (the
    next n/2, each recorded commit evicting the oldest): keeping snapshots alive costs the garbage
    collector work only while the number kept grows."""
    half = max(n // 2, 1)
    app = create_app(plugins=[History(limit=half)] if with_history else [])
    if actions:
        counter = app.use(QCounterStore)
        counter.subscribe(lambda _e, _s: None)
        step: Callable[[int], None] = counter.bump
    else:
        store = app.use(QStore)
        for _ in range(10):
            store.subscribe(lambda _e, _s: None)

        def step(i: int) -> None:
            store.patch({"count": i})

    clock = time.process_time  # CPU time: other processes on a shared machine do not count
    t0 = clock()
    for i in range(half):
        step(i)
    t1 = clock()
    for i in range(half, 2 * half):
        step(i)
    t2 = clock()
    state = counter.state if actions else store.state
    _check(state.count == 2 * half - 1, "history run")
    app.dispose()
    return (t1 - t0) / half * 1e6, (t2 - t1) / half * 1e6


def quvel_history_patches(n: int, with_history: bool) -> tuple[float, float]:
    return _history_run(n, with_history, actions=False)


def quvel_history_actions(n: int, with_history: bool) -> tuple[float, float]:
    return _history_run(n, with_history, actions=True)


def quvel_persist_patches(n: int, path: str | None) -> float:
    class Persisted(Store[QState]):
        id = "bench-persist"
        if path is not None:
            persist = Persist(storage=SQLiteStorage(path), debounce=0.2)

    app = create_app()
    store = app.use(Persisted)
    start = time.perf_counter()
    for i in range(n):
        store.patch({"count": i})
    elapsed = time.perf_counter() - start
    app.dispose()  # flushes (not timed: off the commit path)
    _check(store.state.count == n - 1, "persist patches")
    return elapsed / n * 1e6


def sqlite_write_us(path: str, n: int) -> float:
    storage = SQLiteStorage(path)
    value = json.dumps(
        {"version": 1, "data": QState(items=[QItem(id=i, title="t") for i in range(50)]).model_dump()}
    )
    start = time.perf_counter()
    for _ in range(n):
        storage.write("k", value)
    elapsed = time.perf_counter() - start
    storage.close()
    return elapsed / n * 1e6


def history_and_persist(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, fn in (("patches", quvel_history_patches), ("actions", quvel_history_actions)):
        plain: list[tuple[float, float]] = []
        recorded: list[tuple[float, float]] = []
        for _ in range(5):
            gc.collect()
            plain.append(fn(n, False))
            gc.collect()
            recorded.append(fn(n, True))
        for phase, i in (("filling", 0), ("full", 1)):
            out[f"{label}_{phase}_plain_us"] = min(r[i] for r in plain)
            out[f"{label}_{phase}_history_us"] = min(r[i] for r in recorded)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        plain_p: list[float] = []
        persisted: list[float] = []
        for _ in range(3):
            gc.collect()
            plain_p.append(quvel_persist_patches(n, None))
            gc.collect()
            persisted.append(quvel_persist_patches(n, db))
        out["persist_plain_us"], out["persist_us"] = min(plain_p), min(persisted)
        out["sqlite_write_us"] = sqlite_write_us(db, 500)
    return out


def _run(fn: Callable[..., Result], *args: Any) -> Result:
    gc.collect()
    return fn(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10x smaller workloads (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--history", action="store_true", help="only the history and persist section")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    if args.history:
        _print_history_and_persist(history_and_persist(20_000 // scale))
        return 0
    n_patches, n_appends, n_selectors, selector_commits = (
        100_000 // scale,
        20_000 // scale,
        1_000,
        500 // scale,
    )

    results: dict[str, dict[str, Result]] = {"patches": {}, "appends": {}, "selectors": {}}
    libraries: list[tuple[str, Callable[..., Result], Callable[..., Result], Callable[..., Result]]] = [
        ("quvel_store", quvel_patches, quvel_appends, quvel_selectors),
        ("python-redux", redux_patches, redux_appends, redux_selectors),
        ("pystorex", pystorex_patches, pystorex_appends, pystorex_selectors),
    ]
    for name, patches, appends, selectors in libraries:
        results["patches"][name] = _run(patches, n_patches, 10)
        results["appends"][name] = _run(appends, n_appends)
        results["selectors"][name] = _run(selectors, n_selectors, selector_commits)

    print(f"Python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    print(
        f"patches: {n_patches:,} commits, 10 subscribers | appends: {n_appends:,} items, 1 subscriber | "
        f"selectors: {n_selectors:,} selectors, {selector_commits:,} commits\n"
    )
    header = f"{'workload':<10} {'library':<13} {'µs/commit':>10} {'vs quvel':>9}  notes"
    print(header)
    print("-" * len(header))
    for workload, per_lib in results.items():
        base = per_lib["quvel_store"]["per_commit_us"]
        for name, r in per_lib.items():
            notes = ""
            if workload == "appends":
                quarters = " / ".join(f"{q:.1f}" for q in r["quarter_us_per_append"])
                notes = (
                    f"µs per append by quarter: {quarters}; total(20k)/total(5k) = "
                    f"{r['growth_first_quarter_to_all']:.1f} (4 = linear, 16 = quadratic)"
                )
            elif workload == "selectors":
                notes = (
                    f"selector functions run per commit: {r['selector_runs_per_commit']:.0f}, "
                    f"emissions per commit: {r['emissions_per_commit']:.0f}"
                )
            ratio = r["per_commit_us"] / base
            print(f"{workload:<10} {name:<13} {r['per_commit_us']:>10.2f} {ratio:>8.1f}x  {notes}")
    extra = history_and_persist(20_000 // scale)
    print()
    _print_history_and_persist(extra)
    results["history_persist"] = {"quvel_store": dict(extra)}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


def _print_history_and_persist(extra: dict[str, float]) -> None:
    for label in ("patches", "actions"):
        for phase in ("filling", "full"):
            plain, rec = extra[f"{label}_{phase}_plain_us"], extra[f"{label}_{phase}_history_us"]
            print(
                f"history    {label:<8}{phase:<8} {plain:>6.2f} -> {rec:.2f} µs/commit with History(): "
                f"x{rec / plain:.2f}"
            )
    plain, rec = extra["persist_plain_us"], extra["persist_us"]
    print(
        f"persist    patches       {plain:>7.2f} -> {rec:.2f} µs/commit with Persist(SQLite, debounce=0.2): "
        f"x{rec / plain:.2f}; one SQLite write (50 items) {extra['sqlite_write_us']:.0f} µs, off the loop"
    )


if __name__ == "__main__":
    sys.exit(main())
