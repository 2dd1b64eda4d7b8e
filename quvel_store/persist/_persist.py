"""``Persist``: a store's ``persist`` class attribute, and the per-store object that loads and saves it.

Loading happens once, when the app creates the store (after ``app.hydrate`` data was installed and before
plugins and ``on_init`` run). Saving is debounced: commits mark the store dirty and one write happens
``debounce`` seconds after the first of them, on a worker thread; ``dispose`` and interpreter exit flush.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from quvel_store._store import install_state, prepare_state, report_error
from quvel_store.errors import QuvelError
from quvel_store.persist._storage import SQLiteStorage, Storage

if TYPE_CHECKING:
    from quvel_store._store import Store

__all__ = ["Persist", "PersistError", "PersistVersionError", "Persistence", "StoredDataError"]

logger = logging.getLogger(__name__)

Migration = Callable[[dict[str, Any]], dict[str, Any]]
DEFAULT_PATH = "quvel-state.db"


class PersistError(QuvelError):
    """Base of the persistence errors (reported on ``store.errors`` with source ``"persist"``)."""


class StoredDataError(PersistError):
    """The stored value could not be read, migrated or validated; the store started from its defaults."""

    def __init__(self, key: str, backup_key: str, reason: str) -> None:
        self.key = key
        self.backup_key = backup_key
        super().__init__(
            f"persisted value {key!r} is unusable ({reason}); the store started from its defaults and the "
            f"value was kept under {backup_key!r}"
        )


class PersistVersionError(PersistError):
    """The stored value was written by a newer version of the code; it is left untouched."""

    def __init__(self, key: str, stored: int, known: int) -> None:
        self.key = key
        self.stored = stored
        self.known = known
        super().__init__(
            f"persisted value {key!r} has version {stored} but this code knows up to version {known}; "
            f"the store started from its defaults and will not write over the newer value (upgrade the app, "
            f"or delete the key to start over)"
        )


@dataclass(frozen=True)
class Persist:
    """What to persist for a store class, and where.

    ``storage`` is a storage, or a function ``storage(store)`` making one per store (e.g. from a config
    value; the store closes it on dispose); None means ``SQLiteStorage("quvel-state.db")``.
    ``key`` is a template formatted with ``store_id``, ``id``, ``key`` (the store's key), ``tenant``
    (``config.tenant_id``), ``user`` (``config.get("user")``) and any other config value by name; or a
    function ``key(store) -> str``. ``include``/``exclude`` name top-level fields. ``migrations[n]`` turns
    stored data of version ``n`` into version ``n + 1``. ``debounce`` is in seconds (0 writes at once).
    """

    storage: Storage | Callable[[Store[Any]], Storage] | None = None
    key: str | Callable[[Store[Any]], str] = "{store_id}"
    include: Collection[str] | None = None
    exclude: Collection[str] | None = None
    version: int = 1
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    debounce: float = 0.2

    def __post_init__(self) -> None:
        if self.storage is not None and not isinstance(self.storage, Storage) and not callable(self.storage):
            raise TypeError(
                "Persist(storage=...) needs an object with read/write/delete or a function of the store "
                f"returning one, got {type(self.storage).__name__}"
            )
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"Persist(version=...) must be an int >= 1, not {self.version!r}")
        missing = [n for n in range(1, self.version) if n not in self.migrations]
        if missing and self.migrations:
            raise ValueError(
                f"Persist(version={self.version}) has migrations for {sorted(self.migrations)} but none for "
                f"version(s) {missing}: migrations[n] upgrades version n to n + 1"
            )
        if self.debounce < 0:
            raise ValueError(f"Persist(debounce=...) must be >= 0 seconds, not {self.debounce!r}")
        if self.include is not None and self.exclude is not None:
            raise ValueError("Persist takes include= or exclude=, not both")

    def storage_for(self, store: Store[Any]) -> tuple[Storage, bool]:
        """The storage for ``store`` and whether it was made for it (then the store closes it on dispose)."""
        storage = self.storage
        if storage is None:
            return SQLiteStorage(DEFAULT_PATH), True
        if isinstance(storage, Storage):
            return storage, False
        made = storage(store)
        if not isinstance(made, Storage):
            raise PersistError(
                f"store {store.store_id!r}: Persist(storage=...) returned {type(made).__name__}, "
                f"not a storage with read/write/delete"
            )
        return made, True

    def resolve_key(self, store: Store[Any]) -> str:
        if callable(self.key):
            key = self.key(store)
        else:
            config = store.container.config
            values = _ConfigValues(
                config.get,
                {
                    "store_id": store.store_id,
                    "id": type(store).id,
                    "key": store.key or "",
                    "tenant": config.tenant_id or "",
                    "user": config.get("user") or "",
                },
            )
            try:
                key = self.key.format_map(values)
            except KeyError as exc:
                raise PersistError(
                    f"store {store.store_id!r}: persist key {self.key!r} names {exc.args[0]!r}, which is "
                    "neither store_id/id/key/tenant/user nor a config value; set it in the config or "
                    "change the key"
                ) from None
        if not isinstance(key, str) or not key:
            raise PersistError(f"store {store.store_id!r}: persist key must be a non-empty str, got {key!r}")
        return key


class _ConfigValues(dict[str, Any]):
    def __init__(self, lookup: Callable[[str], Any], base: dict[str, Any]) -> None:
        super().__init__(base)
        self._lookup = lookup

    def __missing__(self, name: str) -> Any:
        value = self._lookup(name)
        if value is None:
            raise KeyError(name)
        return value


class Persistence:
    """The live persistence of one store (``store.persistence``): its key, ``flush()``, what went wrong."""

    def __init__(self, store: Store[Any], spec: Persist) -> None:
        self.store = store
        self.spec = spec
        self.storage, self._owns_storage = spec.storage_for(store)
        self.key = spec.resolve_key(store)
        self.backup_key = f"{self.key}#backup"
        self.error: PersistError | None = None
        self.read_only = False
        self.writes = 0
        self._lock = threading.Lock()  # guards the fields below
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._dirty_seq = 0
        self._written_seq = 0
        self._timer: threading.Timer | asyncio.TimerHandle | None = None
        self._latest: BaseModel | None = None

    # ---- loading --------------------------------------------------------------------------------------
    def load(self, current: BaseModel) -> BaseModel | None:
        """The state to start from (the stored fields laid over ``current``), or None to keep ``current``."""
        spec = self.spec
        try:
            raw = self.storage.read(self.key)
        except Exception as exc:
            self.read_only = True  # do not write over a value we could not read
            self._fail(
                PersistError(f"persisted value {self.key!r} could not be read: {exc!r}; writes are off")
            )
            return None
        if raw is None:
            return None
        try:
            envelope = json.loads(raw)
            if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
                raise ValueError("not an object with a 'data' object")
            version = envelope.get("version", 1)
            if not isinstance(version, int) or version < 1:
                raise ValueError(f"bad version {version!r}")
        except ValueError as exc:
            self._bad(raw, f"not valid persisted JSON: {exc}")
            return None
        if version > spec.version:
            self.read_only = True
            self._fail(PersistVersionError(self.key, version, spec.version))
            return None
        data: dict[str, Any] = envelope["data"]
        for n in range(version, spec.version):
            try:
                data = spec.migrations[n](data)
            except Exception as exc:
                self._bad(raw, f"migration {n} -> {n + 1} failed: {exc!r}")
                return None
            if not isinstance(data, dict):
                self._bad(raw, f"migration {n} -> {n + 1} returned {type(data).__name__}, not a dict")
                return None
        merged = current.model_dump()
        merged.update(self._select(data))
        model = type(self.store).state_model
        extra: Literal["forbid"] | None = None if model.model_config.get("extra") == "allow" else "forbid"
        try:
            return model.__pydantic_validator__.validate_python(merged, extra=extra)  # type: ignore[no-any-return]
        except ValidationError as exc:
            where = ", ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()[:3])
            self._bad(raw, f"does not fit {model.__name__} ({where})")
            return None

    def _select(self, data: Mapping[str, Any]) -> dict[str, Any]:
        include, exclude = self.spec.include, self.spec.exclude
        return {
            k: v
            for k, v in data.items()
            if (include is None or k in include) and (exclude is None or k not in exclude)
        }

    def _bad(self, raw: str, reason: str) -> None:
        try:
            self.storage.write(self.backup_key, raw)
        except Exception:
            logger.exception("could not keep the bad persisted value %r aside", self.key)
        self._fail(StoredDataError(self.key, self.backup_key, reason))

    def _fail(self, error: PersistError) -> None:
        self.error = error  # reported by report_load_error() once subscribers can exist

    def report_load_error(self) -> None:
        """Send the load error, if any, to ``store.errors`` (or the log when nobody watches)."""
        if self.error is not None:
            report_error(self.store, "persist", self.error)

    # ---- saving ---------------------------------------------------------------------------------------
    def on_commit(self, _event: object, state: BaseModel) -> None:
        if self.read_only:
            return
        with self._lock:
            self._dirty_seq += 1
            if self.spec.debounce == 0:
                seq = self._dirty_seq
            else:
                if self._timer is None:
                    self._schedule(state)
                elif isinstance(self._timer, threading.Timer):
                    self._latest = state
                return
        self._write(state, seq)

    def _schedule(self, state: BaseModel) -> None:
        loop = self.store.app.loop
        running = None
        with contextlib.suppress(RuntimeError):
            running = asyncio.get_running_loop()
        if loop is not None and loop is running:
            # On the loop: hold nothing until the timer fires, then hand the snapshot to a worker thread.
            self._timer = loop.call_later(self.spec.debounce, self._fire_on_loop, loop)
        else:
            self._latest = state
            timer = threading.Timer(self.spec.debounce, self._fire_in_thread)
            timer.daemon = True
            self._timer = timer
            timer.start()

    def _fire_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._timer = None
            seq = self._dirty_seq
        if self.store.disposed:
            return  # dispose flushed already
        loop.run_in_executor(None, self._write, self.store.state, seq)

    def _fire_in_thread(self) -> None:
        with self._lock:
            self._timer = None
            state, self._latest = self._latest, None
            seq = self._dirty_seq
        if state is not None:
            self._write(state, seq)

    def _write(self, state: BaseModel, seq: int) -> None:
        """Serialise and store ``state`` (any thread); older writes never overwrite newer ones."""
        with self._write_lock:
            if seq <= self._written_seq:
                return
            try:
                data = self._select(state.model_dump(mode="json"))
                text = json.dumps({"version": self.spec.version, "data": data, "saved": time.time()})
                self.storage.write(self.key, text)
            except Exception:
                logger.exception("store %r: writing persisted value %r failed", self.store.store_id, self.key)
                return
            self._written_seq = seq
            self.writes += 1

    def flush(self) -> None:
        """Write now what is not written yet (called on dispose and at interpreter exit)."""
        with self._lock:
            timer, self._timer = self._timer, None
            self._latest = None
            seq = self._dirty_seq
        if timer is not None:
            timer.cancel()
        if seq > self._written_seq and not self.read_only:
            self._write(self.store.state, seq)

    @property
    def pending(self) -> bool:
        """Whether a commit is waiting to be written."""
        return self._dirty_seq > self._written_seq

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)
        close = getattr(self.storage, "close", None)
        if self._owns_storage and callable(close):
            close()

    def __repr__(self) -> str:
        return f"<Persistence {self.store.store_id!r} -> {self.key!r} in {self.storage!r}>"


def attach(store: Store[Any]) -> Persistence | None:
    """Set up persistence for a store whose class has ``persist = Persist(...)`` (called by the app when
    it creates the store, before plugins and ``on_init``): load and install the stored state, save on
    commits, flush on dispose and at exit. A bad stored value leaves ``persistence.error`` set; the app
    then calls ``report_load_error()`` once plugins and ``on_init`` could subscribe to ``store.errors``."""
    spec = type(store).options.get("persist")
    if not isinstance(spec, Persist):
        return None  # e.g. a plain dict read by the user's own plugin
    persistence = Persistence(store, spec)
    setattr(store, "persistence", persistence)  # noqa: B010  (not declared on Store: plugin-style attribute)
    restored = persistence.load(store.state)
    if restored is not None:
        install_state(store, prepare_state(store, restored))
    store.subscribe(persistence.on_commit)
    store.add_cleanup(persistence.close)
    atexit.register(persistence.flush)
    return persistence
