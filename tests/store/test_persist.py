"""Persistence: migrations, bad stored values, SSR order, debounce, real processes on one file."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from quvel_store import Config, ServiceContainer, Store, StoreErrorEvent, create_app
from quvel_store.persist import (
    JSONFileStorage,
    MemoryStorage,
    Persist,
    PersistVersionError,
    SQLiteStorage,
    StoredDataError,
)

ROOT = Path(__file__).resolve().parents[2]


class Prefs(BaseModel):
    theme: str = "light"
    font_size: int = 12
    draft: str = ""


def make_store(storage: Any, **options: Any) -> type[Store[Prefs]]:
    class PrefsStore(Store[Prefs]):
        id = "prefs"
        persist = Persist(storage=storage, debounce=0, **options)

    return PrefsStore


def test_round_trip_and_include(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "app.db")
    cls = make_store(storage, include={"theme", "font_size"})
    app = create_app()
    app.use(cls).patch({"theme": "dark", "draft": "unsent"})
    app.dispose()
    assert json.loads(storage.read("prefs") or "")["data"] == {"theme": "dark", "font_size": 12}
    again = create_app().use(cls)
    assert again.state == Prefs(theme="dark")  # the draft was not kept


def test_migrations_run_in_order_across_three_versions(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "app.db")
    storage.write("prefs", json.dumps({"version": 1, "data": {"colour": "dark", "size": "14"}}))
    seen: list[int] = []

    def v1(d: dict[str, Any]) -> dict[str, Any]:
        seen.append(1)
        return {"theme": d["colour"], "size": d["size"]}

    def v2(d: dict[str, Any]) -> dict[str, Any]:
        seen.append(2)
        return {"theme": d["theme"], "font_size": int(d["size"])}

    cls = make_store(storage, version=3, migrations={1: v1, 2: v2})
    app = create_app()
    store = app.use(cls)
    assert store.state == Prefs(theme="dark", font_size=14)
    assert seen == [1, 2]
    store.patch({"font_size": 15})
    app.dispose()
    assert json.loads(storage.read("prefs") or "")["version"] == 3
    storage.write("prefs", json.dumps({"version": 2, "data": {"theme": "x", "size": "9"}}))
    assert create_app().use(cls).state.font_size == 9
    assert seen == [1, 2, 2]


def test_a_missing_migration_is_refused_at_definition() -> None:
    with pytest.raises(ValueError, match="none for version"):
        Persist(version=3, migrations={1: lambda d: d})


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        json.dumps({"version": 1, "data": {"font_size": "huge"}}),
        json.dumps({"version": 1, "data": {"unknown": 1}}),
        json.dumps(["not", "an", "object"]),
    ],
)
def test_a_bad_stored_value_starts_from_defaults_is_kept_aside_and_reported_once(
    tmp_path: Path, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="quvel_store")  # a handled store error is logged at DEBUG
    storage = SQLiteStorage(tmp_path / "app.db")
    storage.write("prefs", raw)
    errors: list[StoreErrorEvent] = []
    app = create_app(plugins=[lambda ctx: ctx.store.errors.subscribe(errors.append) and None])
    store = app.use(make_store(storage))
    assert store.state == Prefs()
    assert [type(e.error) for e in errors] == [StoredDataError]
    assert errors[0].source == "persist"
    assert storage.read("prefs#backup") == raw
    assert sum("prefs#backup" in r.getMessage() for r in caplog.records) == 1
    store.patch({"theme": "dark"})  # the next write replaces the bad value
    app.dispose()
    assert create_app().use(make_store(storage)).state.theme == "dark"
    assert storage.read("prefs#backup") == raw


def test_a_newer_stored_version_is_refused_and_not_overwritten(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "app.db")
    newer = json.dumps({"version": 5, "data": {"theme": "future"}})
    storage.write("prefs", newer)
    app = create_app()
    store = app.use(make_store(storage, version=2, migrations={1: lambda d: d}))
    assert store.state == Prefs()
    error = store.persistence.error  # type: ignore[attr-defined]
    assert isinstance(error, PersistVersionError)
    assert (error.stored, error.known) == (5, 2)
    store.patch({"theme": "dark"})
    app.dispose()
    assert storage.read("prefs") == newer


def test_key_template_uses_tenant_and_user() -> None:
    storage = MemoryStorage()

    class Draft(Store[Prefs]):
        id = "draft"
        persist = Persist(storage=storage, key="{tenant}/{user}/{store_id}", debounce=0)

    container = ServiceContainer(config=Config(env=False, tenant_id="acme", user="ann"))
    app = create_app(container)
    app.use(Draft, key="room-1").patch({"draft": "hi"})
    assert storage.read("acme/ann/draft:room-1") is not None
    app.dispose()


def test_ssr_snapshot_first_then_persisted_fields_on_top() -> None:
    storage = MemoryStorage()
    cls = make_store(storage, include={"theme"})
    storage.write("prefs", json.dumps({"version": 1, "data": {"theme": "dark"}}))
    app = create_app(stores=[cls])
    app.hydrate({"prefs": {"theme": "server", "font_size": 20}})  # before the store exists
    store = app.use(cls)
    assert store.state == Prefs(theme="dark", font_size=20)  # the user's own field wins, the rest is SSR
    app.hydrate({"prefs": {"theme": "again", "font_size": 21}})  # a live store: the hydrate commit wins
    app.dispose()
    assert json.loads(storage.read("prefs") or "")["data"] == {"theme": "again"}


def test_debounced_writes_on_the_loop_coalesce_and_dispose_flushes() -> None:
    storage = MemoryStorage()

    class Slow(Store[Prefs]):
        id = "prefs"
        persist = Persist(storage=storage, debounce=0.05)

    async def main() -> None:
        app = create_app()
        store = app.use(Slow)
        for size in range(13, 23):
            store.patch({"font_size": size})
        assert storage.read("prefs") is None  # nothing written on the loop thread yet
        deadline = time.monotonic() + 5
        while storage.read("prefs") is None and time.monotonic() < deadline:  # noqa: ASYNC110 (a thread writes)
            await asyncio.sleep(0.01)
        assert store.persistence.writes == 1  # type: ignore[attr-defined]
        assert json.loads(storage.read("prefs") or "")["data"]["font_size"] == 22
        store.patch({"theme": "dark"})
        app.dispose()  # flushes the pending write at once
        assert json.loads(storage.read("prefs") or "")["data"]["theme"] == "dark"

    asyncio.run(main())


def test_without_a_loop_a_timer_thread_writes_and_dispose_flushes() -> None:
    storage = MemoryStorage()

    class Slow(Store[Prefs]):
        id = "prefs"
        persist = Persist(storage=storage, debounce=0.05)

    app = create_app()
    store = app.use(Slow)
    store.patch({"font_size": 30})
    deadline = time.monotonic() + 5
    while storage.read("prefs") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads(storage.read("prefs") or "")["data"]["font_size"] == 30
    store.patch({"font_size": 31})
    store.dispose()
    assert json.loads(storage.read("prefs") or "")["data"]["font_size"] == 31
    app.dispose()


def test_json_file_storage_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    cls = make_store(JSONFileStorage(path))
    app = create_app()
    app.use(cls).patch({"theme": "dark"})
    app.dispose()
    assert create_app().use(cls).state.theme == "dark"
    path.write_text("{truncated", encoding="utf-8")
    assert create_app().use(cls).state == Prefs()
    assert (tmp_path / "state.json.corrupt").read_text(encoding="utf-8") == "{truncated"


WRITER = textwrap.dedent(
    """
    import json, sys
    from quvel_store.persist import SQLiteStorage, JSONFileStorage
    kind, path, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    storage = SQLiteStorage(path) if kind == "sqlite" else JSONFileStorage(path)
    print("ready", flush=True)
    i = 0
    while count < 0 or i < count:
        blob = "x" * (200_000 + i % 7)
        storage.write("shared", json.dumps({"writer": name, "i": i, "blob": blob}))
        storage.write(name, json.dumps({"i": i}))
        i += 1
    """
)


def _writer(kind: str, path: Path, name: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(path), name, str(count)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    procs = [_writer("sqlite", path, name, 40) for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    storage = SQLiteStorage(path)
    assert json.loads(storage.read("a") or "") == {"i": 39}
    assert json.loads(storage.read("b") or "") == {"i": 39}
    last = json.loads(storage.read("shared") or "")
    assert last["writer"] in {"a", "b"}
    assert last["i"] == 39


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "json"])
def test_kill_9_during_writes_leaves_the_last_good_value(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("state.db" if kind == "sqlite" else "state.json")
    for attempt in range(3):
        proc = _writer(kind, path, "a", -1)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.1 * attempt)  # in the middle of a stream of 200 kB writes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        storage = SQLiteStorage(path) if kind == "sqlite" else JSONFileStorage(path)
        raw = storage.read("shared")
        assert raw is not None
        value = json.loads(raw)  # complete, parseable, one writer's whole value
        assert len(value["blob"]) >= 200_000
        if isinstance(storage, SQLiteStorage):
            storage.close()
