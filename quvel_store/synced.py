"""A collection kept in sync with the application: loaded through its API, followed live, reloaded after
every (re)subscription until the reload succeeds.

A WebSocket server does not replay what it published while a client was away, so a store that follows a
channel reloads its list when the channel is subscribed again. :class:`SyncedCollection` makes that
reload dependable:

- it retries with capped, jittered backoff until it succeeds, the store is disposed, or the error is not
  worth retrying (a 401 or 404; the next subscription, or ``resync()``, tries again);
- it keeps the store's sync status (:class:`SyncInfo`: ``stale`` / ``resyncing`` / ``synced``, attempts,
  the last error) in the store's state, so a UI can show "catching up";
- items are keyed (by ``id`` unless told otherwise): a live event and a reload that overlap leave each
  item in the store exactly once, and a live change that arrives while a reload is in flight is not
  undone by the (older) list.

:meth:`SyncedCollection.follow_models` adds Laravel's Eloquent model broadcasting (``BroadcastsEvents``:
``.PostCreated``, ``.PostUpdated``, ``.PostTrashed``, ``.PostRestored``, ``.PostDeleted`` with a
``model`` payload) on top. The module knows nothing of WebSockets: a channel is anything with
``listen(event)`` and ``subscribed`` Observables.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from reactivex import Observable
from reactivex.abc import DisposableBase
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.subject import Subject

from quvel_store.errors import (
    ApiDecodeError,
    ApiRateLimited,
    ApiServerError,
    ApiStatusError,
    ApiTransportError,
    ResyncFailed,
    SyncedCollectionError,
)

if TYPE_CHECKING:
    from quvel_store._store import Store

__all__ = [
    "ModelChannel",
    "ModelEvent",
    "ResyncPolicy",
    "SyncInfo",
    "SyncStatus",
    "SyncedCollection",
    "is_transient",
    "model_event_names",
]

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class SyncStatus(enum.StrEnum):
    """Whether a synced collection holds everything the application has."""

    STALE = "stale"
    """Not known to be complete: never loaded, the connection dropped, or the last reload failed (it is
    retried when ``SyncInfo.retry_in`` is set)."""
    RESYNCING = "resyncing"
    """A reload is running."""
    SYNCED = "synced"
    """Loaded after the latest subscription; live events keep it current."""


class SyncInfo(BaseModel):
    """A synced collection's status, kept in the store's state (a field of this type)."""

    status: SyncStatus = SyncStatus.STALE
    #: Successful (re)loads.
    loads: int = 0
    #: Failed attempts since the last success.
    attempts: int = 0
    #: The last failure (``"ApiServerError: GET /api/tasks answered 503"``), cleared by a success.
    error: str | None = None
    #: Seconds until the next attempt after a failure; ``None`` when none is scheduled.
    retry_in: float | None = None


@dataclass(frozen=True)
class ResyncPolicy:
    """How reloads are retried: the n-th failure waits ``min(maximum, initial * multiplier**(n-1))``
    seconds, of which the fraction ``jitter`` is drawn at random (so clients that lost the same server do
    not come back in step), and never less than a 429's ``Retry-After``. ``timeout`` bounds one attempt."""

    initial: float = 0.25
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    timeout: float | None = 15.0

    def __post_init__(self) -> None:
        checks = (
            ("initial", self.initial, 0 < self.initial < math.inf),
            ("maximum", self.maximum, self.initial <= self.maximum < math.inf),
            ("multiplier", self.multiplier, 1 <= self.multiplier < math.inf),
            ("jitter", self.jitter, 0 <= self.jitter <= 1),
            ("timeout", self.timeout, self.timeout is None or 0 < self.timeout < math.inf),
        )
        for name, value, ok in checks:
            if not ok:
                raise SyncedCollectionError(
                    f"ResyncPolicy.{name}={value!r} is out of range: initial > 0, maximum >= initial, "
                    f"multiplier >= 1, 0 <= jitter <= 1, timeout > 0 or None"
                )

    def delay(self, failures: int, rng: random.Random, error: BaseException | None = None) -> float:
        """The wait after the ``failures``-th failure in a row."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** max(0, failures - 1))
        wait = ceiling * (1 - self.jitter) + rng.uniform(0, ceiling * self.jitter)
        if isinstance(error, ApiRateLimited) and error.retry_after is not None:
            wait = max(wait, min(error.retry_after, 10 * self.maximum))
        return wait


def is_transient(error: BaseException) -> bool:
    """Whether a reload that failed with ``error`` is worth retrying: no answer, a timeout, a 5xx, a 408,
    425 or 429, a body that is not the expected JSON (a proxy's error page). Other 4xx answers (401, 403,
    404, 419, 422) and invalid items are not: they need the user or the code to change."""
    if isinstance(error, ApiTransportError | ApiServerError | ApiRateLimited | ApiDecodeError):
        return True
    if isinstance(error, ApiStatusError):
        return error.status in (408, 425)
    return not isinstance(error, ValidationError | SyncedCollectionError)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# --- Laravel model broadcasting ----------------------------------------------------------------------------


class ModelEvent(enum.StrEnum):
    """The model events Laravel's ``BroadcastsEvents`` broadcasts (``$event`` in ``broadcastOn($event)``)."""

    CREATED = "created"
    UPDATED = "updated"
    TRASHED = "trashed"
    RESTORED = "restored"
    DELETED = "deleted"


def model_event_names(model_name: str) -> dict[ModelEvent, str]:
    """The event names a model's broadcasts carry, as laravel-echo listens to them: ``class_basename`` of
    the model plus the event (``Post`` -> ``.PostCreated`` ...), prefixed with ``.`` because they are
    ``broadcastAs`` names (not namespaced under ``App.Events``)."""
    if not model_name or not model_name.isidentifier():
        raise SyncedCollectionError(
            f"model name {model_name!r} is not a PHP class basename (e.g. 'Post' for App\\Models\\Post)"
        )
    return {event: f".{model_name}{event.value.capitalize()}" for event in ModelEvent}


class ModelChannel(Protocol):
    """What :meth:`SyncedCollection.follow_models` needs of a channel (a ``quvel_ws`` ``Channel`` is one)."""

    def listen(self, event: str) -> Observable[Any]: ...

    @property
    def subscribed(self) -> Observable[Any]: ...


class _Removed:
    """Marks a key removed by a live event in a reload's journal."""


_REMOVED = _Removed()


class SyncedCollection(Generic[M]):
    """A keyed collection of ``model`` items held in a store's state and kept in sync.

    The store's state model needs two fields: ``items`` (a ``list[model]``) and ``info`` (a
    :class:`SyncInfo`). ``load()`` reads the whole collection from the application (usually through
    ``store.container.api``). Create it in the store's ``on_init``; it lives and dies with the store::

        self.tasks = SyncedCollection(self, Task, load=self.fetch_tasks, order=lambda t: t.id)
        self.tasks.follow_models(self.container.ws.channel("App.Models.Task", type="private"))

    ``prune=True`` means a reload returns the whole collection, so held items missing from it were
    deleted while the store was away and are dropped; with ``prune=False`` a reload only adds and
    replaces. ``version`` (e.g. ``lambda t: t.updated_at``) lets a newer copy win over an older one
    whichever arrives last; without it the copy that arrives last wins, except that a live change made
    while a reload was in flight wins over that reload's list. ``limit`` (with ``order``) holds at most
    that many items, those that sort last (the newest, for an order by id or time; with ``reverse=True``
    they come first): a chat keeps its last 100 messages however many live events and reloads arrive.
    """

    def __init__(
        self,
        store: Store[Any],
        model: type[M],
        *,
        load: Callable[[], Awaitable[Iterable[M | Mapping[str, Any]]]],
        items: str = "items",
        info: str = "sync",
        key: Callable[[M], Hashable] = attrgetter("id"),
        order: Callable[[M], Any] | None = None,
        reverse: bool = False,
        prune: bool = False,
        version: Callable[[M], Any] | None = None,
        limit: int | None = None,
        policy: ResyncPolicy | None = None,
        retry_if: Callable[[BaseException], bool] = is_transient,
        rng: random.Random | None = None,
    ) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise SyncedCollectionError(f"SyncedCollection needs a pydantic model class, got {model!r}")
        fields = type(store.state).model_fields
        for name, what in ((items, f"list[{model.__name__}]"), (info, "SyncInfo")):
            if name not in fields:
                raise SyncedCollectionError(
                    f"store {store.store_id!r}: its state has no field {name!r}; add `{name}: {what}` "
                    f"(or pass {'items' if name == items else 'info'}= with the field's name)"
                )
        if limit is not None and (order is None or isinstance(limit, bool) or limit < 1):
            raise SyncedCollectionError(
                f"store {store.store_id!r}: limit={limit!r} needs an order= and a count of at least 1"
            )
        if not isinstance(getattr(store.state, info), SyncInfo):
            raise SyncedCollectionError(f"store {store.store_id!r}: state field {info!r} must be a SyncInfo")
        self.store = store
        self.model = model
        self.policy = policy or ResyncPolicy()
        self._load = load
        self._items = items
        self._info = info
        self._key = key
        self._order = order
        self._reverse = reverse
        self._prune = prune
        self._version = version
        self._limit = limit
        self._retry_if = retry_if
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._journals: list[dict[Hashable, M | _Removed]] = []
        self._indexed: tuple[list[M], dict[Hashable, M]] | None = None
        self._statuses: Observable[SyncStatus] | None = None
        self._failures: Subject[ResyncFailed] = Subject()
        store.connect(self._failures, _raise)  # each failed attempt reaches store.errors
        store.add_cleanup(self.stop)

    # --- reading ---------------------------------------------------------------------------------------

    @property
    def items(self) -> list[M]:
        """The held items, in the collection's order."""
        return list(getattr(self.store.state, self._items))

    @property
    def info(self) -> SyncInfo:
        return getattr(self.store.state, self._info)  # type: ignore[no-any-return]

    @property
    def status(self) -> SyncStatus:
        return self.info.status

    @property
    def statuses(self) -> Observable[SyncStatus]:
        """The status now and on every change (a store selection: replayed, emitted only on change)."""
        if self._statuses is None:
            info = self._info
            self._statuses = self.store.select(lambda state: getattr(state, info).status)
        return self._statuses

    def get(self, key: Hashable) -> M | None:
        return self._index().get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, Hashable) and key in self._index()

    def __len__(self) -> int:
        return len(getattr(self.store.state, self._items))

    # --- live changes ------------------------------------------------------------------------------------

    def upsert(self, item: M | Mapping[str, Any]) -> M:
        """Add ``item`` or replace the held copy with the same key (a live event); returns the model."""
        model = self._coerce(item)
        key = self._key(model)
        for journal in self._journals:
            journal[key] = model
        held = self._index()
        current = held.get(key)
        if current is not None and self._older(model, current):
            return current
        if current != model:
            merged = dict(held)
            merged[key] = model
            self._write(merged)
        return model

    def remove(self, key: Hashable) -> bool:
        """Drop the item with ``key`` (a live deletion); ``False`` when none was held."""
        for journal in self._journals:
            journal[key] = _REMOVED
        held = self._index()
        if key not in held:
            return False
        merged = dict(held)
        del merged[key]
        self._write(merged)
        return True

    def clear(self) -> None:
        """Drop every item and the status (e.g. another user signed in); a running reload is cancelled."""
        self.stop()
        self.store.patch({self._items: [], self._info: SyncInfo()})

    # --- loading -------------------------------------------------------------------------------------------

    async def reload(self) -> list[M]:
        """Load once now and merge the list in; raises what the loader raised (the status says stale).
        Returns the listed items."""
        self._set_info(status=SyncStatus.RESYNCING, retry_in=None)
        try:
            return await self._attempt()
        except Exception as exc:
            self._set_info(
                status=SyncStatus.STALE, attempts=self.info.attempts + 1, error=_describe(exc), retry_in=None
            )
            raise

    def resync(self) -> asyncio.Task[None]:
        """Reload until it succeeds (in a task on the running loop), cancelling a resync still running.
        Called on every ``subscribed`` of the channels given to :meth:`follow`."""
        self.stop()
        task = asyncio.get_running_loop().create_task(self._resync())
        self._task = task
        task.add_done_callback(self._forget)
        return task

    def mark_stale(self) -> None:
        """The collection may be missing live events (the connection dropped): status stale, and a reload
        in flight is abandoned (the next subscription starts a fresh one)."""
        self.stop()
        if not self.store.disposed and self.status is not SyncStatus.STALE:
            self._set_info(status=SyncStatus.STALE, retry_in=None)

    def stop(self) -> None:
        """Cancel a running resync (and its retries)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()

    def follow(self, subscribed: Observable[Any], *, lost: Observable[Any] | None = None) -> DisposableBase:
        """Resync on every item of ``subscribed`` (a channel's ``subscribed``); mark stale on every item of
        ``lost`` (e.g. the connection state leaving ``connected``). Owned by the store; disposing the
        handle stops following and cancels a running resync."""
        handles: list[DisposableBase] = []
        if lost is not None:
            handles.append(self.store.connect(lost, lambda _: self.mark_stale()))
        handles.append(self.store.connect(subscribed, lambda _: self._resync_now()))
        handles.append(Disposable(self.stop))
        return CompositeDisposable(handles)

    def follow_models(
        self,
        channel: ModelChannel,
        model_name: str | None = None,
        *,
        trashed: Literal["remove", "keep"] = "remove",
        lost: Observable[Any] | None = None,
    ) -> DisposableBase:
        """Follow Laravel model broadcasts on ``channel`` (``BroadcastsEvents``): ``{Name}Created``,
        ``Updated`` and ``Restored`` upsert ``payload["model"]``, ``Deleted`` removes it (its payload is the
        model, or only its key for a model without soft deletes). A soft-deleted model (``deleted_at``
        set: ``Trashed``, and the ``Deleted`` that follows it) is removed, or kept with
        ``trashed="keep"`` (then a later force delete is only seen by a reload with ``prune=True``:
        Laravel broadcasts it as the same ``Deleted``). ``model_name`` is the PHP class basename
        (default: the pydantic model's class name). Every (re)subscription resyncs, as :meth:`follow`."""
        names = model_event_names(model_name or self.model.__name__)
        keep_trashed = trashed == "keep"
        if trashed not in ("remove", "keep"):
            raise SyncedCollectionError(f"trashed must be 'remove' or 'keep', not {trashed!r}")
        handles: list[DisposableBase] = []
        for event in (ModelEvent.CREATED, ModelEvent.UPDATED, ModelEvent.RESTORED, ModelEvent.TRASHED):
            handles.append(
                self.store.connect(
                    channel.listen(names[event]), lambda payload: self._model_changed(payload, keep_trashed)
                )
            )
        handles.append(
            self.store.connect(
                channel.listen(names[ModelEvent.DELETED]),
                lambda payload: self._model_deleted(payload, keep_trashed),
            )
        )
        handles.append(self.follow(channel.subscribed, lost=lost))
        return CompositeDisposable(handles)

    # --- internals ---------------------------------------------------------------------------------------

    def _resync_now(self) -> None:
        if not self.store.disposed:
            self.resync()

    def _forget(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def _resync(self) -> None:
        failures = 0
        while not self.store.disposed:
            self._set_info(status=SyncStatus.RESYNCING, retry_in=None)
            try:
                await self._attempt()
                return
            except Exception as exc:
                if self.store.disposed:
                    return
                failures += 1
                retry = self._retry_if(exc)
                delay = round(self.policy.delay(failures, self._rng, exc), 3) if retry else None
                self._set_info(
                    status=SyncStatus.STALE, attempts=failures, error=_describe(exc), retry_in=delay
                )
                then = f"retrying in {delay:.2f} s" if delay is not None else "not retried (not transient)"
                failed = ResyncFailed(
                    f"store {self.store.store_id!r}: reload attempt {failures} failed "
                    f"({_describe(exc)}); {then}",
                    attempt=failures,
                    retry_in=delay,
                )
                failed.__cause__ = exc
                self._failures.on_next(failed)
                if delay is None:
                    return
                await asyncio.sleep(delay)

    async def _attempt(self) -> list[M]:
        journal: dict[Hashable, M | _Removed] = {}
        self._journals.append(journal)
        try:
            if self.policy.timeout is None:
                rows = await self._load()
            else:
                async with asyncio.timeout(self.policy.timeout):
                    rows = await self._load()
            listed = [self._coerce(row) for row in rows]
        finally:
            self._journals.remove(journal)
        if self.store.disposed:
            return listed
        merged = self._merge(listed, journal)
        info = self.info
        self.store.patch(
            {
                self._items: self._ordered(merged),
                self._info: {
                    "status": SyncStatus.SYNCED,
                    "loads": info.loads + 1,
                    "attempts": 0,
                    "error": None,
                    "retry_in": None,
                },
            }
        )
        return listed

    def _merge(self, listed: list[M], journal: Mapping[Hashable, M | _Removed]) -> dict[Hashable, M]:
        """The list read from the application, with what changed live since it was requested on top."""
        held = self._index()
        merged: dict[Hashable, M] = {} if self._prune else dict(held)
        for item in listed:
            key = self._key(item)
            if key in journal:
                continue  # changed live while the list was in flight: the live copy is newer
            current = held.get(key)
            merged[key] = current if current is not None and self._older(item, current) else item
        for key, change in journal.items():
            if isinstance(change, _Removed):
                merged.pop(key, None)
            elif key in held:
                merged[key] = held[key]
        return merged

    def _older(self, incoming: M, current: M) -> bool:
        if self._version is None:
            return False
        return bool(self._version(incoming) < self._version(current))

    def _coerce(self, item: M | Mapping[str, Any]) -> M:
        if isinstance(item, self.model):
            return item
        if isinstance(item, Mapping):
            return self.model.model_validate(item)
        raise SyncedCollectionError(
            f"store {self.store.store_id!r}: expected a {self.model.__name__} or a mapping, got "
            f"{type(item).__name__}: {item!r}"[:300]
        )

    def _index(self) -> dict[Hashable, M]:
        held: list[M] = getattr(self.store.state, self._items)
        cached = self._indexed
        if cached is None or cached[0] is not held:
            cached = (held, {self._key(item): item for item in held})
            self._indexed = cached
        return cached[1]

    def _ordered(self, by_key: Mapping[Hashable, M]) -> list[M]:
        values = list(by_key.values())
        if self._order is not None:
            values.sort(key=self._order, reverse=self._reverse)
        if self._limit is not None and len(values) > self._limit:
            values = values[: self._limit] if self._reverse else values[-self._limit :]
        return values

    def _write(self, by_key: Mapping[Hashable, M]) -> None:
        self.store.patch({self._items: self._ordered(by_key)})

    def _set_info(self, **changes: Any) -> None:
        if not self.store.disposed:
            self.store.patch({self._info: changes})

    # --- model broadcasting ------------------------------------------------------------------------------

    def _payload_model(self, payload: Any) -> Any:
        if not isinstance(payload, Mapping) or "model" not in payload:
            raise SyncedCollectionError(
                f"store {self.store.store_id!r}: a model broadcast carries its model under 'model'; got "
                f"{payload!r}"[:300]
            )
        return payload["model"]

    def _model_changed(self, payload: Any, keep_trashed: bool) -> None:
        value = self._payload_model(payload)
        if not keep_trashed and isinstance(value, Mapping) and value.get("deleted_at"):
            self._remove_model(value)  # trashed (or changed while trashed): not part of the collection
        else:
            self.upsert(value)

    def _model_deleted(self, payload: Any, keep_trashed: bool) -> None:
        value = self._payload_model(payload)
        if keep_trashed and isinstance(value, Mapping) and value.get("deleted_at"):
            self.upsert(value)  # a soft delete broadcasts Trashed and Deleted; the row still exists
        else:
            self._remove_model(value)

    def _remove_model(self, value: Any) -> None:
        # A model without soft deletes is broadcast as its key alone once deleted.
        self.remove(self._key(self._coerce(value)) if isinstance(value, Mapping) else value)


def _raise(error: ResyncFailed) -> None:
    raise error
