"""``Store[S]``: typed state, writes as commits, getters, actions, observation, streams and disposal."""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast, overload

from pydantic import BaseModel, ValidationError
from reactivex import Observable, abc

from quvel_store._action_runner import ActionRunner
from quvel_store._actions import ActionCall, RunAction
from quvel_store._batch import Transactions
from quvel_store._connect import Connections
from quvel_store._definition import carried_state, define_store_class, require_callable
from quvel_store._draft import Txn, merge_into, new_model_draft
from quvel_store._events import MutationEvent, MutationKind, StoreErrorEvent
from quvel_store._frozen import SCALARS, is_frozen_model, shallow_model_copy
from quvel_store._getters import Getter, GetterCache
from quvel_store._runtime import running_loop
from quvel_store._scope import Scope
from quvel_store._select import Selection
from quvel_store._subscriptions import Subscriptions
from quvel_store.errors import (
    StateMutationError,
    StateValidationError,
    StoreArgumentError,
    StoreDefinitionError,
    StoreDisposedError,
)

if TYPE_CHECKING:
    from quvel_store._app import App
    from quvel_store.container import ServiceContainer

__all__ = [
    "Store",
    "commit_hydrated",
    "current_state",
    "getter_cache",
    "initial_state",
    "install_state",
    "is_batching",
    "is_patching",
    "prepare_state",
    "redefine",
    "report_error",
    "store_scope",
]

S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")
Loc = tuple[str | int, ...]
_WHOLE: frozenset[Loc] = frozenset({()})
_PATCH_OBJECT = MutationKind.PATCH_OBJECT  # (module constants: an enum member lookup costs ~50 ns)
_PATCH_FUNCTION = MutationKind.PATCH_FUNCTION
_new_event: Callable[[type[MutationEvent], tuple[Any, ...]], MutationEvent] = tuple.__new__


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
        define_store_class(cls, Store, _read_getter, _runner_of)

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
        runtime = app.runtime
        self._runtime = runtime
        self._schema = runtime.schema
        self._root_plan = runtime.schema.model_plan(cls.state_model)
        self._frozen_cls = runtime.schema.frozen_class(cls.state_model)
        self._flat_changed: dict[tuple[str, ...], frozenset[Loc]] = {}
        self._state: S = cast(S, None)
        self._txn: Txn | None = None
        self._transactions = Transactions(runtime, self)
        self._batches = self._transactions.batches  # (the same list: hot paths test it alone)
        self._cleanups: list[Callable[[], object]] = []
        self._disposed = False
        self._scope = Scope(app)
        self._subs = Subscriptions(self.store_id, runtime, self._scope, lambda: self._state)
        self._getters = GetterCache(self.store_id, runtime, lambda: self._txn is None and not self._disposed)
        self._actions = ActionRunner(self, runtime, self._subs, self._scope)
        self._connections = Connections(self, runtime, self._subs)

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
        tracking = self._runtime.tracking
        if tracking:
            tracking[-1].add(self._getters)
        if self._txn is not None:
            self._txn.detach()
        if self._batches:
            mine = self._runtime.batch_of(self)
            if mine is not None:
                return cast(S, mine.work)
        return self._state

    @property
    def disposed(self) -> bool:
        return self._disposed

    @property
    def errors(self) -> Observable[StoreErrorEvent]:
        """Errors the store caught to keep going: raising ``connect`` handlers and subscribers."""
        return self._subs.errors

    def _check_thread(self, what: str) -> None:
        self._runtime.check_thread(f"store {self.store_id!r}: {what}")

    def _check_writable(self) -> None:
        if self._disposed:
            raise StoreDisposedError(f"store {self.store_id!r} is disposed; get a new one with app.use()")
        if self._txn is not None:
            raise StateMutationError(
                f"store {self.store_id!r}: patch() inside its own patch function; edit the draft instead"
            )
        if self._runtime.evaluating:
            self._runtime.refuse_write_in_getter(self.store_id)

    def _initial(self) -> S:
        """``initial_state()``, validated and sealed. The default one is built here and held by no one
        else, so it skips the defensive deep copy an instance from user code gets (a third of a store's
        set-up, paid by every per-request app)."""
        if type(self).initial_state is Store.initial_state:
            return self._prepare_state(cast(S, self.state_model()), owned=True)
        return self._prepare_state(self.initial_state())

    def _prepare_state(self, value: S | Mapping[str, Any], *, owned: bool = False) -> S:
        """Validate a whole new state (model instance or mapping), rejecting unknown keys. An instance
        is deep-copied first unless ``owned`` (nobody else holds a reference to it)."""
        model = self.state_model
        if is_frozen_model(value) and isinstance(value, model):
            return value  # already a sealed, valid snapshot (e.g. replace(old_snapshot))
        extra: Literal["forbid"] | None = None if model.model_config.get("extra") == "allow" else "forbid"
        try:
            if isinstance(value, BaseModel):
                if not isinstance(value, model):
                    raise TypeError(f"expected a {model.__name__}, got {type(value).__name__}")
                validated = model.__pydantic_validator__.validate_python(
                    value if owned else copy.deepcopy(value)
                )
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
        runtime = self._runtime
        # one test for the rare cases (disposed, nested patch, a getter running): the common path pays one
        if self._disposed or self._txn is not None or runtime.evaluating:
            self._check_writable()
        if running_loop() is not runtime.loop:
            runtime.check_thread(f"store {self.store_id!r}: patch()")
        mine = runtime.batch_of(self) if self._batches else None
        if type(changes) is dict or (not callable(changes) and isinstance(changes, Mapping)):
            if mine is None and self._flat_patch(changes):
                return
            kind = _PATCH_OBJECT
        elif callable(changes):
            kind = _PATCH_FUNCTION
        else:
            raise TypeError(f"patch() takes a mapping or a function, not {type(changes).__name__}")
        txn = Txn(self._schema, self.store_id)
        # The root plan is known unless the state is an instance of a subclass (replace(subclass_obj)).
        # (No local name for the state: appends in place rely on counting who references it.)
        if mine is None:
            plan = self._root_plan if type(self._state) is self._frozen_cls else None
            root = new_model_draft(txn, None, None, self._state, plan)
        else:  # inside this task's batch: edit the batch's own state
            plan = self._root_plan if type(mine.work) is self._frozen_cls else None
            root = new_model_draft(txn, None, None, mine.work, plan)
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
            new = txn.finish(root)
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
        work = shallow_model_copy(self._state, self._frozen_cls, changes)  # (sets the changed fields)
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
        self._check_thread("replace()")
        new = self._prepare_state(state)
        self._commit(new, MutationKind.REPLACE, new, _WHOLE)

    def reset(self) -> None:
        """Go back to ``initial_state()`` in one commit."""
        self._check_writable()
        self._check_thread("reset()")
        new = self._initial()
        self._commit(new, MutationKind.RESET, None, _WHOLE)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group this task's writes inside the block into one commit; if the block raises, none stay.

        The batch belongs to the task that opened it: other tasks' writes commit at once and never join
        it or roll back with it. Nested, it is a savepoint (see ``_batch.py``).
        """
        self._check_writable()
        self._check_thread("batch()")
        with self._transactions.hold(self._state) as batch:
            yield
        if batch is not None and batch.writes and not self._disposed:
            new = self._transactions.settle(batch, self._state, self._schema, self.store_id, self._initial)
            self._commit(new, MutationKind.BATCH, tuple(batch.writes), frozenset(batch.changed))

    def _bump(self) -> None:
        """Drop cached getter values of this store and of getters elsewhere that read it."""
        self._getters.invalidate()

    def _commit(self, new: S, kind: MutationKind, payload: Any, changed: frozenset[Loc]) -> None:
        runtime = self._runtime
        if self._batches:
            mine = runtime.batch_of(self)
            if mine is not None:  # joins this task's batch: nobody else sees it until the batch commits
                mine.work = new
                mine.writes.append((kind, payload))
                mine.changed.update(changed)
                return
            for other in self._batches:  # another task's batch: it commits on top of this, or conflicts
                other.foreign.update(changed)
        subs = self._subs
        if not subs.undelivered and runtime.draining:
            # Observers have not seen ``new`` yet and will get it from the queue; until then a new
            # observer starts from the state they last saw.
            subs.delivered = self._state
        self._state = new
        getters = self._getters
        if getters.values or getters.dependents:
            getters.invalidate()
        # the same test as _emit's (saves the call when nobody can see the commit)
        if (
            subs.listeners
            or subs.selections
            or runtime.draining
            or runtime.queue
            or runtime.mutations.observers
        ):
            self._emit(kind, payload, changed)

    def _emit(self, kind: MutationKind, payload: Any, changed: frozenset[Loc]) -> None:
        runtime = self._runtime
        subs = self._subs
        if (
            not subs.listeners
            and not subs.selections
            and not runtime.draining
            and not runtime.queue
            and not runtime.mutations.observers
        ):
            return  # nobody can see this commit, and nothing queued waits for it: no event to build
        current = runtime.action_var.get()
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (same object, about half the cost)
        if current is None:
            event = _new_event(MutationEvent, (kind, self.store_id, payload, None, None, changed))
        else:
            event = _new_event(MutationEvent, (kind, self.store_id, payload, current[1], current[2], changed))
        subs.undelivered += 1
        runtime.queue.append((subs, event, self._state))
        if not runtime.draining:
            runtime.drain()

    def _set_state_quietly(self, new: S) -> None:
        """Install state without an event (store creation, hydration before anyone can observe)."""
        self._state = new
        self._bump()

    # ---- observation (kept by self._subs) ---------------------------------------------------------------
    def subscribe(
        self, callback: Callable[[MutationEvent, S], object], *, detached: bool = False
    ) -> abc.DisposableBase:
        """Call ``callback(event, state)`` after every commit (Pinia's ``$subscribe``).

        Ends when the store is disposed, when you dispose the returned object, or when the scope it was
        made in ends (another store's ``on_init``/action, or an ``app.scope()``) unless ``detached``.
        """
        self._check_alive()
        require_callable(self.store_id, "subscribe()", "callback(event, state)", callback)
        return self._subs.subscribe(callback, detached)

    def observe(self) -> Observable[S]:
        """An Observable of state snapshots: the current one at once, then one per commit."""
        return cast("Observable[S]", self._subs.observe())

    def select(self, fn: Callable[[S], T], *, equal: Callable[[T, T], bool] | None = None) -> Selection[T]:
        """An Observable of ``fn(state)`` that replays its value and emits only when it changes.

        One computation is shared by all subscribers. ``fn`` re-runs only after commits that write a
        field it read. ``equal`` (default ``==``) decides what counts as a change.
        """
        self._check_alive()
        require_callable(self.store_id, "select()", "fn(state)", fn)
        if equal is not None:
            require_callable(self.store_id, "select()", "equal(old, new) or None", equal)
        return Selection(self._subs, fn, equal)

    def on_action(
        self, callback: Callable[[ActionCall], object], *, detached: bool = False
    ) -> abc.DisposableBase:
        """Call ``callback(call)`` before every action; ``call.after``/``call.on_error`` see how it ended."""
        self._check_alive()
        require_callable(self.store_id, "on_action()", "callback(call)", callback)
        disposable = self._actions.add_hook(callback)
        self._subs.adopt(disposable, detached)
        return disposable

    def _check_alive(self) -> None:
        if self._disposed:
            raise StoreDisposedError(f"store {self.store_id!r} is disposed; get a new one with app.use()")

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
            require_callable(self.store_id, "connect()", "handler(item)", handler)
        if reducer is not None:
            require_callable(self.store_id, "connect()", "reducer(draft, item)", reducer)
        return self._connections.connect(source, handler, reducer)

    # ---- lifecycle ------------------------------------------------------------------------------------
    def add_cleanup(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` when the store is disposed (after ``on_dispose``)."""
        self._cleanups.append(fn)

    def dispose(self) -> None:
        """Dispose the store: ``on_dispose``, cancel its tasks, end its connections and subscriptions,
        complete its Observables, and forget it (a later ``app.use`` builds a fresh one)."""
        if self._disposed:
            return
        self._check_thread("dispose()")
        try:
            self.on_dispose()
        except Exception as exc:
            self._subs.report("lifecycle", exc)
        self._disposed = True
        self._transactions.close_all()
        self._actions.close()
        self._connections.close()
        self._scope.dispose()
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as exc:
                self._subs.report("lifecycle", exc)
        self._cleanups.clear()
        getters = self._getters
        getters.values.clear()
        getters.dependents.clear()
        self._subs.close()
        self._runtime.forget(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.store_id!r}{' disposed' if self._disposed else ''}>"


# ---- wiring for the descriptors (set on every Getter / Action a Store class declares or inherits) ----
def _read_getter(store: Store[Any], getter: Getter[Any]) -> Any:
    return store._getters.read(store, getter)


def _runner_of(store: Store[Any]) -> RunAction:
    return store._actions.run


# ---- the store's interface to the app and the test kit (the only ways they reach a store's inside) ----
def install_state(store: Store[Any], state: BaseModel) -> None:
    """Install a validated, sealed state without an event (store creation)."""
    store._set_state_quietly(state)


def prepare_state(store: Store[Any], value: Any) -> Any:
    """Validate and seal a whole state for ``store`` (raises StateValidationError)."""
    return store._prepare_state(value)


def initial_state(store: Store[Any]) -> Any:
    """The store's ``initial_state()``, validated and sealed (raises StateValidationError)."""
    return store._initial()


def current_state(store: Store[Any]) -> Any:
    """The store's state, without read tracking."""
    return store._state


def store_scope(store: Store[Any]) -> Scope:
    """The scope that owns what the store subscribes to (ends on dispose)."""
    return store._scope


def is_patching(store: Store[Any]) -> bool:
    return store._txn is not None


def is_batching(store: Store[Any], *, any_task: bool = False) -> bool:
    """Whether this task (with ``any_task``: any task) has a ``store.batch()`` or atomic action open on it."""
    return bool(store._batches) and (any_task or store._runtime.batch_of(store) is not None)


def commit_hydrated(store: Store[Any], sealed: BaseModel) -> None:
    """Commit hydrated state to a live store as one ``hydrate`` commit."""
    store._commit(sealed, MutationKind.HYDRATE, sealed, _WHOLE)


def getter_cache(store: Store[Any]) -> GetterCache:
    return store._getters


def report_error(store: Store[Any], source: str, error: BaseException) -> None:
    """Report an error caught to keep going on ``store.errors`` (or the log, when nobody watches)."""
    store._subs.report(source, error)


def redefine(store: Store[Any], cls: type[Store[Any]]) -> None:
    """Hot replacement (Pinia's ``acceptHMRUpdate``): the live ``store`` becomes an instance of ``cls``,
    a new definition of its class. Subscriptions and tasks stay; the state is kept where it validates
    against the new model (removed fields go, new ones and fields that no longer validate take their
    defaults); a field that can be neither kept nor defaulted raises StoreDefinitionError, unchanged."""
    old_cls = type(store)
    new = None
    if cls.state_model is not old_cls.state_model:
        new = carried_state(store.store_id, cls, store._state)
    for name, value in list(store.__dict__.items()):
        if getattr(value, "__quvel_action__", None) is not None:
            del store.__dict__[name]  # bound actions of the old class (cached on first use)
    store.__class__ = cls
    schema = store._schema
    store._root_plan = schema.model_plan(cls.state_model)
    store._frozen_cls = schema.frozen_class(cls.state_model)
    store._flat_changed.clear()
    store._bump()
    if new is not None:
        store._commit(store._prepare_state(new), MutationKind.REPLACE, None, _WHOLE)
