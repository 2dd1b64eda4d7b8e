"""``Store[S]``: typed state, writes as commits, getters, actions, observation, streams and disposal."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import threading
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast, overload

from pydantic import BaseModel, ValidationError
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from quvel_store._actions import Action, ActionCall
from quvel_store._draft import Txn, merge_into, new_model_draft
from quvel_store._events import ActionEvent, ActionPhase, MutationEvent, MutationKind, StoreErrorEvent
from quvel_store._frozen import SCALARS, is_frozen_model, shallow_model_copy
from quvel_store._getters import Getter
from quvel_store._select import Selection
from quvel_store.errors import (
    ActionError,
    LoopBindingError,
    StateMutationError,
    StateValidationError,
    StoreArgumentError,
    StoreDefinitionError,
    StoreDisposedError,
)

if TYPE_CHECKING:
    from quvel_store._app import App, Scope
    from quvel_store.container import ServiceContainer

__all__ = ["Store"]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")
Loc = tuple[str | int, ...]
_WHOLE: frozenset[Loc] = frozenset({()})
_PATCH_OBJECT = MutationKind.PATCH_OBJECT  # (module constants: an enum member lookup costs ~50 ns)
_PATCH_FUNCTION = MutationKind.PATCH_FUNCTION
_new_event: Callable[[type[MutationEvent], tuple[Any, ...]], MutationEvent] = tuple.__new__

# Names a store subclass, a getter, an action or a plugin may not take over.
RESERVED: frozenset[str] = frozenset(
    {
        "app",
        "container",
        "key",
        "store_id",
        "state",
        "state_model",
        "options",
        "errors",
        "disposed",
        "patch",
        "replace",
        "reset",
        "batch",
        "observe",
        "select",
        "subscribe",
        "on_action",
        "connect",
        "dispose",
        "on_init",
        "on_dispose",
        "initial_state",
        "id",
    }
)


class _Listener:
    __slots__ = ("active", "fn")

    def __init__(self, fn: Callable[[MutationEvent, Any], object]) -> None:
        self.fn = fn
        self.active = True


class _Batch:
    __slots__ = ("changed", "start", "writes")

    def __init__(self, start: BaseModel) -> None:
        self.start = start
        self.writes: list[tuple[MutationKind, Any]] = []
        self.changed: set[Loc] = set()


class _ActionSlot:
    """Per store and async action: the calls in flight (for switch/exhaust) and the queue tail (concat)."""

    __slots__ = ("running", "tail")

    def __init__(self) -> None:
        self.running: list[asyncio.Task[Any]] = []
        self.tail: asyncio.Task[Any] | None = None


def _require_callable(store_id: str, call: str, what: str, value: object) -> None:
    """Refuse a callback that cannot be called now, at registration, instead of at the first commit."""
    if not callable(value):
        raise StoreArgumentError(
            f"store {store_id!r}: {call} needs a callable {what}, got {type(value).__name__} {value!r}; "
            f"pass a function or a bound method"
        )


def _state_model_of(cls: type) -> type[BaseModel] | None:
    for base in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Store):
            for arg in typing.get_args(base):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    return arg
    return None


class Store(Generic[S]):
    """A store of typed state ``S`` (a pydantic model). Subclass it; get instances with ``app.use``.

    Class attributes: ``id`` (unique per app, no ':'), optionally ``state_model`` (inferred from
    ``Store[YourState]``), and any custom options plugins read (e.g. ``persist = {...}``).
    """

    id: ClassVar[str]
    state_model: ClassVar[type[BaseModel]]
    options: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    app: App
    container: ServiceContainer
    key: str | None
    store_id: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = _state_model_of(cls)
        if model is not None and "state_model" not in cls.__dict__:
            cls.state_model = model
        sid = cls.__dict__.get("id")
        if sid is not None and (not isinstance(sid, str) or not sid or ":" in sid):
            raise StoreDefinitionError(
                f"{cls.__qualname__}.id must be a non-empty str without ':', not {sid!r}"
            )
        options: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is Store or not issubclass(klass, Store):
                continue
            for name, value in vars(klass).items():
                if name in RESERVED and isinstance(value, Getter | Action):
                    raise StoreDefinitionError(
                        f"{cls.__qualname__}.{name}: {name!r} is part of the Store API"
                    )
                if name.startswith("_") or name in RESERVED:
                    continue
                if isinstance(value, Getter | Action | property | classmethod | staticmethod) or callable(
                    value
                ):
                    continue
                options[name] = value
        cls.options = MappingProxyType(options)

    def __init__(self, app: App, key: str | None = None) -> None:
        """Internal: stores are created by ``app.use(StoreClass)``; put set-up code in ``on_init``."""
        cls = type(self)
        if not isinstance(getattr(cls, "id", None), str):
            raise StoreDefinitionError(f'{cls.__qualname__} has no `id = "..."` class attribute')
        if not isinstance(getattr(cls, "state_model", None), type):
            raise StoreDefinitionError(
                f"{cls.__qualname__}: state model missing: use Store[YourState] or `state_model = YourState`"
            )
        self.app = app
        self.container = app.container
        self.key = key
        self.store_id = cls.id if key is None else f"{cls.id}:{key}"
        self._app = app
        self._schema = app._schema
        self._root_plan = app._schema.model_plan(cls.state_model)
        self._frozen_cls = app._schema.frozen_class(cls.state_model)
        self._flat_changed: dict[tuple[str, ...], frozenset[Loc]] = {}
        self._state: S = cast(S, None)
        self._txn: Txn | None = None
        self._batch: _Batch | None = None
        self._listeners: list[_Listener] = []
        self._listener_tuple: tuple[_Listener, ...] = ()
        self._state_observers: list[abc.ObserverBase[S]] = []
        self._selections_by_top: dict[str, set[Selection[Any]]] = {}
        self._selections_all: set[Selection[Any]] = set()
        self._selections: set[Selection[Any]] = set()
        self._getter_cache: dict[str, tuple[Any, tuple[Store[Any], ...]]] = {}
        self._getter_overrides: dict[str, Any] = {}
        self._dependents: set[tuple[Store[Any], str]] = set()
        self._action_hooks: tuple[Callable[[ActionCall], object], ...] = ()
        self._action_slots: dict[str, _ActionSlot] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: set[abc.DisposableBase] = set()
        self._cleanups: list[Callable[[], object]] = []
        self._errors: Subject[StoreErrorEvent] = Subject()
        self._undelivered = 0
        self._delivered: S | None = None
        self._disposed = False
        self._scope: Scope = app.scope()

    # ---- hooks users override -------------------------------------------------------------------------
    def initial_state(self) -> S:
        """The state a new store starts with and ``reset()`` returns to (default: ``state_model()``)."""
        return cast(S, self.state_model())

    def on_init(self) -> None:
        """Runs once after the store is created and plugins are applied."""

    def on_dispose(self) -> None:
        """Runs once when the store is disposed, before its subscriptions and tasks are released."""

    # ---- state ----------------------------------------------------------------------------------------
    @property
    def state(self) -> S:
        """The current state: a read-only snapshot (writes raise ``StateMutationError``)."""
        app = self._app
        if app._tracking:
            app._tracking[-1].add(self)
        if self._txn is not None:
            self._txn.detach()
        return self._state

    @property
    def disposed(self) -> bool:
        return self._disposed

    @property
    def errors(self) -> Observable[StoreErrorEvent]:
        """Errors the store caught to keep going: raising ``connect`` handlers and subscribers."""
        return self._errors

    def _check_thread(self) -> None:
        """Writes belong to the thread of the app's event loop (when it has one): refuse the others."""
        app = self._app
        owner = app._thread_id
        if owner is not None and owner != threading.get_ident():
            loop = app._loop
            if loop is not None and not loop.is_closed():
                raise LoopBindingError(
                    f"store {self.store_id!r} belongs to the event loop of another thread; "
                    f"write through app.call_threadsafe(...)"
                )

    def _check_writable(self) -> None:
        if self._disposed:
            raise StoreDisposedError(f"store {self.store_id!r} is disposed; get a new one with app.use()")
        if self._txn is not None:
            raise StateMutationError(
                f"store {self.store_id!r}: patch() inside its own patch function; edit the draft instead"
            )
        if self._app._evaluating:
            self._app._refuse_write_in_getter(self.store_id)

    def _prepare_state(self, value: S | Mapping[str, Any]) -> S:
        """Validate a whole new state (model instance or mapping), rejecting unknown keys."""
        model = self.state_model
        if is_frozen_model(value) and isinstance(value, model):
            return value  # already a sealed, valid snapshot (e.g. replace(old_snapshot))
        extra: Literal["forbid"] | None = None if model.model_config.get("extra") == "allow" else "forbid"
        try:
            if isinstance(value, BaseModel):
                if not isinstance(value, model):
                    raise TypeError(f"expected a {model.__name__}, got {type(value).__name__}")
                validated = model.__pydantic_validator__.validate_python(copy.deepcopy(value))
            elif isinstance(value, Mapping):
                validated = model.__pydantic_validator__.validate_python(dict(value), extra=extra)
            else:
                raise TypeError(f"expected a {model.__name__} or a mapping, got {type(value).__name__}")
        except ValidationError as exc:
            raise StateValidationError(
                self.store_id,
                [{"loc": tuple(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()],
            ) from None
        return cast(S, self._schema.seal(validated))

    # ---- writes ---------------------------------------------------------------------------------------
    @overload
    def patch(self, changes: Mapping[str, Any], /) -> None: ...

    @overload
    def patch(self, changes: Callable[[S], object], /) -> None: ...

    def patch(self, changes: Mapping[str, Any] | Callable[[S], object], /) -> None:
        """Change state in one validated commit.

        ``patch({...})`` deep-merges: mappings merge into nested models and dicts, lists and other values
        replace. ``patch(fn)`` calls ``fn(draft)``; the draft is typed as the state and edited like it.
        If anything raises, nothing is committed and the state is exactly as before.
        """
        app = self._app
        # one test for the rare cases (disposed, nested patch, a getter running): the common path pays one
        if self._disposed or self._txn is not None or app._evaluating:
            self._check_writable()
        owner = app._thread_id
        if owner is not None and owner != threading.get_ident():
            self._check_thread()
        if type(changes) is dict or (not callable(changes) and isinstance(changes, Mapping)):
            if self._flat_patch(changes):
                return
            kind = _PATCH_OBJECT
        elif callable(changes):
            kind = _PATCH_FUNCTION
        else:
            raise TypeError(f"patch() takes a mapping or a function, not {type(changes).__name__}")
        txn = Txn(self._schema, self.store_id)
        # The root plan is known unless the state is an instance of a subclass (replace(subclass_obj)).
        # (No local name for the state: appends in place rely on counting who references it.)
        plan = self._root_plan if type(self._state) is self._frozen_cls else None
        root = new_model_draft(txn, None, None, self._state, plan)
        self._txn = txn
        try:
            if kind is _PATCH_OBJECT:
                merge_into(root, changes)  # type: ignore[arg-type]  # (a mapping, tested above)
            else:
                result = changes(root)  # type: ignore[operator,arg-type]  # (a function, tested above)
                if result is not None and inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()
                    raise TypeError("patch functions must be synchronous; await first, then patch")
            new, _ = root._q_finalize()
        except BaseException:
            self._txn = None
            txn.rollback(root)
            raise
        self._txn = None
        changed = frozenset(txn.changed)
        txn.close(root)
        del root
        self._commit(new, kind, changes, changed)

    def _flat_patch(self, changes: Mapping[str, Any]) -> bool:
        """``patch({field: value, ...})`` with no nested mappings: validate the fields onto a shallow copy.

        The common case, kept short; anything else (nested merges, unknown keys, models with model
        validators) goes through the draft, which gives the same result and the detailed errors.
        """
        plan = self._root_plan
        if not plan.eager or type(self._state) is not self._frozen_cls:
            return False
        fields = plan.fields
        for key, value in changes.items():
            if key not in fields or (type(value) not in SCALARS and isinstance(value, Mapping)):
                return False
        work = shallow_model_copy(self._state, self._frozen_cls)
        validate = plan.cls.__pydantic_validator__.validate_assignment
        extra = plan.extra
        prefix: Loc = ()
        try:
            for key, value in changes.items():
                check = fields[key].check
                if check is None:
                    prefix = ()
                    validate(work, key, value, extra=extra)
                    continue
                # int/float/str/bool field: validate the value alone (validate_assignment replaces
                # work.__dict__, so take it afresh); the current value is valid already
                d = work.__dict__
                if value is not d[key]:
                    prefix = (key,)
                    d[key] = check(value)
                work.__pydantic_fields_set__.add(key)
        except ValidationError as exc:
            raise StateValidationError(
                self.store_id,
                [{"loc": prefix + tuple(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()],
            ) from None
        d = work.__dict__
        seal = self._schema.seal
        changed = self._flat_changed.get(tuple(changes))
        if changed is None:
            changed = self._flat_changed[tuple(changes)] = frozenset((key,) for key in changes)
        for key in changes:
            value = d[key]
            if type(value) not in SCALARS:
                d[key] = seal(value)
        self._commit(work, _PATCH_OBJECT, changes, changed)  # type: ignore[arg-type]  # (an S)
        return True

    def replace(self, state: S | Mapping[str, Any]) -> None:
        """Replace the whole state (validated; fields missing from a mapping take their defaults)."""
        self._check_writable()
        self._check_thread()
        new = self._prepare_state(state)
        self._commit(new, MutationKind.REPLACE, new, _WHOLE)

    def reset(self) -> None:
        """Go back to ``initial_state()`` in one commit."""
        self._check_writable()
        self._check_thread()
        new = self._prepare_state(self.initial_state())
        self._commit(new, MutationKind.RESET, None, _WHOLE)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group every write inside the block into one commit; if the block raises, none of them stay."""
        self._check_writable()
        if self._batch is not None:
            yield
            return
        batch = _Batch(self._state)
        self._batch = batch
        try:
            yield
        except BaseException:
            self._batch = None
            if self._state is not batch.start:
                self._state = cast(S, batch.start)
                self._bump()
            raise
        self._batch = None
        if batch.writes:
            if not self._undelivered and self._app._draining:
                self._delivered = cast(S, batch.start)
            self._emit(MutationKind.BATCH, tuple(batch.writes), frozenset(batch.changed))

    def _bump(self) -> None:
        """Drop cached getter values of this store and of getters elsewhere that read it."""
        if self._getter_cache:
            self._getter_cache.clear()
        dependents = self._dependents
        if dependents:
            for store, name in dependents:
                store._getter_cache.pop(name, None)
            dependents.clear()

    def _commit(self, new: S, kind: MutationKind, payload: Any, changed: frozenset[Loc]) -> None:
        batch = self._batch
        if batch is None and not self._undelivered and self._app._draining:
            # Observers have not seen ``new`` yet and will get it from the queue; until then a new
            # observer starts from the state they last saw.
            self._delivered = self._state
        self._state = new
        if self._getter_cache or self._dependents:
            self._bump()
        if batch is not None:
            batch.writes.append((kind, payload))
            batch.changed.update(changed)
            return
        app = self._app
        # the same test as _emit's (saves the call when nobody can see the commit)
        if (
            self._listener_tuple
            or self._selections
            or app._draining
            or app._queue
            or app._mutations.observers
        ):
            self._emit(kind, payload, changed)

    def _emit(self, kind: MutationKind, payload: Any, changed: frozenset[Loc]) -> None:
        app = self._app
        if (
            not self._listener_tuple
            and not self._selections
            and not app._draining
            and not app._queue
            and not app._mutations.observers
        ):
            return  # nobody can see this commit, and nothing queued waits for it: no event to build
        current = app._action_var.get()
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (same object, about half the cost)
        if current is None:
            event = _new_event(MutationEvent, (kind, self.store_id, payload, None, None, changed))
        else:
            event = _new_event(MutationEvent, (kind, self.store_id, payload, current[1], current[2], changed))
        self._undelivered += 1
        app._queue.append((self, event, self._state))
        if not app._draining:
            app._drain()

    def _set_state_quietly(self, new: S) -> None:
        """Install state without an event (store creation, hydration before anyone can observe)."""
        self._state = new
        self._bump()

    # ---- delivery (called by the app's queue, in commit order, never re-entrantly) --------------------
    def _replay_state(self) -> S:
        """The latest state already delivered to observers (what a new observer should start from)."""
        if self._undelivered and self._delivered is not None:
            return self._delivered
        return self._state

    def _notify(self, event: MutationEvent, state: S) -> None:
        self._undelivered -= 1
        self._delivered = state
        try:
            for listener in self._listener_tuple:
                if listener.active:
                    try:
                        listener.fn(event, state)
                    except Exception as exc:
                        self._report("subscriber", exc)
            if self._selections:
                changed = event.changed
                if () in changed:
                    targets: set[Selection[Any]] = set(self._selections)
                else:
                    targets = set(self._selections_all)
                    by_top = self._selections_by_top
                    for path in changed:
                        hits = by_top.get(path[0])  # type: ignore[arg-type]
                        if hits:
                            targets.update(hits)
                for selection in targets:
                    selection._on_commit(state, changed)
        finally:
            if not self._undelivered:
                self._delivered = None

    def _reindex_selection(
        self,
        selection: Selection[Any],
        old: frozenset[str] | None,
        new: frozenset[str] | None,
        remove: bool = False,
    ) -> None:
        by_top = self._selections_by_top
        if old is None:
            self._selections_all.discard(selection)
        else:
            for top in old:
                group = by_top.get(top)
                if group is not None:
                    group.discard(selection)
                    if not group:
                        del by_top[top]
        if remove:
            self._selections.discard(selection)
            return
        self._selections.add(selection)
        if new is None:
            self._selections_all.add(selection)
        else:
            for top in new:
                by_top.setdefault(top, set()).add(selection)

    def _report(self, source: str, error: BaseException, item: Any = None) -> None:
        if self._errors.observers:
            logger.debug("store %r caught an error from %s: %r", self.store_id, source, error)
            self._errors.on_next(StoreErrorEvent(self.store_id, source, error, item))
        else:
            logger.error("store %r: %s raised %r", self.store_id, source, error, exc_info=error)

    # ---- observation ----------------------------------------------------------------------------------
    def _adopt(self, disposable: abc.DisposableBase, detached: bool) -> None:
        if detached:
            return
        scope = self._app._scope_var.get()
        if scope is not None and scope is not self._scope:
            scope.add(disposable)

    def subscribe(
        self, callback: Callable[[MutationEvent, S], object], *, detached: bool = False
    ) -> abc.DisposableBase:
        """Call ``callback(event, state)`` after every commit (Pinia's ``$subscribe``).

        Ends when the store is disposed, when you dispose the returned object, or when the scope it was
        made in ends (another store's ``on_init``/action, or an ``app.scope()``) unless ``detached``.
        """
        self._check_alive()
        _require_callable(self.store_id, "subscribe()", "callback(event, state)", callback)
        listener = _Listener(callback)
        self._listeners.append(listener)
        self._listener_tuple = tuple(self._listeners)

        def remove() -> None:
            if listener.active:
                listener.active = False
                self._listeners.remove(listener)
                self._listener_tuple = tuple(self._listeners)

        disposable = Disposable(remove)
        self._adopt(disposable, detached)
        return disposable

    def observe(self) -> Observable[S]:
        """An Observable of state snapshots: the current one at once, then one per commit."""

        def subscribe(
            observer: abc.ObserverBase[S], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if self._disposed:
                observer.on_completed()
                return Disposable()
            self._state_observers.append(observer)

            def forward(_event: MutationEvent, state: S) -> None:
                observer.on_next(state)

            sub = self.subscribe(forward, detached=True)
            observer.on_next(self._replay_state())

            def dispose() -> None:
                sub.dispose()
                with contextlib.suppress(ValueError):
                    self._state_observers.remove(observer)

            disposable = Disposable(dispose)
            self._adopt(disposable, detached=False)
            return disposable

        return Observable(subscribe)

    def select(self, fn: Callable[[S], T], *, equal: Callable[[T, T], bool] | None = None) -> Selection[T]:
        """An Observable of ``fn(state)`` that replays its value and emits only when it changes.

        One computation is shared by all subscribers. ``fn`` re-runs only after commits that write a
        field it read. ``equal`` (default ``==``) decides what counts as a change.
        """
        self._check_alive()
        _require_callable(self.store_id, "select()", "fn(state)", fn)
        if equal is not None:
            _require_callable(self.store_id, "select()", "equal(old, new) or None", equal)
        return Selection(self, fn, equal)

    def on_action(
        self, callback: Callable[[ActionCall], object], *, detached: bool = False
    ) -> abc.DisposableBase:
        """Call ``callback(call)`` before every action; ``call.after``/``call.on_error`` see how it ended."""
        self._check_alive()
        _require_callable(self.store_id, "on_action()", "callback(call)", callback)
        self._action_hooks = (*self._action_hooks, callback)

        def remove() -> None:
            hooks = list(self._action_hooks)
            with contextlib.suppress(ValueError):
                hooks.remove(callback)
            self._action_hooks = tuple(hooks)

        disposable = Disposable(remove)
        self._adopt(disposable, detached)
        return disposable

    def _check_alive(self) -> None:
        if self._disposed:
            raise StoreDisposedError(f"store {self.store_id!r} is disposed; get a new one with app.use()")

    # ---- getters --------------------------------------------------------------------------------------
    def _read_getter(self, getter: Getter[Any]) -> Any:
        name = getter.name
        if self._getter_overrides and name in self._getter_overrides:
            return self._getter_overrides[name]
        app = self._app
        cached = self._getter_cache.get(name)
        if cached is not None:
            if app._tracking:
                app._tracking[-1].update(cached[1])
            return cached[0]
        marker = (self, name)
        if marker in app._evaluating:
            raise RecursionError(f"getter {self.store_id}.{name} depends on itself")
        app._evaluating.add(marker)
        app._tracking.append(set())
        try:
            value = getter.fn(self)
        finally:
            deps = tuple(app._tracking.pop())
            app._evaluating.discard(marker)
        if self._txn is None and not self._disposed:
            self._getter_cache[name] = (value, deps)
            for store in deps:
                if store is not self:
                    store._dependents.add(marker)
        if app._tracking:
            app._tracking[-1].update(deps)
        return value

    # ---- actions --------------------------------------------------------------------------------------
    def _run_action(self, action: Action[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._disposed:
            self._check_alive()
        app = self._app
        if app._stubs_actions and app._stub_action(self, action.name, args, kwargs):
            return _completed_task(None) if action.is_async else None
        if action.is_async:
            return self._start_async_action(action, args, kwargs)
        call_id = next(app._call_ids)
        # Nobody watching (the usual case in a hot loop): no ActionCall, no ActionEvent, no calls.
        call = (
            self._action_started(action.name, args, kwargs, call_id)
            if self._action_hooks or app._actions.observers
            else None
        )
        token = app._action_var.set((self, action.name, call_id))
        try:
            if action.atomic:
                with self.batch():
                    result = action.fn(self, *args, **kwargs)
            else:
                result = action.fn(self, *args, **kwargs)
        except BaseException as exc:
            app._action_var.reset(token)
            if call is not None or app._actions.observers:
                self._action_failed(call, action.name, args, kwargs, call_id=call_id, error=exc)
            raise
        app._action_var.reset(token)
        if call is not None or app._actions.observers:
            self._action_succeeded(call, action.name, args, kwargs, call_id=call_id, result=result)
        return result

    def _action_started(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], call_id: int
    ) -> ActionCall | None:
        call: ActionCall | None = None
        if self._action_hooks:
            call = ActionCall(self, name, args, kwargs, call_id)
            for hook in self._action_hooks:
                try:
                    hook(call)
                except Exception as exc:
                    self._report("hook", exc)
        if self._app._actions.observers:
            self._app._emit_action(ActionEvent(ActionPhase.START, self.store_id, name, call_id, args, kwargs))
        return call

    def _action_succeeded(
        self,
        call: ActionCall | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: int,
        result: Any,
    ) -> None:
        if call is not None:
            for cb in call._after:
                try:
                    cb(result)
                except Exception as exc:
                    self._report("hook", exc)
        if self._app._actions.observers:
            self._app._emit_action(
                ActionEvent(ActionPhase.SUCCESS, self.store_id, name, call_id, args, kwargs, result=result)
            )

    def _action_failed(
        self,
        call: ActionCall | None,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: int,
        error: BaseException,
    ) -> None:
        if call is not None:
            for cb in call._on_error:
                try:
                    cb(error)
                except Exception as exc:
                    self._report("hook", exc)
        if self._app._actions.observers:
            self._app._emit_action(
                ActionEvent(ActionPhase.ERROR, self.store_id, name, call_id, args, kwargs, error=error)
            )

    def _start_async_action(
        self, action: Action[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Task[Any]:
        app = self._app
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ActionError(
                f"async action {self.store_id}.{action.name} needs a running event loop; call it from async "
                f"code, or from another thread with app.call_threadsafe(store.{action.name}, ...)"
            ) from None
        app._bind_running(loop)
        slot = self._action_slots.get(action.name)
        if slot is None:
            slot = self._action_slots[action.name] = _ActionSlot()
        policy = action.concurrency
        if policy == "exhaust" and slot.running:
            return slot.running[0]
        if policy == "switch":
            for running in slot.running:
                running.cancel()
        previous = slot.tail if policy == "concat" else None
        call_id = next(app._call_ids)
        call = self._action_started(action.name, args, kwargs, call_id)
        task = loop.create_task(
            self._async_body(action, call, args, kwargs, call_id=call_id, previous=previous)
        )
        slot.running.append(task)
        if policy == "concat":
            slot.tail = task
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            with contextlib.suppress(ValueError):
                slot.running.remove(t)
            if slot.tail is t:
                slot.tail = None
            if not t.cancelled() and t.exception() is not None:
                logger.debug("async action %s.%s failed: %r", self.store_id, action.name, t.exception())

        task.add_done_callback(done)
        return task

    async def _async_body(
        self,
        action: Action[Any, Any],
        call: ActionCall | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        call_id: int,
        previous: asyncio.Task[Any] | None,
    ) -> Any:
        try:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            self._app._action_var.set((self, action.name, call_id))
            result = await action.fn(self, *args, **kwargs)
        except BaseException as exc:
            self._action_failed(call, action.name, args, kwargs, call_id=call_id, error=exc)
            raise
        self._action_succeeded(call, action.name, args, kwargs, call_id=call_id, result=result)
        return result

    # ---- streams into state ---------------------------------------------------------------------------
    def connect(
        self,
        source: Observable[T],
        handler: Callable[[T], object] | None = None,
        *,
        reducer: Callable[[S, T], object] | None = None,
    ) -> abc.DisposableBase:
        """Fold an Observable into this store: each item goes to ``handler(item)`` (e.g. an action) or
        to ``reducer(draft, item)`` (one patch per item).

        The subscription belongs to the store and ends on dispose (that is what releases a WebSocket
        channel). A handler that raises sends the error to ``store.errors``; later items still flow.
        Items emitted on another thread are moved onto the app's event loop first.
        """
        self._check_alive()
        if not isinstance(source, abc.ObservableBase):
            raise StoreArgumentError(
                f"store {self.store_id!r}: connect() needs a reactivex Observable as its source, got "
                f"{type(source).__name__} {source!r}; wrap plain values with reactivex.of(...) or "
                f"reactivex.from_iterable(...)"
            )
        if (handler is None) == (reducer is None):
            raise StoreArgumentError(
                f"store {self.store_id!r}: connect() takes exactly one of handler or reducer="
            )
        if handler is not None:
            _require_callable(self.store_id, "connect()", "handler(item)", handler)
        if reducer is not None:
            _require_callable(self.store_id, "connect()", "reducer(draft, item)", reducer)
        app = self._app

        def process(item: T) -> None:
            if self._disposed:
                return
            try:
                if reducer is not None:
                    self.patch(lambda draft: reducer(draft, item))
                    return
                result = handler(item)  # type: ignore[misc]
            except Exception as exc:
                self._report("connect", exc, item)
                return
            if result is not None and inspect.isawaitable(result):
                self._watch_awaitable(result, item)

        def on_next(item: T) -> None:
            loop = app._loop
            if loop is not None and threading.get_ident() != app._thread_id:
                try:
                    loop.call_soon_threadsafe(process, item)
                except RuntimeError:
                    logger.warning("store %r dropped an item: its event loop is closed", self.store_id)
                return
            if reducer is not None or self._disposed:
                process(item)
                return
            # process(item) for a handler, inlined: this runs once per item of the stream
            try:
                result = handler(item)  # type: ignore[misc]
            except Exception as exc:
                self._report("connect", exc, item)
                return
            if result is not None and inspect.isawaitable(result):
                self._watch_awaitable(result, item)

        finished: list[bool] = []
        handles: list[abc.DisposableBase] = []

        def release() -> None:
            finished.append(True)
            for handle in handles:
                self._connections.discard(handle)

        def on_error(error: Exception) -> None:
            self._report("connect", error)
            release()

        subscription = source.subscribe(on_next, on_error, release)

        def end() -> None:
            subscription.dispose()
            release()

        handle = Disposable(end)
        handles.append(handle)
        if not finished:
            self._connections.add(handle)
        return handle

    def _watch_awaitable(self, result: Awaitable[Any], item: Any) -> None:
        future = asyncio.ensure_future(result)

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is not None:
                self._report("connect", cast(BaseException, f.exception()), item)

        future.add_done_callback(done)

    # ---- lifecycle ------------------------------------------------------------------------------------
    def add_cleanup(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` when the store is disposed (after ``on_dispose``)."""
        self._cleanups.append(fn)

    def dispose(self) -> None:
        """Dispose the store: ``on_dispose``, cancel its tasks, end its connections and subscriptions,
        complete its Observables, and forget it (a later ``app.use`` builds a fresh one)."""
        if self._disposed:
            return
        try:
            self.on_dispose()
        except Exception as exc:
            self._report("lifecycle", exc)
        self._disposed = True
        for task in list(self._tasks):
            task.cancel()
        for handle in list(self._connections):
            handle.dispose()
        self._connections.clear()
        self._scope.dispose()
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as exc:
                self._report("lifecycle", exc)
        self._cleanups.clear()
        for selection in list(self._selections):
            selection._complete()
        for observer in list(self._state_observers):
            with contextlib.suppress(Exception):
                observer.on_completed()
        self._state_observers.clear()
        for listener in self._listeners:
            listener.active = False
        self._listeners.clear()
        self._listener_tuple = ()
        self._action_hooks = ()
        self._getter_cache.clear()
        self._dependents.clear()
        self._errors.on_completed()
        self._app._forget(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.store_id!r}{' disposed' if self._disposed else ''}>"


def _completed_task(value: Any) -> asyncio.Task[Any]:
    async def done() -> Any:
        return value

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise LoopBindingError("a stubbed async action still needs a running event loop") from None
    return loop.create_task(done())
