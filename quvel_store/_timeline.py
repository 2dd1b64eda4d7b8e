"""Exported timelines (JSON Lines written by ``History.export``): reading one, and replaying it into a
fresh app, either by states (``replay``: the exact states, commit by commit) or by actions
(``replay_actions``: the recorded action calls run again, so the app's own code reproduces them)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from quvel_store.errors import QuvelError

if TYPE_CHECKING:
    from quvel_store._app import App
    from quvel_store._store import Store

__all__ = ["TIMELINE_FORMAT", "HistoryError", "load_timeline", "replay", "replay_actions"]

TIMELINE_FORMAT = 1


class HistoryError(QuvelError):
    """History used wrongly (a second app, undo inside a batch, no History on the app), or a timeline
    file that cannot be read or replayed."""


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
        _apply_state(app, record)
        if on_commit is not None:
            on_commit(record)


async def replay_actions(
    app: App,
    timeline: Iterable[Mapping[str, Any]],
    *,
    stores: Iterable[type[Store[Any]]],
    on_call: Callable[[Mapping[str, Any]], object] | None = None,
) -> int:
    """Replay an exported timeline by running its action calls again on ``app``; returns how many calls ran.

    Each outermost action call (the one a user or a channel made; the actions it called run inside it) is
    called once, with its recorded arguments, where its first commit was; an async action is awaited
    before the next record. Commits that no action made (patches, hydration, undo and redo) and commits
    of calls whose arguments were not JSON as recorded (``"exact": false``) are applied as their recorded
    states instead. ``stores`` are the store classes the timeline's stores are made from. Code that reads
    something else (the clock, the network) may of course end elsewhere: compare with ``replay``.
    """
    classes = {cls.id: cls for cls in stores}
    app.register(*classes.values())
    ran: set[int] = set()
    by_state: set[int] = set()  # calls replayed as their states: their later commits are states too
    for record in timeline:
        call = record.get("call")
        if call is None or call.get("id") is None or record.get("travel"):
            _apply_state(app, record)
            continue
        call_id = int(call["id"])
        if call_id in ran:
            continue  # a commit the call already made when it ran again
        if call_id in by_state or not call.get("exact"):
            by_state.add(call_id)
            _apply_state(app, record)
            continue
        store = _store_for(app, str(call["store"]), classes)
        method = getattr(store, str(call["action"]), None)
        if method is None or getattr(method, "__quvel_action__", None) is None:
            raise HistoryError(
                f"timeline call #{call_id}: store {store.store_id!r} has no action {call['action']!r}"
            )
        ran.add(call_id)
        result = method(*call.get("args", ()), **call.get("kwargs", {}))
        if inspect.isawaitable(result):
            await result
        if on_call is not None:
            on_call(call)
    return len(ran)


def _apply_state(app: App, record: Mapping[str, Any]) -> None:
    store_id = str(record["store"])
    live = app.get(store_id)
    if live is None:
        app.hydrate({store_id: record["state"]})
    else:
        live.replace(record["state"])


def _store_for(app: App, store_id: str, classes: Mapping[str, type[Store[Any]]]) -> Store[Any]:
    live = app.get(store_id)
    if live is not None:
        return live
    base, key = (store_id, "") if store_id in classes else store_id.partition(":")[::2]
    cls = classes.get(base)
    if cls is None:
        raise HistoryError(f"timeline store {store_id!r}: pass its class in replay_actions(stores=...)")
    return app.use(cls, key) if key else app.use(cls)
