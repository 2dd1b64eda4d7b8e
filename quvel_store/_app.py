"""The app (Pinia's root instance): store registry, plugins, snapshot/hydrate, loops and threads.

What its stores share while they run (commit queue, getter tracking, action context) is its
:class:`~quvel_store._runtime.Runtime`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast, overload

from pydantic import BaseModel, ValidationError
from reactivex import Observable

from quvel_store._actions import Action
from quvel_store._events import ActionEvent, MutationEvent
from quvel_store._getters import Getter
from quvel_store._plugins import Plugin, PluginContext
from quvel_store._reserved import RESERVED
from quvel_store._runtime import Runtime, running_loop
from quvel_store._scope import Scope
from quvel_store._state_fields import StateField
from quvel_store._store import (
    Store,
    commit_hydrated,
    current_state,
    initial_state,
    install_state,
    is_patching,
    redefine,
    store_scope,
)
from quvel_store.container import ServiceContainer
from quvel_store.errors import (
    HydrationError,
    InvalidStoreKeyError,
    LoopBindingError,
    PluginError,
    SnapshotError,
    StoreArgumentError,
    StoreDefinitionError,
    StoreDisposedError,
)

if TYPE_CHECKING:
    from quvel_store.history import History
    from quvel_store.persist import Persistence

__all__ = ["App", "Scope", "create_app"]

StoreT = TypeVar("StoreT", bound=Store[Any])
R = TypeVar("R")
P = ParamSpec("P")


class App:
    """Holds one instance of each store (per key), the service container, plugins and the commit queue.

    It belongs to one event loop (``bind_loop``, or its first use inside a running loop): use it there;
    while that loop runs, other threads go through ``call_threadsafe`` (see docs/threads.md).
    """

    def __init__(
        self,
        container: ServiceContainer | None = None,
        *,
        stores: Iterable[type[Store[Any]]] = (),
        plugins: Iterable[Plugin] = (),
    ) -> None:
        if container is not None and not isinstance(container, ServiceContainer):
            raise StoreArgumentError(
                f"the app's container must be a quvel_store.ServiceContainer, not {type(container).__name__} "
                f"{container!r}; build one with ServiceContainer(config=...) or omit it for a default one"
            )
        self._owns_container = container is None
        self.container: ServiceContainer = container if container is not None else ServiceContainer()
        self._runtime = Runtime()
        self._stores = self._runtime.stores
        # what a store's action or an app.scope() opens through container.ws belongs to that store/scope
        self._release_ws_owner = self.container.add_ws_owner(self._runtime.scope_var.get)
        self._classes: dict[str, type[Store[Any]]] = {}
        self._pending: dict[str, BaseModel] = {}
        self._pending_raw: dict[str, Any] = {}  # hydrated for classes not known yet: checked on first use
        self._plugins: list[Plugin] = []
        self._disposed = False
        for cls in stores:
            self.register(cls)
        for plugin in plugins:
            self.use_plugin(plugin)

    # ---- streams --------------------------------------------------------------------------------------
    @property
    def runtime(self) -> Runtime:
        """Internal: what this app's stores share (commit queue, tracking, action context, test hooks)."""
        return self._runtime

    @property
    def mutations(self) -> Observable[MutationEvent]:
        """Every store's commits, in delivery order."""
        return self._runtime.mutations

    @property
    def actions(self) -> Observable[ActionEvent]:
        """Every store's action starts, results and errors."""
        return self._runtime.actions

    # ---- stores ---------------------------------------------------------------------------------------
    def register(self, *classes: type[Store[Any]]) -> None:
        """Make store classes known by id before use (needed to hydrate stores not created yet)."""
        for cls in classes:
            sid = getattr(cls, "id", None)
            if not isinstance(sid, str):
                raise StoreDefinitionError(f"{cls.__qualname__} has no `id` class attribute")
            known = self._classes.get(sid)
            if known is not None and known is not cls:
                if not _redefinition(known, cls):
                    raise StoreDefinitionError(
                        f"two store classes use id {sid!r}: {_where(known)} and {_where(cls)}; give one "
                        f"another id (a class redefined under the same module and name replaces the old one)"
                    )
                # the same class defined again (a reload, a notebook cell run twice): replace it
                for store in tuple(self._stores.values()):
                    if type(store) is known:
                        redefine(store, cls)
            self._classes[sid] = cls

    @overload
    def use(self, cls: type[StoreT]) -> StoreT: ...

    @overload
    def use(self, cls: type[StoreT], key: str) -> StoreT: ...

    def use(self, cls: type[StoreT], key: str | None = None) -> StoreT:
        """The app's instance of ``cls`` (one per ``key``), created on first use."""
        if self._disposed:
            raise StoreDisposedError("the app is disposed")
        if key is not None and (type(key) is not str or not key or ":" in key):
            _refuse_key(cls, key)
        sid = getattr(cls, "id", None)
        store_id = sid if key is None else f"{sid}:{key}"
        existing = self._stores.get(store_id) if isinstance(store_id, str) else None
        if existing is not None:
            if type(existing) is not cls:
                self.register(cls)  # a redefinition takes over the live store, anything else raises
            return cast(StoreT, existing)
        runtime = self._runtime
        runtime.check_thread(f"app.use({cls.__qualname__})")
        self.register(cls)
        store = cls(self, key)
        initial = self._pending.pop(store.store_id, None)
        raw = self._pending_raw.pop(store.store_id, _NONE)
        if raw is not _NONE:
            initial = self._validate_pending(store, raw)
        if initial is None:
            initial = initial_state(store)
        if runtime.initial_state is not None:
            initial = runtime.initial_state(store, initial)
        install_state(store, initial)
        self._stores[store.store_id] = store
        try:
            with runtime.setting_up(), store_scope(store):
                # persistence (``persist = Persist(...)`` on the class) loads before plugins and on_init
                persisted = _attach_persistence(store) if "persist" in type(store).options else None
                for plugin in tuple(self._plugins):
                    self._apply_plugin(plugin, store)
                store.on_init()
                if persisted is not None:  # now plugins' and on_init's subscribers to store.errors see it
                    persisted.report_load_error()
        except BaseException:
            store.dispose()
            raise
        return store

    def get(self, store_id: str) -> Store[Any] | None:
        """The live store with this id (``"items"`` or ``"room:room-1"``), if it exists."""
        return self._stores.get(store_id)

    @property
    def stores(self) -> tuple[Store[Any], ...]:
        """The live stores, in creation order."""
        return tuple(self._stores.values())

    # ---- plugins --------------------------------------------------------------------------------------
    def use_plugin(self, plugin: Plugin) -> App:
        """Apply ``plugin`` to every existing store now and to every store created later."""
        self._plugins.append(plugin)
        try:
            for store in tuple(self._stores.values()):
                with store_scope(store):
                    self._apply_plugin(plugin, store)
        except BaseException:
            self._plugins.remove(plugin)  # stores it already reached keep what it did
            raise
        return self

    def _apply_plugin(self, plugin: Plugin, store: Store[Any]) -> None:
        context = PluginContext(app=self, store=store, options=type(store).options, container=self.container)
        name = getattr(plugin, "__qualname__", repr(plugin))
        try:
            extensions = plugin(context)
        except Exception as exc:
            raise PluginError(f"plugin {name} failed on store {store.store_id!r}: {exc!r}") from exc
        if extensions is None:
            return
        if not isinstance(extensions, Mapping):
            raise PluginError(f"plugin {name} returned {type(extensions).__name__}; return a mapping or None")
        # every name is checked before any is set: a refused plugin leaves the store as it was
        for attr in extensions:
            _check_plugin_attribute(name, store, attr)
        for attr, value in extensions.items():
            setattr(store, attr, value)

    # ---- time travel (the quvel_store.history.History plugin) ----------------------------------------
    @property
    def history(self) -> History:
        """The app's ``History`` plugin (``create_app(plugins=[History()])``); HistoryError without one."""
        from quvel_store.history import History, HistoryError

        for plugin in self._plugins:
            if isinstance(plugin, History):
                return plugin
        raise HistoryError("this app records no history; add the plugin: create_app(plugins=[History()])")

    def undo(self) -> bool:
        """Undo the newest undoable commit of any store (needs ``History``); False if there is none."""
        return self.history.undo()

    def redo(self) -> bool:
        """Redo the oldest undone commit of any store (needs ``History``); False if there is none."""
        return self.history.redo()

    def jump_to(self, seq: int) -> None:
        """Set every store to its state as of timeline commit ``seq`` (needs ``History``; 0: before all)."""
        self.history.jump_to(seq)

    # ---- snapshot and hydration -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Every store's state as JSON-safe data: live stores and hydrated-but-unused ones.

        A state pydantic cannot dump as JSON raises :class:`SnapshotError` naming the store.
        """
        if self._disposed:
            raise StoreDisposedError("the app is disposed: take the snapshot before dispose()")
        self._runtime.check_thread("app.snapshot()")
        out: dict[str, Any] = dict(self._pending_raw)
        out.update((sid, _dump_json(sid, state)) for sid, state in self._pending.items())
        for sid, store in self._stores.items():
            out[sid] = _dump_json(sid, current_state(store))
        return out

    def _class_for(self, store_id: str) -> type[Store[Any]] | None:
        base_id = store_id.partition(":")[0]
        return self._classes.get(base_id)

    def hydrate(self, data: Mapping[str, Any]) -> None:
        """Validate ``data`` (store id -> state) and apply it: live stores get a ``hydrate`` commit, the
        others start from it when first used. All-or-nothing: on any error no store changes.

        State for a store whose class the app does not know yet is kept as given and validated when the
        store is first used (Pinia's SSR flow); invalid data then raises HydrationError naming the store
        and the field, and the store is not created."""
        if self._disposed:
            raise StoreDisposedError("the app is disposed")
        runtime = self._runtime
        runtime.check_thread("app.hydrate()")
        if runtime.evaluating:
            runtime.refuse_write_in_getter("<every store, through hydrate()>")
        if not isinstance(data, Mapping):
            raise TypeError(f"hydrate() takes a mapping of store id -> state, not {type(data).__name__}")
        errors: dict[str, list[dict[str, Any]]] = {}
        ready: dict[str, BaseModel] = {}
        later: dict[str, Any] = {}
        for store_id, value in data.items():
            if not isinstance(store_id, str) or not store_id or store_id.startswith(":"):
                errors[str(store_id)] = [
                    {
                        "loc": (),
                        "msg": "a store id is a non-empty str ('<id>' or '<id>:<key>')",
                        "type": "bad_id",
                    }
                ]
                continue
            cls = self._class_for(store_id)
            if cls is None:  # not known yet (Pinia's SSR flow): kept as is, validated on first use
                later[store_id] = value.model_dump() if isinstance(value, BaseModel) else value
                continue
            model = cls.state_model
            extra: Literal["forbid"] | None = None if model.model_config.get("extra") == "allow" else "forbid"
            try:
                raw = value.model_dump() if isinstance(value, BaseModel) else value
                ready[store_id] = model.__pydantic_validator__.validate_python(raw, extra=extra)
            except ValidationError as exc:
                errors[store_id] = [
                    {"loc": tuple(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
                ]
        for store_id in ready:
            live = self._stores.get(store_id)
            if live is not None and live.disposed is False and is_patching(live):
                errors[store_id] = [
                    {"loc": (), "msg": "the store is in the middle of a patch", "type": "busy"}
                ]
        if errors:
            raise HydrationError(errors)
        # Apply everything before anyone is notified, so observers never see half-hydrated apps.
        self._pending_raw.update(later)
        with runtime.holding_delivery():
            for store_id, model_value in ready.items():
                sealed = runtime.schema.seal(model_value)
                live = self._stores.get(store_id)
                if live is None:
                    self._pending_raw.pop(store_id, None)
                    self._pending[store_id] = sealed
                else:
                    commit_hydrated(live, sealed)

    def _validate_pending(self, store: Store[Any], raw: Any) -> BaseModel:
        """State hydrated before the store's class was known, validated now that it is (first use)."""
        model = type(store).state_model
        extra: Literal["forbid"] | None = None if model.model_config.get("extra") == "allow" else "forbid"
        try:
            value = model.__pydantic_validator__.validate_python(raw, extra=extra)
        except ValidationError as exc:
            raise HydrationError(
                {
                    store.store_id: [
                        {"loc": tuple(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
                    ]
                }
            ) from None
        sealed: BaseModel = self._runtime.schema.seal(value)
        return sealed

    def reset_all(self) -> None:
        """``reset()`` every live store."""
        for store in tuple(self._stores.values()):
            store.reset()

    # ---- event loop and threads -----------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop that owns this app (None until bound)."""
        return self._runtime.loop

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind the app to ``loop`` (default: the running loop); callable from any thread, e.g. before the
        loop starts in a worker thread. The app belongs to the loop, not to the thread calling this."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise LoopBindingError(
                    "bind_loop() without a loop must be called inside a running loop"
                ) from None
        current = self._runtime.loop
        if current is not None and current is not loop and not current.is_closed():
            raise LoopBindingError("the app is already bound to another event loop that is still open")
        self._runtime.bind(loop)

    @overload
    def call_threadsafe(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]: ...

    @overload
    def call_threadsafe(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]: ...

    def call_threadsafe(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args, **kwargs)`` on the app's event loop from any thread; if it returns an
        awaitable (an async action's task, a coroutine) the future resolves with its result.

        Raises :class:`LoopBindingError` at once where waiting on the future could never end: no open
        loop, or a loop that has stopped; ``.result()`` on the loop's own thread raises instead of
        deadlocking (there, ``await asyncio.wrap_future(future)`` or call ``fn`` directly).
        """
        runtime = self._runtime
        loop = runtime.loop
        if loop is None or loop.is_closed():
            raise LoopBindingError(
                "the app has no open event loop; use it inside a running loop first or call app.bind_loop()"
            )
        if runtime.started and not loop.is_running():
            raise LoopBindingError(
                "the app's event loop has stopped, so call_threadsafe() could never run; run the loop again, "
                "or bind the app to a running one with app.bind_loop(loop)"
            )
        future: concurrent.futures.Future[Any] = _LoopFuture(loop)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
                return
            if not inspect.isawaitable(result):
                future.set_result(result)
                return
            inner = asyncio.ensure_future(result)

            def copy_outcome(f: asyncio.Future[Any]) -> None:
                if f.cancelled():
                    future.cancel()
                elif (error := f.exception()) is not None:
                    future.set_exception(error)
                else:
                    future.set_result(f.result())

            inner.add_done_callback(copy_outcome)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError as exc:
            raise LoopBindingError(f"the app's event loop cannot take calls: {exc}") from exc
        return future

    # ---- scopes ---------------------------------------------------------------------------------------
    def scope(self) -> Scope:
        """A new :class:`Scope`: ``with scope:`` collects subscriptions, ``scope.dispose()`` ends them."""
        return Scope(self)

    # ---- teardown -------------------------------------------------------------------------------------
    @property
    def disposed(self) -> bool:
        return self._disposed

    def dispose(self) -> None:
        """Dispose every store (newest first) and complete ``mutations`` and ``actions``.

        The container is left alone; ``await app.aclose()`` also shuts down a container the app made.
        """
        if self._disposed:
            return
        self._runtime.check_thread("app.dispose()")
        for store in reversed(tuple(self._stores.values())):
            store.dispose()
        self._disposed = True
        self._release_ws_owner()
        self._pending.clear()
        self._pending_raw.clear()
        self._runtime.mutations.on_completed()
        self._runtime.actions.on_completed()

    async def aclose(self) -> None:
        """``dispose()``, then shut down the service container if the app created it."""
        self.dispose()
        if self._owns_container:
            await self.container.shutdown()

    def __enter__(self) -> App:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.dispose()

    async def __aenter__(self) -> App:
        self._runtime.check_thread("async with app")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<App stores={list(self._stores)}{' disposed' if self._disposed else ''}>"


class _LoopFuture(concurrent.futures.Future[R]):
    """The future of a ``call_threadsafe``: blocking on it from its own loop's thread raises at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def result(self, timeout: float | None = None) -> R:
        self._refuse_blocking_the_loop()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_blocking_the_loop()
        return super().exception(timeout)

    def _refuse_blocking_the_loop(self) -> None:
        if not self.done() and running_loop() is self._loop:
            raise LoopBindingError(
                "waiting on a call_threadsafe() future from the app's own loop would deadlock (the loop "
                "cannot run the call while it waits); call the function directly, or "
                "await asyncio.wrap_future(future)"
            )


_NONE: Any = object()


def _redefinition(known: type, cls: type) -> bool:
    """Whether ``cls`` is ``known`` defined again (same module and name), not another class."""
    return known.__module__ == cls.__module__ and known.__qualname__ == cls.__qualname__


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_plugin_attribute(plugin: str, store: Store[Any], attr: object) -> None:
    """A plugin adds attributes; it may not take over the Store API or the store's own members."""
    where = f"plugin {plugin} may not set {attr!r} on store {store.store_id!r}"
    if not isinstance(attr, str) or not attr.isidentifier():
        raise PluginError(f"{where}: attribute names must be identifiers (str)")
    if attr in RESERVED or attr.startswith("_"):
        raise PluginError(f"{where}: the name is part of the Store API or private; pick another name")
    declared = inspect.getattr_static(type(store), attr, None)
    kind = (
        "state field"
        if isinstance(declared, StateField)
        else "getter"
        if isinstance(declared, Getter)
        else "action"
        if isinstance(declared, Action)
        else "property"
        if isinstance(declared, property)
        else "method"
        if callable(declared) or isinstance(declared, classmethod | staticmethod)
        else None
    )
    if kind is not None:
        raise PluginError(
            f"{where}: {type(store).__qualname__} declares a {kind} {attr!r} that it would replace; "
            f"rename the plugin's attribute"
        )


def _attach_persistence(store: Store[Any]) -> Persistence | None:
    """Load and start saving a store whose class sets ``persist = Persist(...)`` (quvel_store.persist)."""
    from quvel_store.persist._persist import attach  # only apps with persisted stores load it

    return attach(store)


def _dump_json(store_id: str, state: BaseModel) -> Any:
    """One store's state as JSON-safe data, or a SnapshotError that names the store and the cause."""
    try:
        return state.model_dump(mode="json")
    except Exception as exc:  # pydantic's serialization errors, a codec's, a custom serializer's
        raise SnapshotError(
            store_id,
            f"store {store_id!r}: its state cannot be dumped as JSON for the snapshot ({exc}); give the "
            f"field a JSON-able type or a pydantic serializer (e.g. bytes: ser_json_bytes='base64')",
        ) from exc


def _refuse_key(cls: type, key: object) -> None:
    """A key becomes part of the store id ``"<id>:<key>"``, which snapshot/hydrate split at the ':'."""
    if not isinstance(key, str):
        raise StoreArgumentError(
            f"app.use({cls.__qualname__}, key=...) takes a str key, not {type(key).__name__} {key!r}; "
            f"convert it first, e.g. key=str(room_id)"
        )
    raise InvalidStoreKeyError(
        f"app.use({cls.__qualname__}, key={key!r}): a key must be a non-empty str without ':' "
        f"(it becomes the store id '<id>:<key>'); omit key for the single instance"
    )


def create_app(
    container: ServiceContainer | None = None,
    *,
    stores: Iterable[type[Store[Any]]] = (),
    plugins: Iterable[Plugin] = (),
) -> App:
    """Create an app (the Pinia instance); without ``container`` it builds ``ServiceContainer()``."""
    return App(container, stores=stores, plugins=plugins)
