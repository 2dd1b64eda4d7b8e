"""Read-only state snapshots: frozen containers, frozen model classes, sealing and ownership checks.

A committed state is a tree of ordinary pydantic instances whose classes are swapped for a read-only
subclass (``isinstance`` still holds, ``model_dump`` is unchanged) and whose lists, dicts and sets are
read-only subclasses of the builtins. Snapshots share every untouched subtree with their successor.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Collection, Iterable
from typing import Any, NoReturn, SupportsIndex, TypeVar

from pydantic import BaseModel

from quvel_store.errors import StateMutationError

__all__ = [
    "FrozenDict",
    "FrozenList",
    "FrozenSet",
    "frozen_base",
    "is_frozen_model",
    "shallow_model_copy",
    "thaw",
]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_HINT = "state snapshots are read-only; change state with store.patch(...) inside the store or an action"


def _refuse(what: str) -> NoReturn:
    raise StateMutationError(f"cannot {what}: {_HINT}")


class FrozenList(list[T]):
    """A list that refuses in-place changes; copies (``list(x)``, ``copy``) are ordinary lists."""

    __slots__ = ()

    def append(self, obj: T, /) -> NoReturn:
        _refuse("append to a state list")

    def extend(self, iterable: Iterable[T], /) -> NoReturn:
        _refuse("extend a state list")

    def insert(self, index: SupportsIndex, obj: T, /) -> NoReturn:
        _refuse("insert into a state list")

    def remove(self, value: T, /) -> NoReturn:
        _refuse("remove from a state list")

    def pop(self, index: SupportsIndex = -1, /) -> NoReturn:
        _refuse("pop from a state list")

    def clear(self) -> NoReturn:
        _refuse("clear a state list")

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("sort a state list in place (use sorted())")

    def reverse(self) -> NoReturn:
        _refuse("reverse a state list in place")

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        _refuse("set an item of a state list")

    def __delitem__(self, key: Any) -> NoReturn:
        _refuse("delete an item of a state list")

    def __iadd__(self, other: Iterable[T]) -> NoReturn:  # type: ignore[misc,override]
        _refuse("extend a state list")

    def __imul__(self, n: SupportsIndex) -> NoReturn:
        _refuse("repeat a state list in place")

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __copy__(self) -> list[T]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[T]:
        return [copy.deepcopy(v, memo) for v in self]


class FrozenDict(dict[K, V]):
    """A dict that refuses in-place changes; copies are ordinary dicts."""

    __slots__ = ()

    def __setitem__(self, key: K, value: V) -> NoReturn:
        _refuse("set a key of a state dict")

    def __delitem__(self, key: K) -> NoReturn:
        _refuse("delete a key of a state dict")

    def pop(self, *args: Any) -> NoReturn:
        _refuse("pop from a state dict")

    def popitem(self) -> NoReturn:
        _refuse("pop from a state dict")

    def clear(self) -> NoReturn:
        _refuse("clear a state dict")

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update a state dict")

    def setdefault(self, *args: Any) -> NoReturn:
        _refuse("setdefault on a state dict")

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("update a state dict")

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[K, V]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[K, V]:
        return {copy.deepcopy(k, memo): copy.deepcopy(v, memo) for k, v in self.items()}


class FrozenSet(set[T]):
    """A set that refuses in-place changes; copies are ordinary sets."""

    __slots__ = ()

    def add(self, element: T, /) -> NoReturn:
        _refuse("add to a state set")

    def discard(self, element: object, /) -> NoReturn:
        _refuse("discard from a state set")

    def remove(self, element: T, /) -> NoReturn:
        _refuse("remove from a state set")

    def pop(self) -> NoReturn:
        _refuse("pop from a state set")

    def clear(self) -> NoReturn:
        _refuse("clear a state set")

    def update(self, *s: Iterable[T]) -> NoReturn:
        _refuse("update a state set")

    def intersection_update(self, *s: Iterable[Any]) -> NoReturn:
        _refuse("update a state set")

    def difference_update(self, *s: Iterable[Any]) -> NoReturn:
        _refuse("update a state set")

    def symmetric_difference_update(self, s: Iterable[T], /) -> NoReturn:
        _refuse("update a state set")

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("update a state set")

    def __iand__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("update a state set")

    def __isub__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("update a state set")

    def __ixor__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse("update a state set")

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (set, (set(self),))

    def __copy__(self) -> set[T]:
        return set(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> set[T]:
        return {copy.deepcopy(v, memo) for v in self}


FROZEN_CONTAINERS = (FrozenList, FrozenDict, FrozenSet)
_BASE_ATTR = "__quvel_frozen_base__"


def frozen_base(cls: type[Any]) -> type[Any]:
    """The user's model class behind a frozen class (or ``cls`` itself when it is not frozen)."""
    base: type[Any] | None = cls.__dict__.get(_BASE_ATTR)
    return base if base is not None else cls


def is_frozen_model(obj: object) -> bool:
    return _BASE_ATTR in type(obj).__dict__


def _frozen_setattr(self: BaseModel, name: str, value: Any) -> NoReturn:
    _refuse(f"set {type(self).__name__}.{name}")


def _frozen_delattr(self: BaseModel, name: str) -> NoReturn:
    _refuse(f"delete {type(self).__name__}.{name}")


def _frozen_eq(self: BaseModel, other: object) -> object:
    if not isinstance(other, BaseModel):
        return NotImplemented
    if frozen_base(type(self)) is not frozen_base(type(other)):
        return False
    return bool(
        self.__dict__ == other.__dict__
        and self.__pydantic_private__ == other.__pydantic_private__
        and self.__pydantic_extra__ == other.__pydantic_extra__
    )


def thaw(value: Any) -> Any:
    """Turn frozen objects of a fresh deep copy back into ordinary mutable ones (in place, recursively)."""
    if isinstance(value, BaseModel):
        base = frozen_base(type(value))
        if base is not type(value):
            object.__setattr__(value, "__class__", base)
        d = value.__dict__
        for k, v in d.items():
            t = thaw(v)
            if t is not v:
                d[k] = t
        return value
    t = type(value)
    if t is FrozenList or t is list:
        return [thaw(v) for v in value]
    if t is FrozenDict or t is dict:
        return {k: thaw(v) for k, v in value.items()}
    if t is FrozenSet:
        return set(value)
    return value


def _frozen_model_copy(self: BaseModel, *, update: Any = None, deep: bool = False) -> BaseModel:
    base = frozen_base(type(self))
    out = BaseModel.model_copy(self, update=update, deep=deep)
    object.__setattr__(out, "__class__", base)
    if deep:
        thaw(out)
    return out


def _frozen_copy(self: BaseModel) -> BaseModel:
    out = BaseModel.__copy__(self)
    object.__setattr__(out, "__class__", frozen_base(type(self)))
    return out


def _frozen_deepcopy(self: BaseModel, memo: dict[int, Any] | None = None) -> BaseModel:
    out = BaseModel.__deepcopy__(self, memo)
    return thaw(out)  # type: ignore[no-any-return]


def _rebuild_model(cls: type[BaseModel], state: Any) -> BaseModel:
    """Unpickle a snapshot as an ordinary (mutable) instance of the user's class."""
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj


def _frozen_reduce_ex(self: BaseModel, protocol: SupportsIndex) -> tuple[Any, ...]:
    return (_rebuild_model, (frozen_base(type(self)), self.__getstate__()))


def make_frozen_class(base: type[BaseModel]) -> type[BaseModel]:
    """Build the read-only subclass of ``base`` (same name, same schema, refuses attribute writes)."""
    namespace: dict[str, Any] = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
        "__setattr__": _frozen_setattr,
        "__delattr__": _frozen_delattr,
        "__eq__": _frozen_eq,
        "__hash__": base.__hash__,
        "__copy__": _frozen_copy,
        "__deepcopy__": _frozen_deepcopy,
        "__reduce_ex__": _frozen_reduce_ex,
        "model_copy": _frozen_model_copy,
        _BASE_ATTR: base,
    }
    meta: Any = type(base)
    frozen: type[BaseModel] = meta(base.__name__, (base,), namespace)
    return frozen


def shallow_model_copy(
    obj: BaseModel, cls: type[BaseModel], setting: Collection[str] | None = None
) -> BaseModel:
    """A new instance of ``cls`` sharing ``obj``'s field values (O(number of fields)).

    ``setting``: the fields the caller sets on the copy; they are in its fields-set, which is ``obj``'s own
    set when they are all in it already (sealed snapshots never add to it: one object less per commit)."""
    new = cls.__new__(cls)
    _set_dict(new, obj.__dict__.copy())
    fields_set = obj.__pydantic_fields_set__
    if setting is None:
        fields_set = fields_set.copy()
    elif not fields_set.issuperset(setting):
        fields_set = fields_set.union(setting)
    _set_fields_set(new, fields_set)
    extra = obj.__pydantic_extra__
    _set_extra(new, dict(extra) if extra is not None else None)
    private = obj.__pydantic_private__
    _set_private(new, dict(private) if private is not None else None)
    return new


# BaseModel's slot setters (what object.__setattr__ ends up calling, without the name lookup)
_set_dict: Callable[[Any, Any], None] = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Callable[[Any, Any], None] = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Callable[[Any, Any], None] = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Callable[[Any, Any], None] = BaseModel.__dict__["__pydantic_private__"].__set__


SCALARS = frozenset({int, float, str, bool, bytes, type(None), complex})


def seal(value: Any, frozen_class: Callable[[type[BaseModel]], type[BaseModel]]) -> Any:
    """Make a freshly validated value read-only, reusing already-sealed parts (O(size of new parts)).

    Model instances are frozen in place (their class is swapped); a value handed to the store becomes
    part of its state and is read-only from then on.
    """
    t = type(value)
    if t in SCALARS or t in FROZEN_CONTAINERS:
        return value
    if t is list:
        return FrozenList([seal(v, frozen_class) for v in value])
    if t is dict:
        return FrozenDict({k: seal(v, frozen_class) for k, v in value.items()})
    if t is set:
        return FrozenSet(value)
    if t is tuple:
        sealed = tuple(seal(v, frozen_class) for v in value)
        return value if all(a is b for a, b in zip(sealed, value, strict=True)) else sealed
    if isinstance(value, BaseModel):
        if _BASE_ATTR in t.__dict__:
            return value
        d = value.__dict__
        for k, v in d.items():
            s = seal(v, frozen_class)
            if s is not v:
                d[k] = s
        extra = value.__pydantic_extra__
        if extra:
            for k, v in extra.items():
                s = seal(v, frozen_class)
                if s is not v:
                    extra[k] = s
        object.__setattr__(value, "__class__", frozen_class(t))
        return value
    return value


class _Probe:
    __slots__ = ("_q_base",)

    def __init__(self, base: object) -> None:
        self._q_base = base


def _refcount_of_base(holder: _Probe) -> int:
    return sys.getrefcount(holder._q_base)


def _calibrate() -> int:
    target = object()
    owner = [target]  # one container slot
    probe = _Probe(target)  # one draft reference
    del target
    count = _refcount_of_base(probe)
    del owner
    return count


# CPython counts every strong reference; the fast path (editing a list in place instead of copying it)
# is taken only where the count proves that nobody but the store can see the object. Elsewhere
# (PyPy, free-threaded builds) the store always copies, which is correct, just O(n) per append.
_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()
OWNED_REFCOUNT = _calibrate() if sys.implementation.name == "cpython" and _GIL else -1
