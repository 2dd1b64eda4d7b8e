"""The draft-node protocol shared by the ``_draft*`` modules: the base node and small helpers.

Draft nodes (``_draft.DraftModel``, the containers in ``_draft_containers``) talk to each other and to
their :class:`~quvel_store._draft.Txn` through ``_q_*`` slots and methods. Those names stay underscored
on purpose: a draft stands in for the user's model, whose fields cannot start with ``_``, so the
protocol never clashes with a field. Only these three modules use them.
"""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING, Any, NoReturn, SupportsIndex

from quvel_store._frozen import OWNED_REFCOUNT
from quvel_store.errors import StateMutationError

if TYPE_CHECKING:
    from quvel_store._draft import Txn

__all__ = ["MISSING", "Loc", "Node", "dead", "fmt_loc", "norm_index", "plain", "set_slot"]

Loc = tuple[str | int, ...]
set_slot = object.__setattr__  # drafts refuse normal attribute writes; their own slots are set through this
MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


def dead() -> NoReturn:
    raise StateMutationError(
        "this draft belongs to a patch that has finished; take values from store.state, "
        "or do the whole change inside one patch function"
    )


def plain(value: Any) -> Any:
    """A value handed to a draft: drafts become independent plain copies of their current content,
    also inside new lists, tuples, sets and dicts built from them (``s.items = [*s.items, x]``,
    ``s.items = sorted(s.items, ...)``)."""
    if isinstance(value, Node):
        current, _ = value._q_finalize()
        return copy.deepcopy(current)
    kind = type(value)
    if kind is dict:
        if any(_needs_plain(item) for item in value.values()):
            return {key: plain(item) for key, item in value.items()}
    elif kind in _CONTAINERS and any(_needs_plain(item) for item in value):
        return kind(plain(item) for item in value)
    return value


def _needs_plain(item: Any) -> bool:
    return isinstance(item, Node) or type(item) in _CONTAINERS


_CONTAINERS: frozenset[type] = frozenset({list, tuple, set, frozenset, dict})


class Node:
    __slots__ = ("_q_alive", "_q_base", "_q_key", "_q_parent", "_q_path", "_q_txn")
    _q_alive: bool
    _q_base: Any
    _q_key: str | int | None
    _q_parent: Node | None
    _q_path: Loc
    _q_txn: Txn

    def __init__(self, txn: Txn, parent: Node | None, key: str | int | None, base: Any) -> None:
        set_slot(self, "_q_txn", txn)
        set_slot(self, "_q_parent", parent)
        set_slot(self, "_q_key", key)
        set_slot(self, "_q_base", base)
        set_slot(self, "_q_alive", True)
        set_slot(self, "_q_path", () if parent is None or key is None else (*parent._q_path, key))

    def _q_check(self) -> Txn:
        txn = self._q_txn
        if not (txn.active and self._q_alive):
            dead()
        return txn

    def _q_finalize(self) -> tuple[Any, bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _q_teardown(self) -> None:
        children: dict[Any, Node] | None = getattr(self, "_q_children", None)
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
        node: Node | None = self
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


def norm_index(index: SupportsIndex, length: int) -> int:
    i = int(index)
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError("list index out of range")
    return i


def fmt_loc(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "<root>"
