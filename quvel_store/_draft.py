"""Drafts: the mutable stand-in ``patch(fn)`` hands to ``fn``, committed atomically or rolled back.

A draft node wraps one read-only value of the current state. Writes are validated as they happen
(only the new value: appending to a list validates one element) and touched paths are copied on write,
so a commit costs O(depth + size of what changed). When the store is provably the only owner of a
list or dict (its reference count proves it: see ``_Node._q_owned``), appends and item writes happen in place
with an undo log, which keeps 20,000 one-at-a-time appends linear instead of quadratic.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn, SupportsIndex

from pydantic import BaseModel, ValidationError

from quvel_store._frozen import (
    OWNED_REFCOUNT,
    SCALARS,
    FrozenDict,
    FrozenList,
    FrozenSet,
    frozen_base,
    is_frozen_model,
    shallow_model_copy,
)
from quvel_store._schema import ModelPlan, StateSchema, TypePlan
from quvel_store.errors import StateMutationError, StateValidationError

__all__ = [
    "DraftDict",
    "DraftList",
    "DraftModel",
    "DraftSet",
    "Txn",
    "merge_into",
    "merged_state",
    "new_model_draft",
]

Loc = tuple[str | int, ...]
_set = object.__setattr__  # drafts refuse normal attribute writes; their own slots are set through this
_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


class Txn:
    """One patch: validation context, changed paths, in-place edits to undo, and the drafts' lifetime."""

    __slots__ = ("active", "changed", "inplace", "schema", "store_id")

    def __init__(self, schema: StateSchema, store_id: str) -> None:
        self.schema = schema
        self.store_id = store_id
        self.active = True
        self.changed: set[Loc] = set()
        self.inplace: list[_Container] = []

    def invalid(self, exc: ValidationError, prefix: Loc) -> StateValidationError:
        return StateValidationError(
            self.store_id,
            [{"loc": prefix + tuple(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()],
        )

    def unknown(self, loc: Loc, cls: type[BaseModel]) -> StateValidationError:
        return StateValidationError(
            self.store_id,
            [
                {
                    "loc": loc,
                    "msg": f"{cls.__name__} has no field {loc[-1]!r} (unknown keys are rejected)",
                    "type": "extra_forbidden",
                }
            ],
        )

    def rollback(self, root: _Node | None = None) -> None:
        """Undo in-place edits (newest first) and kill every draft of this patch."""
        for node in reversed(self.inplace):
            node._q_restore()
        self.close(root)

    def finish(self, root: DraftModel) -> Any:
        """The new state the patch made (sealed); call before ``close``."""
        return root._q_finalize()[0]

    def detach(self) -> None:
        """Someone reads the store's current state mid-patch: move in-place edits to private copies."""
        for node in list(self.inplace):
            node._q_to_copy()
        self.inplace.clear()

    def close(self, root: _Node | None = None) -> None:
        """End the patch; tearing the draft tree down drops its references to state objects at once,
        so the next patch can prove the store is their only owner."""
        self.active = False
        if self.inplace:
            self.inplace.clear()
        if root is not None:
            root._q_teardown()


def _dead() -> NoReturn:
    raise StateMutationError(
        "this draft belongs to a patch that has finished; take values from store.state, "
        "or do the whole change inside one patch function"
    )


def _wrap(txn: Txn, parent: _Node, key: str | int, value: Any, plan: TypePlan | None) -> Any:
    t = type(value)
    if t is FrozenList:
        return DraftList(txn, parent, key, value, plan if plan is not None and plan.kind == "list" else None)
    if t is FrozenDict:
        return DraftDict(txn, parent, key, value, plan if plan is not None and plan.kind == "dict" else None)
    if t is FrozenSet:
        return DraftSet(txn, parent, key, value, plan if plan is not None and plan.kind == "set" else None)
    if is_frozen_model(value):
        return new_model_draft(txn, parent, key, value)
    return value


def new_model_draft(
    txn: Txn, parent: _Node | None, key: str | int | None, base: BaseModel, plan: ModelPlan | None = None
) -> DraftModel:
    """A draft of model instance ``base``, of the model's own draft class (its fields are properties)."""
    if plan is None:
        plan = txn.schema.model_plan(type(base))
    cls = plan.draft_cls
    if cls is None:
        cls = plan.draft_cls = _draft_class(plan)
    draft: DraftModel = cls(txn, parent, key, base, plan)
    return draft


def _draft_class(plan: ModelPlan) -> type[DraftModel]:
    """A ``DraftModel`` subclass whose fields are properties: a field read is then an ordinary
    attribute lookup instead of a failed one that falls back to ``__getattr__`` (~4x slower)."""
    namespace: dict[str, Any] = {"__slots__": (), "__module__": __name__}
    for name in plan.fields:
        if not hasattr(DraftModel, name):
            namespace[name] = property(functools.partial(_read_field, name=name))
    return type(f"DraftModel[{plan.cls.__qualname__}]", (DraftModel,), namespace)


def _plain(value: Any) -> Any:
    """A value handed to a draft: drafts become independent plain copies of their current content,
    also inside new lists, tuples, sets and dicts built from them (``s.items = [*s.items, x]``,
    ``s.items = sorted(s.items, ...)``)."""
    if isinstance(value, _Node):
        current, _ = value._q_finalize()
        return copy.deepcopy(current)
    kind = type(value)
    if kind is dict:
        if any(_needs_plain(item) for item in value.values()):
            return {key: _plain(item) for key, item in value.items()}
    elif kind in _CONTAINERS and any(_needs_plain(item) for item in value):
        return kind(_plain(item) for item in value)
    return value


def _needs_plain(item: Any) -> bool:
    return isinstance(item, _Node) or type(item) in _CONTAINERS


_CONTAINERS: frozenset[type] = frozenset({list, tuple, set, frozenset, dict})


class _Node:
    __slots__ = ("_q_alive", "_q_base", "_q_key", "_q_parent", "_q_path", "_q_txn")
    _q_alive: bool
    _q_base: Any
    _q_key: str | int | None
    _q_parent: _Node | None
    _q_path: Loc
    _q_txn: Txn

    def __init__(self, txn: Txn, parent: _Node | None, key: str | int | None, base: Any) -> None:
        _set(self, "_q_txn", txn)
        _set(self, "_q_parent", parent)
        _set(self, "_q_key", key)
        _set(self, "_q_base", base)
        _set(self, "_q_alive", True)
        _set(self, "_q_path", () if parent is None or key is None else (*parent._q_path, key))

    def _q_check(self) -> Txn:
        txn = self._q_txn
        if not (txn.active and self._q_alive):
            _dead()
        return txn

    def _q_finalize(self) -> tuple[Any, bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_teardown(self) -> None:
        children: dict[Any, _Node] | None = getattr(self, "_q_children", None)
        if children:
            for child in children.values():
                child._q_teardown()
            children.clear()
        object.__setattr__(self, "_q_alive", False)
        object.__setattr__(self, "_q_parent", None)
        object.__setattr__(self, "_q_base", None)
        if hasattr(self, "_q_work"):
            object.__setattr__(self, "_q_work", None)

    def _q_slot_extra(self, key: str | int, base: Any) -> int:
        """1 when this node's private working copy also references ``base`` at ``key``."""
        return 0

    def _q_owned(self) -> bool:
        """Whether this node's value and every ancestor are seen by nobody but the store and this patch."""
        if OWNED_REFCOUNT <= 0:
            return False
        node: _Node | None = self
        while node is not None:
            parent = node._q_parent
            extra = (
                parent._q_slot_extra(node._q_key, node._q_base)
                if parent is not None and node._q_key is not None
                else 0
            )
            if sys.getrefcount(node._q_base) > OWNED_REFCOUNT + extra:
                return False
            node = parent
        return True


class DraftModel(_Node):
    """Draft of a model instance: read fields, assign fields (validated at once), mutate nested values."""

    __slots__ = ("_q_children", "_q_plan", "_q_raw", "_q_work")
    _q_children: dict[str, _Node]
    _q_plan: ModelPlan
    _q_raw: dict[str, Any]
    _q_work: Any

    def __init__(
        self,
        txn: Txn,
        parent: _Node | None,
        key: str | int | None,
        base: BaseModel,
        plan: ModelPlan | None = None,
    ) -> None:
        # _Node.__init__, inlined (one call less per patch), through the slots' own setters
        _m_txn(self, txn)
        _m_parent(self, parent)
        _m_key(self, key)
        _m_base(self, base)
        _m_alive(self, True)
        _m_path(self, () if parent is None or key is None else (*parent._q_path, key))
        _m_plan(self, plan if plan is not None else txn.schema.model_plan(type(base)))
        _m_children(self, {})
        _m_raw(self, {})
        _m_work(self, None)

    @property  # type: ignore[misc]
    def __class__(self) -> type[Any]:  # isinstance(draft, YourState) holds
        return frozen_base(type(self._q_base))

    def _q_slot_extra(self, key: str | int, base: Any) -> int:
        work = self._q_work
        return 1 if work is not None and work.__dict__.get(key) is base else 0

    def _q_teardown(self) -> None:
        children = self._q_children
        if children:
            for child in children.values():
                child._q_teardown()
            children.clear()
        _m_alive(self, False)
        _m_parent(self, None)
        _m_base(self, None)
        _m_work(self, None)

    def _q_current(self, name: str) -> Any:
        raw = self._q_raw
        if name in raw:
            return raw[name]
        work = self._q_work
        return (work if work is not None else self._q_base).__dict__[name]

    def __getattr__(self, name: str) -> Any:
        if name in self._q_plan.fields:
            return _read_field(self, name)
        if not (self._q_txn.active and self._q_alive):
            _dead()
        # Methods and properties of the model see the state as it was before this patch.
        return getattr(self._q_base, name)

    def __setattr__(self, name: str, value: Any) -> None:
        txn = self._q_txn
        if not (txn.active and self._q_alive):
            _dead()
        plan: ModelPlan = self._q_plan
        fplan = plan.fields.get(name)
        if fplan is None:
            raise txn.unknown((*self._q_path, name), plan.cls)
        children = self._q_children
        if children and children.get(name) is value and value is not None:
            return  # e.g. ``s.items += [...]`` assigns the same draft back
        if type(value) not in SCALARS:
            value = _plain(value)
        if children:
            old = children.pop(name, None)
            if old is not None:
                old._q_teardown()
        if plan.eager:
            work = self._q_work
            if work is None:
                work = shallow_model_copy(self._q_base, plan.frozen_cls)
                _m_work(self, work)
            check = fplan.check
            if check is not None:  # int/float/str/bool field: validate the value alone
                d = work.__dict__
                if value is not d[name]:  # the current value is valid already
                    try:
                        d[name] = check(value)
                    except ValidationError as exc:
                        raise txn.invalid(exc, (*self._q_path, name)) from None
                work.__pydantic_fields_set__.add(name)
            else:
                try:
                    plan.cls.__pydantic_validator__.validate_assignment(work, name, value, extra=plan.extra)
                except ValidationError as exc:
                    raise txn.invalid(exc, self._q_path) from None
                d = work.__dict__
                if type(d[name]) not in SCALARS:
                    d[name] = txn.schema.seal(d[name])
        else:
            self._q_raw[name] = value
        txn.changed.add((*self._q_path, name))

    def __delattr__(self, name: str) -> None:
        raise StateMutationError(f"cannot delete state field {name!r}; assign None or a default instead")

    def __repr__(self) -> str:
        return f"<draft of {frozen_base(type(self._q_base)).__name__} at {_fmt(self._q_path)}>"

    def _q_finalize(self) -> tuple[Any, bool]:
        plan: ModelPlan = self._q_plan
        txn = self._q_txn
        base = self._q_base
        if not plan.eager:
            return self._q_finalize_deferred(plan, txn)
        work = self._q_work
        for name, child in self._q_children.items():
            value, changed = child._q_finalize()
            if not changed:
                continue
            if work is None:
                work = shallow_model_copy(base, plan.frozen_cls)
                _set(self, "_q_work", work)
            if isinstance(child, DraftModel) or getattr(child, "_q_plan", None) is not None:
                work.__dict__[name] = value
                work.__pydantic_fields_set__.add(name)
            else:
                try:
                    plan.cls.__pydantic_validator__.validate_assignment(work, name, value, extra=plan.extra)
                except ValidationError as exc:
                    raise txn.invalid(exc, self._q_path) from None
                d = work.__dict__
                d[name] = txn.schema.seal(d[name])
        if work is None:
            return base, False
        return work, True

    def _q_finalize_deferred(self, plan: ModelPlan, txn: Txn) -> tuple[Any, bool]:
        base = self._q_base
        data: dict[str, Any] = {}
        changed = bool(self._q_raw)
        finals: dict[str, Any] = {}
        for name, child in self._q_children.items():
            value, ch = child._q_finalize()
            if ch:
                finals[name] = value
                changed = True
        if not changed:
            return base, False
        for name in plan.fields:
            if name in finals:
                data[name] = finals[name]
            elif name in self._q_raw:
                data[name] = self._q_raw[name]
            else:
                data[name] = base.__dict__[name]
        if base.__pydantic_extra__:
            data.update(base.__pydantic_extra__)
        try:
            new = plan.cls.__pydantic_validator__.validate_python(data, extra=plan.extra, by_name=True)
        except ValidationError as exc:
            raise txn.invalid(exc, self._q_path) from None
        return txn.schema.seal(new), True


def _slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The setter of slot ``name`` of ``cls``: half the cost of ``object.__setattr__``, which looks the
    name up first (model drafts set ten slots per patch)."""
    setter: Callable[[Any, Any], None] = cls.__dict__[name].__set__
    return setter


_m_txn = _slot_setter(_Node, "_q_txn")
_m_parent = _slot_setter(_Node, "_q_parent")
_m_key = _slot_setter(_Node, "_q_key")
_m_base = _slot_setter(_Node, "_q_base")
_m_alive = _slot_setter(_Node, "_q_alive")
_m_path = _slot_setter(_Node, "_q_path")
_m_plan = _slot_setter(DraftModel, "_q_plan")
_m_children = _slot_setter(DraftModel, "_q_children")
_m_raw = _slot_setter(DraftModel, "_q_raw")
_m_work = _slot_setter(DraftModel, "_q_work")


def _read_field(node: DraftModel, name: str) -> Any:
    """Read field ``name`` of a model draft: its current value, or a draft of it if it is mutable."""
    txn = node._q_txn
    if not (txn.active and node._q_alive):
        _dead()
    children = node._q_children
    if name in children:
        return children[name]
    raw = node._q_raw
    if name in raw:
        return raw[name]
    work = node._q_work
    value = (work if work is not None else node._q_base).__dict__[name]
    if type(value) in SCALARS:
        return value
    fplan = node._q_plan.fields[name]
    wrapped = _wrap(txn, node, name, value, fplan.plan if fplan.simple else None)
    if wrapped is not value:
        children[name] = wrapped
    return wrapped


class _Container(_Node):
    """Shared machinery of list/dict/set drafts: untouched, edited in place (with undo), or copied."""

    __slots__ = ("_q_children", "_q_mode", "_q_plan", "_q_work")
    _q_children: dict[Any, _Node]
    _q_mode: int
    _q_plan: TypePlan | None
    _q_work: Any

    def __init__(self, txn: Txn, parent: _Node, key: str | int, base: Any, plan: TypePlan | None) -> None:
        super().__init__(txn, parent, key, base)
        object.__setattr__(self, "_q_plan", plan)
        object.__setattr__(self, "_q_children", {})
        object.__setattr__(self, "_q_mode", 0)  # 0 untouched, 1 in place, 2 private copy
        object.__setattr__(self, "_q_work", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise StateMutationError(f"cannot set attribute {name!r} on a draft container")

    def _q_cur(self) -> Any:
        return self._q_work if self._q_mode else self._q_base

    def _q_slot_extra(self, key: str | int, base: Any) -> int:
        if self._q_mode != 2:
            return 0
        work = self._q_work
        try:
            return 1 if work[key] is base else 0
        except (KeyError, IndexError, TypeError):
            return 0

    def _q_copy_of(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_restore(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_prepare(self, inplace: bool) -> None:
        """Make the container writable: in place when allowed and provably private, else a copy."""
        mode = self._q_mode
        if mode == 2:
            return
        if mode == 1:
            if not inplace:
                self._q_to_copy()
            return
        if inplace and self._q_plan is not None and self._q_owned():
            object.__setattr__(self, "_q_mode", 1)
            object.__setattr__(self, "_q_work", self._q_base)
            self._q_begin_inplace()
            self._q_txn.inplace.append(self)
        else:
            object.__setattr__(self, "_q_work", self._q_copy_of(self._q_base))
            object.__setattr__(self, "_q_mode", 2)

    def _q_begin_inplace(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_to_copy(self) -> None:
        if self._q_mode != 1:
            return
        work = self._q_copy_of(self._q_base)
        self._q_restore()
        object.__setattr__(self, "_q_work", work)
        object.__setattr__(self, "_q_mode", 2)
        with contextlib.suppress(ValueError):
            self._q_txn.inplace.remove(self)

    def _q_validate(self, value: Any, loc: Loc) -> Any:
        value = _plain(value)
        plan = self._q_plan
        if plan is None or plan.validate_elem is None:
            return value
        try:
            validated = plan.validate_elem(value)
        except ValidationError as exc:
            raise self._q_txn.invalid(exc, (*self._q_path, *loc)) from None
        return self._q_txn.schema.seal(validated)

    def _q_child(self, key: Any, value: Any) -> Any:
        child = self._q_children.get(key)
        if child is not None:
            return child
        plan = self._q_plan
        wrapped = _wrap(self._q_txn, self, key, value, plan.elem if plan is not None else None)
        if wrapped is not value:
            self._q_children[key] = wrapped
        return wrapped

    def _q_drop_children(self) -> None:
        """Writes back element drafts before a reordering; the old element drafts die."""
        if not self._q_children:
            return
        for key, child in list(self._q_children.items()):
            value, changed = child._q_finalize()
            if changed:
                self._q_work[key] = self._q_child_value(value, child, key)
            child._q_teardown()
        self._q_children.clear()

    def _q_child_value(self, value: Any, child: _Node, key: Any) -> Any:
        """A finalized child value ready to store here (validated if the child could not do it)."""
        if isinstance(child, DraftModel) or getattr(child, "_q_plan", None) is not None:
            return value
        return self._q_validate(value, (key,))

    def _q_finish(self) -> tuple[Any, bool]:
        changed = self._q_mode != 0
        for key, child in self._q_children.items():
            value, ch = child._q_finalize()
            if not ch:
                continue
            changed = True
            value = self._q_child_value(value, child, key)
            self._q_prepare(inplace=True)
            self._q_store(key, value)
        if not changed:
            return self._q_base, False
        if self._q_mode == 1:
            return self._q_base, True
        return self._q_seal_work(), True

    def _q_store(self, key: Any, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_seal_work(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_finalize(self) -> tuple[Any, bool]:
        return self._q_finish()

    def __repr__(self) -> str:
        return f"<draft {self._q_cur()!r}>"

    def __len__(self) -> int:
        self._q_check()
        return len(self._q_cur())

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, item: object) -> bool:
        self._q_check()
        return _plain(item) in self._q_cur()

    def __eq__(self, other: object) -> bool:
        self._q_check()
        return bool(self._q_cur() == _plain(other))

    __hash__ = None  # type: ignore[assignment]


class DraftList(_Container):
    """Draft of a list field: the list API, with element drafts for models and nested containers."""

    __slots__ = ("_q_overwritten", "_q_start")
    _q_overwritten: dict[int, Any]
    _q_start: int

    def __init__(self, txn: Txn, parent: _Node, key: str | int, base: Any, plan: TypePlan | None) -> None:
        super().__init__(txn, parent, key, base, plan)
        object.__setattr__(self, "_q_start", 0)
        object.__setattr__(self, "_q_overwritten", {})

    def _q_copy_of(self, value: Any) -> Any:
        return list(value)

    def _q_begin_inplace(self) -> None:
        object.__setattr__(self, "_q_start", len(self._q_base))

    def _q_restore(self) -> None:
        base = self._q_base
        list.__delitem__(base, slice(self._q_start, None))
        for index, old in self._q_overwritten.items():
            list.__setitem__(base, index, old)
        self._q_overwritten.clear()

    def _q_store(self, key: Any, value: Any) -> None:
        if self._q_mode == 1:
            base = self._q_base
            if key < self._q_start and key not in self._q_overwritten:
                self._q_overwritten[key] = base[key]
            list.__setitem__(base, key, value)
        else:
            self._q_work[key] = value

    def _q_seal_work(self) -> Any:
        return FrozenList(self._q_work) if self._q_plan is not None else list(self._q_work)

    # ---- reads ----------------------------------------------------------------------------------------
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        self._q_check()
        cur = self._q_cur()
        if isinstance(index, slice):
            return [self._q_child(i, cur[i]) for i in range(*index.indices(len(cur)))]
        i = _norm(index, len(cur))
        return self._q_child(i, cur[i])

    def __iter__(self) -> Iterator[Any]:
        self._q_check()
        i = 0
        while i < len(self._q_cur()):
            yield self._q_child(i, self._q_cur()[i])
            i += 1

    def index(self, value: Any, *args: Any) -> int:
        self._q_check()
        return int(self._q_cur().index(_plain(value), *args))

    def count(self, value: Any) -> int:
        self._q_check()
        return int(self._q_cur().count(_plain(value)))

    # ---- writes ---------------------------------------------------------------------------------------
    def append(self, value: Any) -> None:
        txn = self._q_check()
        value = self._q_validate(value, (len(self._q_cur()),))
        self._q_prepare(inplace=True)
        if self._q_mode == 1:
            list.append(self._q_base, value)
        else:
            self._q_work.append(value)
        txn.changed.add(self._q_path)

    def extend(self, values: Iterable[Any]) -> None:
        txn = self._q_check()
        start = len(self._q_cur())
        validated = [self._q_validate(v, (start + n,)) for n, v in enumerate(list(values))]
        self._q_prepare(inplace=True)
        if self._q_mode == 1:
            list.extend(self._q_base, validated)
        else:
            self._q_work.extend(validated)
        txn.changed.add(self._q_path)

    def __iadd__(self, values: Iterable[Any]) -> DraftList:
        self.extend(values)
        return self

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        txn = self._q_check()
        if isinstance(index, slice):
            validated = [self._q_validate(v, (n,)) for n, v in enumerate(list(value))]
            self._q_prepare(inplace=False)
            self._q_drop_children()
            self._q_work[index] = validated
        else:
            i = _norm(index, len(self._q_cur()))
            value = self._q_validate(value, (i,))
            old = self._q_children.pop(i, None)
            if old is not None:
                old._q_teardown()
            self._q_prepare(inplace=True)
            self._q_store(i, value)
        txn.changed.add(self._q_path)

    def _q_structural(self) -> Txn:
        txn = self._q_check()
        self._q_prepare(inplace=False)
        self._q_drop_children()
        txn.changed.add(self._q_path)
        return txn

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        self._q_structural()
        del self._q_work[index]

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self._q_check()
        value = self._q_validate(value, (int(index),))
        self._q_structural()
        self._q_work.insert(index, value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._q_structural()
        return self._q_work.pop(index)

    def remove(self, value: Any) -> None:
        self._q_structural()
        self._q_work.remove(_plain(value))

    def clear(self) -> None:
        self._q_structural()
        self._q_work.clear()

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        self._q_structural()
        self._q_work.sort(key=key, reverse=reverse)

    def reverse(self) -> None:
        self._q_structural()
        self._q_work.reverse()


class DraftDict(_Container):
    """Draft of a dict field: the dict API, with drafts for model and container values."""

    __slots__ = ("_q_overwritten",)
    _q_overwritten: dict[Any, Any]

    def __init__(self, txn: Txn, parent: _Node, key: str | int, base: Any, plan: TypePlan | None) -> None:
        super().__init__(txn, parent, key, base, plan)
        object.__setattr__(self, "_q_overwritten", {})

    def _q_copy_of(self, value: Any) -> Any:
        return dict(value)

    def _q_begin_inplace(self) -> None:
        pass

    def _q_restore(self) -> None:
        base = self._q_base
        for key, old in self._q_overwritten.items():
            if old is _MISSING:
                dict.pop(base, key, None)
            else:
                dict.__setitem__(base, key, old)
        self._q_overwritten.clear()

    def _q_remember(self, key: Any) -> None:
        if key not in self._q_overwritten:
            self._q_overwritten[key] = dict.get(self._q_base, key, _MISSING)

    def _q_store(self, key: Any, value: Any) -> None:
        if self._q_mode == 1:
            self._q_remember(key)
            dict.__setitem__(self._q_base, key, value)
        else:
            self._q_work[key] = value

    def _q_seal_work(self) -> Any:
        return FrozenDict(self._q_work) if self._q_plan is not None else dict(self._q_work)

    def _q_key_of(self, key: Any) -> Any:
        plan = self._q_plan
        if plan is None or plan.validate_key is None:
            return key
        try:
            return plan.validate_key(key)
        except ValidationError as exc:
            raise self._q_txn.invalid(exc, (*self._q_path, str(key))) from None

    # ---- reads ----------------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        self._q_check()
        return self._q_child(key, self._q_cur()[key])

    def get(self, key: Any, default: Any = None) -> Any:
        self._q_check()
        cur = self._q_cur()
        return self._q_child(key, cur[key]) if key in cur else default

    def __iter__(self) -> Iterator[Any]:
        self._q_check()
        return iter(list(self._q_cur()))

    def keys(self) -> list[Any]:
        self._q_check()
        return list(self._q_cur())

    def values(self) -> list[Any]:
        self._q_check()
        return [self._q_child(k, v) for k, v in list(self._q_cur().items())]

    def items(self) -> list[tuple[Any, Any]]:
        self._q_check()
        return [(k, self._q_child(k, v)) for k, v in list(self._q_cur().items())]

    # ---- writes ---------------------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        txn = self._q_check()
        key = self._q_key_of(key)
        value = self._q_validate(value, (key,))
        old = self._q_children.pop(key, None)
        if old is not None:
            old._q_teardown()
        self._q_prepare(inplace=True)
        self._q_store(key, value)
        txn.changed.add((*self._q_path, key))

    def update(self, other: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), **kwargs: Any) -> None:
        pairs = list(other.items() if isinstance(other, Mapping) else other) + list(kwargs.items())
        for k, v in pairs:
            self[k] = v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self._q_cur():
            self[key] = default
        return self[key]

    def __delitem__(self, key: Any) -> None:
        txn = self._q_check()
        if key not in self._q_cur():
            raise KeyError(key)
        old = self._q_children.pop(key, None)
        if old is not None:
            old._q_teardown()
        self._q_prepare(inplace=True)
        if self._q_mode == 1:
            self._q_remember(key)
            dict.__delitem__(self._q_base, key)
        else:
            del self._q_work[key]
        txn.changed.add((*self._q_path, key))

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        self._q_check()
        if key not in self._q_cur():
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = self._q_cur()[key]
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        self._q_check()
        if not self._q_cur():
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(list(self._q_cur())))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self._q_cur()):
            del self[key]


class DraftSet(_Container):
    """Draft of a set field (always edited on a private copy)."""

    __slots__ = ()

    def _q_copy_of(self, value: Any) -> Any:
        return set(value)

    def _q_restore(self) -> None:
        pass

    def _q_begin_inplace(self) -> None:
        pass

    def _q_seal_work(self) -> Any:
        return FrozenSet(self._q_work) if self._q_plan is not None else set(self._q_work)

    def __iter__(self) -> Iterator[Any]:
        self._q_check()
        return iter(list(self._q_cur()))

    def _q_edit(self) -> set[Any]:
        txn = self._q_check()
        self._q_prepare(inplace=False)
        txn.changed.add(self._q_path)
        work: set[Any] = self._q_work
        return work

    def add(self, value: Any) -> None:
        value = self._q_validate(value, ())
        self._q_edit().add(value)

    def discard(self, value: Any) -> None:
        self._q_edit().discard(_plain(value))

    def remove(self, value: Any) -> None:
        self._q_edit().remove(_plain(value))

    def pop(self) -> Any:
        return self._q_edit().pop()

    def clear(self) -> None:
        self._q_edit().clear()

    def update(self, *others: Iterable[Any]) -> None:
        values = [self._q_validate(v, ()) for other in others for v in other]
        self._q_edit().update(values)

    def difference_update(self, *others: Iterable[Any]) -> None:
        self._q_edit().difference_update(*others)


def _norm(index: SupportsIndex, length: int) -> int:
    i = int(index)
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError("list index out of range")
    return i


def _fmt(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def merge_into(node: DraftModel, data: Mapping[str, Any]) -> None:
    """Deep-merge ``data`` into a model draft: mappings merge into models and dicts; lists replace."""
    plan: ModelPlan = node._q_plan
    for key, value in data.items():
        if not isinstance(key, str) or key not in plan.fields:
            raise node._q_txn.unknown((*node._q_path, key), plan.cls)
        if isinstance(value, Mapping):
            current = getattr(node, key)
            if isinstance(current, DraftModel):
                merge_into(current, value)
                continue
            if isinstance(current, DraftDict):
                _merge_dict(current, value)
                continue
        setattr(node, key, value)


def _merge_dict(node: DraftDict, data: Mapping[Any, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping) and key in node._q_cur():
            current = node[key]
            if isinstance(current, DraftModel):
                merge_into(current, value)
                continue
            if isinstance(current, DraftDict):
                _merge_dict(current, value)
                continue
        node[key] = value


def merged_state(schema: StateSchema, store_id: str, state: BaseModel, data: Mapping[str, Any]) -> Any:
    """``state`` with ``data`` deep-merged over it, validated and sealed (``state`` is left as it was)."""
    txn = Txn(schema, store_id)
    root = DraftModel(txn, None, None, state)
    try:
        merge_into(root, data)
        new, _ = root._q_finalize()
    except BaseException:
        txn.rollback(root)
        raise
    txn.close(root)
    return new
