"""``store.<field>``: a state field read and assigned through the store, as in Pinia (``store.count = 3``).

Each field of the state model that the store class does not use for something else (a getter, an
action, a method, an option, the Store API) gets one of these descriptors on the class. Reading it
reads ``store.state.<field>``; assigning it commits ``patch({field: value})``, so it is validated and
observed like any other write, instead of silently creating a plain attribute the state never sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quvel_store._reserved import RESERVED

if TYPE_CHECKING:
    from quvel_store._store import Store

__all__ = ["StateField", "install_state_fields"]


class StateField:
    """The descriptor behind ``store.<field>`` (see the module docstring)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Store[Any] | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.state, self.name)

    def __set__(self, obj: Store[Any], value: Any) -> None:
        name = self.name
        if isinstance(value, Mapping):  # assignment replaces (a patch mapping would merge into it)
            obj.patch(lambda draft: setattr(draft, name, value))
        else:
            obj.patch({name: value})

    def __delete__(self, obj: Store[Any]) -> None:
        raise AttributeError(
            f"cannot delete state field {self.name!r} of store {obj.store_id!r}; assign a value or reset()"
        )


def install_state_fields(cls: type, fields: Mapping[str, Any]) -> None:
    """Give ``cls`` a StateField for each of ``fields`` not already taken by the class or the Store API."""
    for name in fields:
        if name.startswith("_") or name in RESERVED:
            continue
        current = getattr(cls, name, None)
        if current is None and not hasattr(cls, name):
            setattr(cls, name, StateField(name))
        elif isinstance(current, StateField):
            continue
