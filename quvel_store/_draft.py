"""Drafts: the mutable stand-in ``patch(fn)`` hands to ``fn``, committed atomically or rolled back.

A draft node wraps one read-only value of the current state. Writes are validated as they happen
(only the new value: appending to a list validates one element) and touched paths are copied on write,
so a commit costs O(depth + size of what changed). When the store is provably the only owner of a
list or dict (its reference count proves it: see ``_Node._q_owned``), appends and item writes happen in place
with an undo log, which keeps 20,000 one-at-a-time appends linear instead of quadratic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from quvel_store._draft_containers import Container, DraftDict, DraftList, DraftSet, wrap
from quvel_store._draft_node import Loc, Node, dead, fmt_loc, plain, set_slot
from quvel_store._frozen import SCALARS, frozen_base, shallow_model_copy
from quvel_store._schema import ModelPlan, StateSchema
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


class Txn:
    """One patch: validation context, changed paths, in-place edits to undo, and the drafts' lifetime."""

    __slots__ = ("active", "changed", "inplace", "schema", "store_id")

    def __init__(self, schema: StateSchema, store_id: str) -> None:
        self.schema = schema
        self.store_id = store_id
        self.active = True
        self.changed: set[Loc] = set()
        self.inplace: list[Container] = []

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

    def model_draft(self, parent: Node, key: str | int, base: BaseModel) -> DraftModel:
        """A draft of a model value found inside a container draft (containers do not import models)."""
        return new_model_draft(self, parent, key, base)

    def rollback(self, root: Node | None = None) -> None:
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

    def close(self, root: Node | None = None) -> None:
        """End the patch; tearing the draft tree down drops its references to state objects at once,
        so the next patch can prove the store is their only owner."""
        self.active = False
        if self.inplace:
            self.inplace.clear()
        if root is not None:
            root._q_teardown()


def new_model_draft(
    txn: Txn, parent: Node | None, key: str | int | None, base: BaseModel, plan: ModelPlan | None = None
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


class DraftModel(Node):
    """Draft of a model instance: read fields, assign fields (validated at once), mutate nested values."""

    __slots__ = ("_q_children", "_q_plan", "_q_raw", "_q_work")
    _q_children: dict[str, Node]
    _q_plan: ModelPlan
    _q_raw: dict[str, Any]
    _q_work: Any

    def __init__(
        self,
        txn: Txn,
        parent: Node | None,
        key: str | int | None,
        base: BaseModel,
        plan: ModelPlan | None = None,
    ) -> None:
        # Node.__init__, inlined (one call less per patch), through the slots' own setters
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
            dead()
        # Methods and properties of the model see the state as it was before this patch.
        return getattr(self._q_base, name)

    def __setattr__(self, name: str, value: Any) -> None:
        txn = self._q_txn
        if not (txn.active and self._q_alive):
            dead()
        plan: ModelPlan = self._q_plan
        fplan = plan.fields.get(name)
        if fplan is None:
            raise txn.unknown((*self._q_path, name), plan.cls)
        children = self._q_children
        if children and children.get(name) is value and value is not None:
            return  # e.g. ``s.items += [...]`` assigns the same draft back
        if type(value) not in SCALARS:
            value = plain(value)
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
        return f"<draft of {frozen_base(type(self._q_base)).__name__} at {fmt_loc(self._q_path)}>"

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
                set_slot(self, "_q_work", work)
            if getattr(child, "_q_plan", None) is not None:
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


_m_txn = _slot_setter(Node, "_q_txn")
_m_parent = _slot_setter(Node, "_q_parent")
_m_key = _slot_setter(Node, "_q_key")
_m_base = _slot_setter(Node, "_q_base")
_m_alive = _slot_setter(Node, "_q_alive")
_m_path = _slot_setter(Node, "_q_path")
_m_plan = _slot_setter(DraftModel, "_q_plan")
_m_children = _slot_setter(DraftModel, "_q_children")
_m_raw = _slot_setter(DraftModel, "_q_raw")
_m_work = _slot_setter(DraftModel, "_q_work")


def _read_field(node: DraftModel, name: str) -> Any:
    """Read field ``name`` of a model draft: its current value, or a draft of it if it is mutable."""
    txn = node._q_txn
    if not (txn.active and node._q_alive):
        dead()
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
    wrapped = wrap(txn, node, name, value, fplan.plan if fplan.simple else None)
    if wrapped is not value:
        children[name] = wrapped
    return wrapped


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
