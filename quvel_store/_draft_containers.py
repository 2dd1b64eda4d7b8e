"""List, dict and set drafts: untouched, edited in place under an undo log, or copied on write."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, SupportsIndex

from pydantic import ValidationError

from quvel_store._draft_node import MISSING, Loc, Node, norm_index, plain
from quvel_store._frozen import FrozenDict, FrozenList, FrozenSet, is_frozen_model
from quvel_store._schema import TypePlan
from quvel_store.errors import StateMutationError

if TYPE_CHECKING:
    from quvel_store._draft import Txn

__all__ = ["Container", "DraftDict", "DraftList", "DraftSet", "wrap"]


def wrap(txn: Txn, parent: Node, key: str | int, value: Any, plan: TypePlan | None) -> Any:
    t = type(value)
    if t is FrozenList:
        return DraftList(txn, parent, key, value, plan if plan is not None and plan.kind == "list" else None)
    if t is FrozenDict:
        return DraftDict(txn, parent, key, value, plan if plan is not None and plan.kind == "dict" else None)
    if t is FrozenSet:
        return DraftSet(txn, parent, key, value, plan if plan is not None and plan.kind == "set" else None)
    if is_frozen_model(value):
        return txn.model_draft(parent, key, value)
    return value


class Container(Node):
    """Shared machinery of list/dict/set drafts: untouched, edited in place (with undo), or copied."""

    __slots__ = ("_q_children", "_q_mode", "_q_plan", "_q_work")
    _q_children: dict[Any, Node]
    _q_mode: int
    _q_plan: TypePlan | None
    _q_work: Any

    def __init__(self, txn: Txn, parent: Node, key: str | int, base: Any, plan: TypePlan | None) -> None:
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
        value = plain(value)
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
        wrapped = wrap(self._q_txn, self, key, value, plan.elem if plan is not None else None)
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

    def _q_child_value(self, value: Any, child: Node, key: Any) -> Any:
        """A finalized child value ready to store here (validated if the child could not do it)."""
        if getattr(child, "_q_plan", None) is not None:
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
        return plain(item) in self._q_cur()

    def __eq__(self, other: object) -> bool:
        self._q_check()
        return bool(self._q_cur() == plain(other))

    __hash__ = None  # type: ignore[assignment]


class DraftList(Container):
    """Draft of a list field: the list API, with element drafts for models and nested containers."""

    __slots__ = ("_q_overwritten", "_q_start")
    _q_overwritten: dict[int, Any]
    _q_start: int

    def __init__(self, txn: Txn, parent: Node, key: str | int, base: Any, plan: TypePlan | None) -> None:
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
        i = norm_index(index, len(cur))
        return self._q_child(i, cur[i])

    def __iter__(self) -> Iterator[Any]:
        self._q_check()
        i = 0
        while i < len(self._q_cur()):
            yield self._q_child(i, self._q_cur()[i])
            i += 1

    def index(self, value: Any, *args: Any) -> int:
        self._q_check()
        return int(self._q_cur().index(plain(value), *args))

    def count(self, value: Any) -> int:
        self._q_check()
        return int(self._q_cur().count(plain(value)))

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
            i = norm_index(index, len(self._q_cur()))
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
        self._q_work.remove(plain(value))

    def clear(self) -> None:
        self._q_structural()
        self._q_work.clear()

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        self._q_structural()
        self._q_work.sort(key=key, reverse=reverse)

    def reverse(self) -> None:
        self._q_structural()
        self._q_work.reverse()


class DraftDict(Container):
    """Draft of a dict field: the dict API, with drafts for model and container values."""

    __slots__ = ("_q_overwritten",)
    _q_overwritten: dict[Any, Any]

    def __init__(self, txn: Txn, parent: Node, key: str | int, base: Any, plan: TypePlan | None) -> None:
        super().__init__(txn, parent, key, base, plan)
        object.__setattr__(self, "_q_overwritten", {})

    def _q_copy_of(self, value: Any) -> Any:
        return dict(value)

    def _q_begin_inplace(self) -> None:
        pass

    def _q_restore(self) -> None:
        base = self._q_base
        for key, old in self._q_overwritten.items():
            if old is MISSING:
                dict.pop(base, key, None)
            else:
                dict.__setitem__(base, key, old)
        self._q_overwritten.clear()

    def _q_remember(self, key: Any) -> None:
        if key not in self._q_overwritten:
            self._q_overwritten[key] = dict.get(self._q_base, key, MISSING)

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

    def pop(self, key: Any, default: Any = MISSING) -> Any:
        self._q_check()
        if key not in self._q_cur():
            if default is MISSING:
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


class DraftSet(Container):
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
        self._q_edit().discard(plain(value))

    def remove(self, value: Any) -> None:
        self._q_edit().remove(plain(value))

    def pop(self) -> Any:
        return self._q_edit().pop()

    def clear(self) -> None:
        self._q_edit().clear()

    def update(self, *others: Iterable[Any]) -> None:
        values = [self._q_validate(v, ()) for other in others for v in other]
        self._q_edit().update(values)

    def difference_update(self, *others: Iterable[Any]) -> None:
        self._q_edit().difference_update(*others)
