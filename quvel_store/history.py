"""Mutation history and time travel: ``app.use_plugin(History())``, then ``store.undo()``, ``store.redo()``,
``store.jump_to(n)``, ``store.history`` per store and ``app.undo()`` / ``app.redo()`` across stores.

Every commit is recorded with its store, action and arguments and the snapshots before and after it. A store's
state is "its base state, then its active commits in order": undo deactivates the newest undoable commit and
rebuilds from the state before it, re-applying the commits still active after it, so a commit that is not
undoable (hydration, an opted-out action fed by a live channel) is never removed by undoing an older one.
Undo, redo and jump are one commit each, kept in the timeline as "travel" commits, never undone.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel

from quvel_store._events import MutationEvent, MutationKind
from quvel_store._plugins import PluginContext
from quvel_store._runtime import RecordedCall
from quvel_store._store import is_batching, is_patching, report_error
from quvel_store._timeline import TIMELINE_FORMAT, HistoryError, load_timeline, replay, replay_actions

if TYPE_CHECKING:
    from quvel_store._app import App
    from quvel_store._store import Store

__all__ = ["Commit", "History", "HistoryError", "StoreHistory", "load_timeline", "replay", "replay_actions"]

logger = logging.getLogger(__name__)

_CALLS_KEPT = 4096  # arguments of this many recent action calls are kept to label their commits
_ENTRY_OVERHEAD = 200  # bytes: the record itself, its event and its before/after references

# A recorded commit is a plain list (the cheapest mutable record to build on every commit); the public
# view is Commit. Everything else (JSON, sizes, undoability, the per-store lists) is derived on demand.
_EVENT, _BEFORE, _AFTER, _LOG, _SEQ, _TIME, _CALL, _FLAGS = range(8)
_UNDONE, _REDOABLE, _TRAVEL = 1, 2, 4
_now = time.time
Entry = list[Any]


class Commit:
    """One recorded commit (a live view: ``active`` turns False once undone, ``redoable`` until a new
    commit drops it). ``travel`` marks the commit an undo/redo/jump made (in the timeline, never undone)."""

    __slots__ = ("_entry",)

    def __init__(self, entry: Entry) -> None:
        self._entry = entry

    @property
    def seq(self) -> int:
        return int(self._entry[_SEQ])

    @property
    def store_id(self) -> str:
        return str(self._entry[_EVENT].store_id)

    @property
    def kind(self) -> MutationKind:
        return MutationKind(self._entry[_EVENT].kind)

    @property
    def action(self) -> str | None:
        return None if self.travel else self._entry[_EVENT].action

    @property
    def args(self) -> tuple[Any, ...]:
        call = self._entry[_CALL]
        return () if call is None else call[1]

    @property
    def kwargs(self) -> dict[str, Any]:
        call = self._entry[_CALL]
        return {} if call is None else call[2]

    @property
    def changed(self) -> frozenset[tuple[str | int, ...]]:
        return self._entry[_EVENT].changed  # type: ignore[no-any-return]

    @property
    def payload(self) -> Any:
        return None if self.travel else self._entry[_EVENT].payload

    @property
    def before(self) -> BaseModel:
        return self._entry[_BEFORE]  # type: ignore[no-any-return]

    @property
    def after(self) -> BaseModel:
        return self._entry[_AFTER]  # type: ignore[no-any-return]

    @property
    def time(self) -> float:
        return float(self._entry[_TIME])

    @property
    def undoable(self) -> bool:
        entry = self._entry
        return not entry[_FLAGS] & _TRAVEL and entry[_LOG].undoable(entry[_EVENT])

    @property
    def active(self) -> bool:
        return not self._entry[_FLAGS] & _UNDONE

    @property
    def redoable(self) -> bool:
        return bool(self._entry[_FLAGS] & _REDOABLE)

    @property
    def travel(self) -> bool:
        return bool(self._entry[_FLAGS] & _TRAVEL)

    @property
    def size(self) -> int:
        """Approximate bytes this record keeps alive (see ``History(max_bytes=...)``)."""
        return _size(self._entry)

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
            "call": _call_json(self._entry),
        }

    def __eq__(self, other: object) -> bool:  # two views of one record are equal
        return isinstance(other, Commit) and other._entry is self._entry

    def __hash__(self) -> int:
        return id(self._entry)

    def __repr__(self) -> str:
        call = f" {self.action}{self.args!r}" if self.action else ""
        return f"<Commit #{self.seq} {self.store_id} {self.kind}{call}{' undone' if not self.active else ''}>"


def _find_call(calls: deque[RecordedCall], call_id: int) -> RecordedCall | None:
    """The recorded call ``call_id``: usually the newest (an action committing), else a few back (an outer
    action committing after inner calls)."""
    if calls and calls[-1][0] == call_id:
        return calls[-1]
    for call in reversed(calls):
        if call[0] == call_id:
            return call
        if call[0] < call_id:
            break  # call ids only grow
    return None


def _outermost(calls: deque[RecordedCall], call: RecordedCall) -> RecordedCall | None:
    """The call that led to ``call`` (the one made from outside any action); None if no longer kept."""
    while call[5] is not None:
        parent = _find_call(calls, call[5][2])
        if parent is None:
            return None
        call = parent
    return call


def _call_json(entry: Entry) -> dict[str, Any] | None:
    """The outermost action call behind a commit, for ``replay_actions``: ``exact`` when its arguments
    are JSON as they were (so calling it again gets the same arguments)."""
    call = entry[_CALL]
    if call is None or entry[_FLAGS] & _TRAVEL:
        return None
    if len(call) > 6:
        call = call[6]
        if call is None:
            return {"id": None, "exact": False}
    try:
        exact = json.loads(json.dumps([call[1], call[2]])) == [list(call[1]), call[2]]
    except (TypeError, ValueError):
        exact = False
    return {
        "id": call[0],
        "store": call[3],
        "action": call[4],
        "args": _jsonable(list(call[1])),
        "kwargs": _jsonable(call[2]),
        "exact": exact,
    }


def _size(entry: Entry) -> int:
    size = _ENTRY_OVERHEAD
    state = entry[_AFTER]
    for path in entry[_EVENT].changed:
        if path:  # the container the commit copied (its pointer array); shared parts cost nothing
            size += sys.getsizeof(getattr(state, str(path[0]), None))
    return size


class _Log:
    """One store instance: records its commits into the app's timeline (``record`` is its subscriber)
    and knows which of its commits may be undone."""

    __slots__ = (
        "append",
        "calls",
        "counter",
        "history",
        "last",
        "markers",
        "redoable",
        "skip_actions",
        "skip_all",
        "store",
        "timeline",
        "view",
    )

    def __init__(
        self, history: History, store: Store[Any], skip_actions: frozenset[str], skip_all: bool
    ) -> None:
        self.history = history
        self.store = store
        self.timeline = history.entries
        self.calls = history.calls
        self.counter = history.counter
        # the count bound is the deque's maxlen; max_bytes needs the sizes counted
        self.append = history.entries.append if history.max_bytes is None else history.append_bounded
        self.last: BaseModel = store.state  # the state before the next commit (commits arrive in order)
        self.markers: list[BaseModel] = []  # the first write of each rewrite history itself is making
        self.redoable = 0  # how many commits are redoable (a new undoable commit drops them)
        self.skip_actions = skip_actions | history.skip
        self.skip_all = skip_all
        self.view: tuple[object, int, list[Entry]] = (None, 0, [])  # cache of entries() (see there)

    def record(self, event: MutationEvent, state: BaseModel) -> None:
        """Keep the commit: references only (snapshots are immutable), nothing derived. (The hot path: a
        list, a counter and an append.)"""
        action_id = event.action_id
        call: tuple[Any, ...] | None  # a RecordedCall, plus its outermost call when it is nested
        if action_id is None:
            call = None
        else:
            calls = self.calls  # the action committing is almost always the newest call
            call = calls[-1] if calls and calls[-1][0] == action_id else _find_call(calls, action_id)
            if call is not None and call[5] is not None:  # a nested call: keep its outermost call too
                call = (*call, _outermost(calls, call))
        entry = [event, self.last, state, self, next(self.counter), _now(), call, 0]
        self.last = state
        if self.markers or self.redoable:
            self.rare_cases(entry)
        self.append(entry)

    def rare_cases(self, entry: Entry) -> None:
        event = entry[_EVENT]
        if self.markers and _is_own(event, self.markers):
            entry[_FLAGS] = _TRAVEL  # exported so a replay passes the same states; never undone itself
        elif self.redoable and self.undoable(event):
            self.drop_redo()  # a new commit: what was undone can no longer be redone

    def undoable(self, event: MutationEvent) -> bool:
        if self.skip_all or event.kind is MutationKind.HYDRATE:
            return False
        action = event.action
        skip = self.skip_actions
        return action is None or not (action in skip or f"{event.store_id}.{action}" in skip)

    def entries(self) -> list[Entry]:
        """This store's commits in the timeline (travel commits left out), oldest first; cached until
        the timeline changes (a new last entry, or a different length)."""
        timeline = self.timeline
        last = timeline[-1] if timeline else None
        seen, length, entries = self.view
        if seen is not last or length != len(timeline):
            entries = [e for e in timeline if e[_LOG] is self and not e[_FLAGS] & _TRAVEL]
            self.view = (last, len(timeline), entries)
        return entries

    def drop_redo(self) -> None:
        for entry in self.entries():
            entry[_FLAGS] &= ~_REDOABLE
        self.redoable = 0

    def can_undo(self, entry: Entry) -> bool:
        return not entry[_FLAGS] & _UNDONE and self.undoable(entry[_EVENT])


class StoreHistory(Sequence[Commit]):
    """``store.history``: the store's recorded commits, oldest first, plus undo/redo/jump for it."""

    def __init__(self, history: History, log: _Log) -> None:
        self._history = history
        self._log = log

    def __len__(self) -> int:
        return len(self._log.entries())

    def __getitem__(self, index: int) -> Commit:  # type: ignore[override]
        return Commit(self._log.entries()[index])

    def __iter__(self) -> Iterator[Commit]:
        return iter([Commit(e) for e in self._log.entries()])

    @property
    def can_undo(self) -> bool:
        log = self._log
        return any(log.can_undo(e) for e in log.entries())

    @property
    def can_redo(self) -> bool:
        return any(e[_FLAGS] & _REDOABLE for e in self._log.entries())

    def __repr__(self) -> str:
        return f"<StoreHistory {self._log.store.store_id!r} commits={len(self)}>"


class History:
    """A plugin recording every commit of every store, bounded by ``limit`` commits and ``max_bytes``.

    Opt out per action with ``skip={"chat.receive", ...}`` (``store_id.action`` or a bare action name) or
    with a ``history_skip = ("receive",)`` class attribute on the store; ``history_skip = True`` leaves a
    store's commits out of undo entirely. Commits of ``hydrate`` are never undoable.

    Recording keeps references only (the commit's event and the immutable snapshots before and after it);
    records, JSON and sizes are built when you read them.
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
        self.entries: deque[Entry] = deque(maxlen=limit)
        # recent action calls (see RecordedCall), newest last (the runtime appends them)
        self.calls: deque[RecordedCall] = deque(maxlen=_CALLS_KEPT)
        self.counter = itertools.count(1)
        self._bytes = 0  # kept only with max_bytes
        self._logs: dict[str, _Log] = {}

    # ---- the plugin -----------------------------------------------------------------------------------
    def __call__(self, ctx: PluginContext) -> Mapping[str, Any]:
        if self.app is None:
            runtime = ctx.app.runtime
            if runtime.record_call is not None:
                raise HistoryError("this app already records action calls: use one History per app")
            self.app = ctx.app
            runtime.record_call = self.calls.append
        elif self.app is not ctx.app:
            raise HistoryError("a History records one app; create one History per app")
        store = ctx.store
        option = ctx.options.get("history_skip", ())
        skip_all = option is True
        names = frozenset(() if isinstance(option, bool) else option)
        log = _Log(self, store, names, skip_all)
        self._logs[store.store_id] = log
        store.subscribe(log.record)
        view = StoreHistory(self, log)
        return {
            "history": view,
            "undo": lambda: self._undo_in(log),
            "redo": lambda: self._redo_in(log),
            "jump_to": lambda index: self._jump_in(log, index),
        }

    def append_bounded(self, entry: Entry) -> None:
        """Append under ``max_bytes`` too (the count bound alone is the deque's maxlen)."""
        timeline = self.entries
        if len(timeline) == self.limit:
            self._bytes -= _size(timeline[0])
        timeline.append(entry)
        self._bytes += _size(entry)
        assert self.max_bytes is not None
        while self._bytes > self.max_bytes and len(timeline) > 1:
            self._bytes -= _size(timeline.popleft())

    @property
    def bytes(self) -> int:
        """Approximate bytes the kept records hold (see ``Commit.size``)."""
        if self.max_bytes is not None:
            return self._bytes
        return sum(_size(e) for e in self.entries)

    # ---- time travel ----------------------------------------------------------------------------------
    def _rebuild(self, log: _Log, start: Entry) -> None:
        """Set the store to the state before ``start`` plus every active commit from ``start`` on, in one
        commit. A commit that no longer applies is skipped and reported on ``store.errors``."""
        store = log.store
        seq = start[_SEQ]
        entries = log.entries()
        tail = [e for e in entries if e[_SEQ] >= seq and not e[_FLAGS] & _UNDONE]
        before = start[_BEFORE]
        log.markers.append(before)
        try:
            if not tail:
                store.replace(before)
            elif len(tail) == 1 and tail[0] is start and start is entries[-1]:
                with store.batch():
                    store.replace(before)
                    store.replace(start[_AFTER])  # exact, no replay needed
            else:
                failed: list[tuple[int, Exception]] = []
                with store.batch():
                    store.replace(before)
                    for entry in tail:
                        _reapply(store, entry, failed)
                for number, exc in failed:
                    report_error(
                        store,
                        "history",
                        HistoryError(
                            f"store {store.store_id!r}: re-applying commit #{number} failed ({exc!r}); "
                            f"it was skipped, the rest of the history was applied"
                        ),
                    )
        except BaseException:
            if before in log.markers:
                log.markers.remove(before)
            raise

    def _check_can_travel(self, log: _Log, what: str) -> None:
        store = log.store
        if is_batching(store) or is_patching(store):
            raise HistoryError(
                f"store {store.store_id!r}: {what} inside an open batch() or atomic action is refused "
                f"(it would rewrite commits the batch has not made yet); call it after the batch ends"
            )
        if is_batching(store, any_task=True):
            raise HistoryError(
                f"store {store.store_id!r}: {what} while another task holds a batch() or atomic action open "
                f"on it is refused (that batch would then end in TransactionConflictError and lose its "
                f"writes); call it after the batch ends"
            )

    def _undo_in(self, log: _Log) -> bool:
        self._check_can_travel(log, "undo()")
        target = next((e for e in reversed(log.entries()) if log.can_undo(e)), None)
        if target is None:
            return False
        target[_FLAGS] |= _UNDONE | _REDOABLE
        log.redoable += 1
        self._rebuild(log, target)
        return True

    def _redo_in(self, log: _Log) -> bool:
        self._check_can_travel(log, "redo()")
        target = next((e for e in log.entries() if e[_FLAGS] & _REDOABLE), None)
        if target is None:
            return False
        target[_FLAGS] &= ~(_UNDONE | _REDOABLE)
        log.redoable -= 1
        self._rebuild(log, target)
        return True

    def _jump_in(self, log: _Log, index: int) -> None:
        """Make the store's state the one after ``store.history[index]`` (-1: before the first recorded
        commit); undoable commits after it become redoable, non-undoable ones stay applied."""
        self._check_can_travel(log, "jump_to()")
        entries = log.entries()
        if not -1 <= index < len(entries):
            raise IndexError(f"jump_to({index}): the store has {len(entries)} recorded commits")
        first: Entry | None = None
        for i, entry in enumerate(entries):
            flags = entry[_FLAGS]
            if not log.undoable(entry[_EVENT]) or (flags & _UNDONE and not flags & _REDOABLE):
                continue
            want = i <= index
            if want == bool(flags & _UNDONE):
                entry[_FLAGS] = flags & ~(_UNDONE | _REDOABLE) if want else flags | _UNDONE | _REDOABLE
                log.redoable += -1 if want else 1
                if first is None:
                    first = entry
        if first is not None:
            self._rebuild(log, first)

    def undo(self) -> bool:
        """Undo the newest undoable commit of any store (``app.undo()``); False if there is none."""
        for entry in reversed(self.entries):
            log: _Log = entry[_LOG]
            if not entry[_FLAGS] & _TRAVEL and not log.store.disposed and log.can_undo(entry):
                return self._undo_in(log)
        return False

    def redo(self) -> bool:
        """Redo the oldest undone commit of any store (``app.redo()``); False if there is none."""
        for entry in self.entries:
            log: _Log = entry[_LOG]
            if entry[_FLAGS] & _REDOABLE and not log.store.disposed:
                return self._redo_in(log)
        return False

    def jump_to(self, seq: int) -> None:
        """Set every store to its state as of timeline commit ``seq`` (``Commit.seq``; 0: before all)."""
        for log in self._logs.values():
            if log.store.disposed:
                continue
            index = -1
            for i, entry in enumerate(log.entries()):
                if entry[_SEQ] <= seq:
                    index = i
            self._jump_in(log, index)

    # ---- the timeline ---------------------------------------------------------------------------------
    @property
    def timeline(self) -> tuple[Commit, ...]:
        """Every recorded commit of every store, oldest first (within the bounds)."""
        return tuple(Commit(e) for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def export(self, target: str | Path | IO[str]) -> int:
        """Write the timeline as JSON Lines (one commit per line, with the state after it); returns the
        number of commits written."""
        commits = self.timeline
        lines = [json.dumps({"quvel_timeline": TIMELINE_FORMAT, "commits": len(commits)})]
        lines.extend(json.dumps(c.to_json(), ensure_ascii=False) for c in commits)
        text = "\n".join(lines) + "\n"
        if isinstance(target, str | Path):
            Path(target).write_text(text, encoding="utf-8")
        else:
            target.write(text)
        return len(commits)

    def clear(self) -> None:
        """Forget every recorded commit (the stores keep their state)."""
        self.entries.clear()
        for log in self._logs.values():
            log.last = log.store.state
            log.redoable = 0
        self._bytes = 0

    def __repr__(self) -> str:
        return f"<History commits={len(self.entries)} bytes~{self.bytes}>"


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


def _reapply(store: Store[Any], entry: Entry, failed: list[tuple[int, Exception]]) -> None:
    event: MutationEvent = entry[_EVENT]
    writes: Iterable[tuple[MutationKind, Any]] = (
        event.payload if event.kind is MutationKind.BATCH else ((event.kind, event.payload),)
    )
    for kind, payload in writes:
        try:
            if kind is MutationKind.PATCH_OBJECT or kind is MutationKind.PATCH_FUNCTION:
                store.patch(payload)
            elif kind is MutationKind.RESET:
                store.reset()
            else:  # replace, hydrate
                store.replace(payload)
        except Exception as exc:
            logger.debug("store %r: re-applying commit %d failed: %r", store.store_id, entry[_SEQ], exc)
            failed.append((entry[_SEQ], exc))


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
