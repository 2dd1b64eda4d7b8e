"""Where persisted store data lives: the :class:`Storage` interface, SQLite (the default) and a JSON file.

A storage maps string keys to text (JSON). Every backend is safe to call from any thread and replaces a
value atomically: a reader, or a process killed in the middle of a write, sees the old value or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["JSONFileStorage", "MemoryStorage", "SQLiteStorage", "Storage"]


@runtime_checkable
class Storage(Protocol):
    """A key -> text store. ``write`` must be atomic (all of the new value or none of it)."""

    def read(self, key: str) -> str | None: ...

    def write(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryStorage:
    """A dict in memory (tests, or state that should survive a store's dispose but not the process)."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def write(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def __repr__(self) -> str:
        return f"<MemoryStorage keys={len(self._data)}>"


class SQLiteStorage:
    """One row per key in an SQLite file (WAL journal), written in one transaction per value.

    Several processes may share the file: SQLite serialises the writers (``busy_timeout`` waits for the
    lock) and a reader sees the last committed value. Each thread gets its own connection.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, table: str = "quvel_persist", timeout: float = 5.0
    ) -> None:
        if not table.isidentifier():
            raise ValueError(f"SQLiteStorage table must be an identifier, not {table!r}")
        self.path = Path(path)
        self.table = table
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                " updated REAL NOT NULL DEFAULT (julianday('now')))"
            )
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def read(self, key: str) -> str | None:
        row = self._connection().execute(f"SELECT value FROM {self.table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def write(self, key: str, value: str) -> None:
        conn = self._connection()
        with _transaction(conn):
            conn.execute(
                f"INSERT INTO {self.table} (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = julianday('now')",
                (key, value),
            )

    def delete(self, key: str) -> None:
        conn = self._connection()
        with _transaction(conn):
            conn.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        return [str(r[0]) for r in self._connection().execute(f"SELECT key FROM {self.table} ORDER BY key")]

    def close(self) -> None:
        """Close every connection this object opened (they reopen on the next call)."""
        with self._lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<SQLiteStorage {str(self.path)!r}>"


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class JSONFileStorage:
    """All keys in one JSON object in a file, replaced atomically (write a temp file, fsync, rename).

    Meant for one process: two processes writing the same file keep whichever wrote last.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            # The whole file is unreadable: keep it aside once and start over, never crash.
            self.path.replace(self.path.with_name(self.path.name + ".corrupt"))
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}

    def _save(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self, key: str) -> str | None:
        with self._lock:
            return self._load().get(key)

    def write(self, key: str, value: str) -> None:
        with self._lock:
            data = self._load()
            data[key] = value
            self._save(data)

    def delete(self, key: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(key, None) is not None:
                self._save(data)

    def __repr__(self) -> str:
        return f"<JSONFileStorage {str(self.path)!r}>"
