"""Mutation history and time travel: ``app.use_plugin(History())``, then ``store.undo()``, ``store.redo()``,
``store.jump_to(n)``, ``store.history`` per store and ``history.undo()`` (also ``app.undo()``) across stores.

Every commit is recorded with its store, kind, action name and arguments, changed paths and the snapshots
before and after it (snapshots share structure, so a record costs the path the commit copied). The state of
a store is always "its base state, then its active commits in order". Undo deactivates the newest undoable
commit and rebuilds from the state before it by re-applying the commits that stay active after it, so a
commit that is not undoable (hydration, an opted-out action such as one fed by a live channel) is never
removed by undoing something older: items that arrived from the server after the undone commit stay.
Undo, redo and jump are themselves one commit each and are not recorded.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel

from quvel_store._events import MutationEvent, MutationKind
from quvel_store._plugins import PluginContext
from quvel_store.errors import QuvelError

if TYPE_CHECKING:
    from quvel_store._actions import ActionCall
    from quvel_store._app import App
    from quvel_store._store import Store

__all__ = ["Commit", "History", "HistoryError", "StoreHistory", "load_timeline", "replay"]

logger = logging.getLogger(__name__)

TIMELINE_FORMAT = 1
_CALLS_KEPT = 4096  # arguments of this many recent action calls are kept to label their commits
_ENTRY_OVERHEAD = 200  # bytes: the record itself, its event and its before/after references


class HistoryError(QuvelError):
    """A history plugin used wrongly (a second app), or a timeline file that cannot be read."""


@dataclass(slots=True, eq=False)
class Commit:
    """One recorded commit. ``active`` is False once undone; ``redoable`` until a new commit drops it."""

    seq: int
    store_id: str
    kind: MutationKind
    action: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    changed: frozenset[tuple[str | int, ...]]
    payload: Any
    before: BaseModel
    after: BaseModel
    undoable: bool
    size: int
    time: float = field(default_factory=time.time)
    active: bool = True
    redoable: bool = False
    travel: bool = False  # an undo/redo/jump made this commit (in the timeline, never undone itself)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "store": self.store_id,
            "kind": str(self.kind),
            "action": self.action,
            "args": _jsonable(list(self.args)),
            "kwargs": _jsonable(self.kwargs),
            "changed": sorted(".".join(str(p) for p in path) for path in self.changed),
            "undoable": self.undoable,
            "active": self.active,
            "travel": self.travel,
            "state": self.after.model_dump(mode="json"),
        }


class _Log:
    """One store instance's commits (oldest first) and the markers of history's own rewrites."""

    __slots__ = ("commits", "last", "markers", "redoable", "skip_actions", "skip_all", "store")

    def __init__(self, store: Store[Any], skip_actions: frozenset[str], skip_all: bool) -> None:
        self.store = store
        self.commits: deque[Commit] = deque()
        self.last: BaseModel = store.state
        self.markers: list[BaseModel] = []
        self.redoable = 0  # how many commits are redoable (a new undoable commit drops them)
        self.skip_actions = skip_actions
        self.skip_all = skip_all


class StoreHistory(Sequence[Commit]):
    """``store.history``: the store's recorded commits, oldest first, plus undo/redo/jump for it."""

    def __init__(self, history: History, log: _Log) -> None:
        self._history = history
        self._log = log

    def __len__(self) -> int:
        return len(self._log.commits)

    def __getitem__(self, index: int) -> Commit:  # type: ignore[override]
        return self._log.commits[index]

    def __iter__(self) -> Iterator[Commit]:
        return iter(tuple(self._log.commits))

    @property
    def can_undo(self) -> bool:
        return any(c.active and c.undoable for c in self._log.commits)

    @property
    def can_redo(self) -> bool:
        return any(c.redoable for c in self._log.commits)

    def __repr__(self) -> str:
        return f"<StoreHistory {self._log.store.store_id!r} commits={len(self)}>"


class History:
    """A plugin recording every commit of every store, bounded by ``limit`` commits and ``max_bytes``.

    Opt out per action with ``skip={"chat.receive", ...}`` (``store_id.action`` or a bare action name) or
    with a ``history_skip = ("receive",)`` class attribute on the store; ``history_skip = True`` leaves a
    store's commits out of undo entirely. Commits of ``hydrate`` are never undoable.
    """

    def __init__(
        self, limit: int = 10_000, *, max_bytes: int | None = None, skip: Collection[str] = ()
    ) -> None:
        if limit < 1:
            raise ValueError(f"History(limit=...) must be >= 1, not {limit!r}")
        self.limit = limit
        self.max_bytes = max_bytes
        self.skip = frozenset(skip)
        self.app: App | None = None
        self.bytes = 0
        self._timeline: deque[Commit] = deque()
        self._logs: dict[str, _Log] = {}
        self._seq = 0
        self._calls: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    # ---- the plugin -----------------------------------------------------------------------------------
    def __call__(self, ctx: PluginContext) -> Mapping[str, Any]:
        if self.app is None:
            self.app = ctx.app
            for name, fn in (("undo", self.undo), ("redo", self.redo), ("jump_to", self.jump_to)):
                if not hasattr(ctx.app, name):
                    setattr(ctx.app, name, fn)
            ctx.app.__dict__.setdefault("history", self)
        elif self.app is not ctx.app:
            raise HistoryError("a History records one app; create one History per app")
        store = ctx.store
        option = ctx.options.get("history_skip", ())
        skip_all = option is True
        names = frozenset(() if isinstance(option, bool) else option)
        log = _Log(store, names, skip_all)
        self._logs[store.store_id] = log
        store.on_action(self._on_action)
        store.subscribe(lambda event, state: self._record(log, event, state))
        view = StoreHistory(self, log)
        return {
            "history": view,
            "undo": lambda: self._undo_in(log),
            "redo": lambda: self._redo_in(log),
            "jump_to": lambda index: self._jump_in(log, index),
        }

    def _on_action(self, call: ActionCall) -> None:
        calls = self._calls
        calls[call.call_id] = (call.args, call.kwargs)
        if len(calls) > _CALLS_KEPT:  # forget the oldest calls (a long-running action's args too)
            for call_id in list(calls)[: _CALLS_KEPT // 2]:
                del calls[call_id]

    def _record(self, log: _Log, event: MutationEvent, state: BaseModel) -> None:
        if log.markers and _is_own(event, log.markers):
            # exported so a replay passes through the same states; not part of the store's undo log
            self._seq += 1
            travel = Commit(
                self._seq,
                event.store_id,
                event.kind,
                None,
                (),
                {},
                event.changed,
                None,
                log.last,
                state,
                False,
                _ENTRY_OVERHEAD,
                travel=True,
            )
            log.last = state
            self._timeline.append(travel)
            self.bytes += travel.size
            self._trim()
            return
        action = event.action
        args, kwargs = self._calls.get(event.action_id, ((), {})) if event.action_id is not None else ((), {})
        undoable = not (
            log.skip_all
            or event.kind is MutationKind.HYDRATE
            or (
                action is not None
                and (
                    action in log.skip_actions
                    or action in self.skip
                    or f"{event.store_id}.{action}" in self.skip
                )
            )
        )
        size = _ENTRY_OVERHEAD
        for path in event.changed:
            if path:  # the container the commit copied (its pointer array); shared parts cost nothing
                size += sys.getsizeof(getattr(state, str(path[0]), None))
        self._seq += 1
        commit = Commit(
            self._seq,
            event.store_id,
            event.kind,
            action,
            args,
            kwargs,
            event.changed,
            event.payload,
            log.last,
            state,
            undoable,
            size,
        )
        log.last = state
        if undoable and log.redoable:
            for old in log.commits:
                old.redoable = False
            log.redoable = 0
        log.commits.append(commit)
        self._timeline.append(commit)
        self.bytes += size
        self._trim()

    def _trim(self) -> None:
        timeline = self._timeline
        while len(timeline) > self.limit or (
            self.max_bytes is not None and self.bytes > self.max_bytes and len(timeline) > 1
        ):
            oldest = timeline.popleft()
            self.bytes -= oldest.size
            log = self._logs.get(oldest.store_id)
            if log is not None and log.commits and log.commits[0] is oldest:  # travel commits are not in it
                log.commits.popleft()

    # ---- time travel ----------------------------------------------------------------------------------
    def _rebuild(self, log: _Log, start: Commit) -> None:
        """Set the store to ``start.before`` plus every active commit from ``start`` on, in one commit."""
        store = log.store
        tail = [c for c in log.commits if c.seq >= start.seq and c.active]
        log.markers.append(start.before)
        try:
            if not tail:
                store.replace(start.before)
            elif len(tail) == 1 and tail[0] is start and tail[0] is log.commits[-1]:
                with store.batch():
                    store.replace(start.before)
                    store.replace(start.after)  # exact, no replay needed
            else:
                with store.batch():
                    store.replace(start.before)
                    for commit in tail:
                        _reapply(store, commit)
        except BaseException:
            log.markers.remove(start.before)
            raise

    def _undo_in(self, log: _Log) -> bool:
        target = next((c for c in reversed(log.commits) if c.active and c.undoable), None)
        if target is None:
            return False
        target.active = False
        target.redoable = True
        log.redoable += 1
        self._rebuild(log, target)
        return True

    def _redo_in(self, log: _Log) -> bool:
        target = next((c for c in log.commits if c.redoable), None)
        if target is None:
            return False
        target.active = True
        target.redoable = False
        log.redoable -= 1
        self._rebuild(log, target)
        return True

    def _jump_in(self, log: _Log, index: int) -> None:
        """Make the store's state the one after ``store.history[index]`` (-1: before the first recorded
        commit); undoable commits after it become redoable, non-undoable ones stay applied."""
        commits = log.commits
        if not -1 <= index < len(commits):
            raise IndexError(f"jump_to({index}): the store has {len(commits)} recorded commits")
        first: Commit | None = None
        for i, commit in enumerate(commits):
            if not commit.undoable or not (commit.active or commit.redoable):
                continue
            want = i <= index
            if want != commit.active:
                commit.active, commit.redoable = want, not want
                log.redoable += -1 if want else 1
                if first is None:
                    first = commit
        if first is not None:
            self._rebuild(log, first)

    def undo(self) -> bool:
        """Undo the newest undoable commit of any store (``app.undo()``); False if there is none."""
        best = max(
            (
                (c, log)
                for log in self._logs.values()
                if not log.store.disposed
                for c in log.commits
                if c.active and c.undoable
            ),
            key=lambda pair: pair[0].seq,
            default=None,
        )
        return best is not None and self._undo_in(best[1])

    def redo(self) -> bool:
        """Redo the oldest undone commit of any store (``app.redo()``); False if there is none."""
        best = min(
            (
                (c, log)
                for log in self._logs.values()
                if not log.store.disposed
                for c in log.commits
                if c.redoable
            ),
            key=lambda pair: pair[0].seq,
            default=None,
        )
        return best is not None and self._redo_in(best[1])

    def jump_to(self, seq: int) -> None:
        """Set every store to its state as of timeline commit ``seq`` (``Commit.seq``; 0: before all)."""
        for log in self._logs.values():
            if log.store.disposed:
                continue
            index = -1
            for i, commit in enumerate(log.commits):
                if commit.seq <= seq:
                    index = i
            self._jump_in(log, index)

    # ---- the timeline ---------------------------------------------------------------------------------
    @property
    def timeline(self) -> tuple[Commit, ...]:
        """Every recorded commit of every store, oldest first (within the bounds)."""
        return tuple(self._timeline)

    def __len__(self) -> int:
        return len(self._timeline)

    def export(self, target: str | Path | IO[str]) -> int:
        """Write the timeline as JSON Lines (one commit per line, with the state after it); returns the
        number of commits written."""
        lines = [json.dumps({"quvel_timeline": TIMELINE_FORMAT, "commits": len(self._timeline)})]
        lines.extend(json.dumps(c.to_json(), ensure_ascii=False) for c in self._timeline)
        text = "\n".join(lines) + "\n"
        if isinstance(target, str | Path):
            Path(target).write_text(text, encoding="utf-8")
        else:
            target.write(text)
        return len(self._timeline)

    def clear(self) -> None:
        """Forget every recorded commit (the stores keep their state)."""
        self._timeline.clear()
        for log in self._logs.values():
            log.commits.clear()
            log.last = log.store.state
        self.bytes = 0

    def __repr__(self) -> str:
        return f"<History commits={len(self._timeline)} bytes~{self.bytes}>"


def _is_own(event: MutationEvent, markers: list[BaseModel]) -> bool:
    """Whether ``event`` is history's own rewrite (its first write replaces with a marked snapshot)."""
    payload = event.payload
    if event.kind is MutationKind.BATCH and payload:
        payload = payload[0][1] if payload[0][0] is MutationKind.REPLACE else None
    elif event.kind is not MutationKind.REPLACE:
        return False
    for i, marker in enumerate(markers):
        if payload is marker:
            del markers[i]
            return True
    return False


def _reapply(store: Store[Any], commit: Commit) -> None:
    writes: Iterable[tuple[MutationKind, Any]] = (
        commit.payload if commit.kind is MutationKind.BATCH else ((commit.kind, commit.payload),)
    )
    for kind, payload in writes:
        try:
            if kind is MutationKind.PATCH_OBJECT or kind is MutationKind.PATCH_FUNCTION:
                store.patch(payload)
            elif kind is MutationKind.RESET:
                store.reset()
            else:  # replace, hydrate
                store.replace(payload)
        except Exception:
            logger.exception("store %r: re-applying commit %d failed; skipped", store.store_id, commit.seq)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(
            json.dumps(
                value, default=lambda v: v.model_dump(mode="json") if isinstance(v, BaseModel) else repr(v)
            )
        )


def load_timeline(source: str | Path | IO[str]) -> list[dict[str, Any]]:
    """The commits of an exported timeline (JSON Lines), oldest first."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, str | Path) else source.read()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise HistoryError(f"timeline line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise HistoryError(f"timeline line {number} is not an object")
        if "quvel_timeline" in record:
            if record["quvel_timeline"] != TIMELINE_FORMAT:
                raise HistoryError(f"timeline format {record['quvel_timeline']!r} is not {TIMELINE_FORMAT}")
            continue
        records.append(record)
    return records


def replay(
    app: App,
    timeline: Iterable[Mapping[str, Any]],
    *,
    stores: Iterable[type[Store[Any]]] = (),
    on_commit: Callable[[Mapping[str, Any]], object] | None = None,
) -> None:
    """Apply an exported timeline to ``app``, commit by commit: each store passes through the same
    states, validated by its model, and ends in the same final state. Store classes must be registered
    (``create_app(stores=...)``) or given as ``stores``."""
    app.register(*stores)
    for record in timeline:
        store_id = str(record["store"])
        live = app.get(store_id)
        if live is None:
            app.hydrate({store_id: record["state"]})
        else:
            live.replace(record["state"])
        if on_commit is not None:
            on_commit(record)
