"""The class-level rules of ``Store`` subclasses: state model inference, id checks, the state-field
descriptors, wiring of getters and actions, options; and what a redefined class keeps of live state."""

from __future__ import annotations

import typing
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from quvel_store._actions import Action
from quvel_store._getters import Getter
from quvel_store._reserved import RESERVED
from quvel_store._state_fields import StateField, install_state_fields
from quvel_store.errors import StoreArgumentError, StoreDefinitionError

if TYPE_CHECKING:
    from quvel_store._actions import RunAction
    from quvel_store._store import Store

__all__ = ["carried_state", "define_store_class", "require_callable"]


def define_store_class(
    cls: type[Store[Any]],
    base: type,
    reader: Callable[[Any, Getter[Any]], Any],
    runner_of: Callable[[Any], RunAction],
) -> None:
    """Check and complete a new Store subclass (``base`` is ``Store`` itself)."""
    model = _state_model_of(cls, base)
    if model is not None and "state_model" not in cls.__dict__:
        cls.state_model = model
    sid = cls.__dict__.get("id")
    if sid is not None and (not isinstance(sid, str) or not sid or ":" in sid):
        raise StoreDefinitionError(f"{cls.__qualname__}.id must be a non-empty str without ':', not {sid!r}")
    state_model = cls.__dict__.get("state_model")
    if isinstance(state_model, type) and issubclass(state_model, BaseModel):
        install_state_fields(cls, state_model.model_fields)
    options: dict[str, Any] = {}
    for klass in cls.__mro__:
        for value in vars(klass).values():
            if isinstance(value, Getter):
                value.reader = reader
            elif isinstance(value, Action):
                value.runner_of = runner_of
    for klass in reversed(cls.__mro__):
        if klass is base or not issubclass(klass, base):
            continue
        for name, value in vars(klass).items():
            if name in RESERVED and isinstance(value, Getter | Action):
                raise StoreDefinitionError(f"{cls.__qualname__}.{name}: {name!r} is part of the Store API")
            if name.startswith("_") or name in RESERVED:
                continue
            if isinstance(
                value, Getter | Action | StateField | property | classmethod | staticmethod
            ) or callable(value):
                continue
            options[name] = value
    cls.options = MappingProxyType(options)


def require_callable(store_id: str, call: str, what: str, value: object) -> None:
    """Refuse a callback that cannot be called now, at registration, instead of at the first commit."""
    if not callable(value):
        raise StoreArgumentError(
            f"store {store_id!r}: {call} needs a callable {what}, got {type(value).__name__} {value!r}; "
            f"pass a function or a bound method"
        )


def _state_model_of(cls: type, store: type) -> type[BaseModel] | None:
    for base in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(base)
        if isinstance(origin, type) and issubclass(origin, store):
            for arg in typing.get_args(base):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    return arg
    return None


def carried_state(store_id: str, cls: type[Store[Any]], state: BaseModel) -> BaseModel:
    model = cls.state_model
    data = {k: v for k, v in state.model_dump().items() if k in model.model_fields}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"]:
                data.pop(str(error["loc"][0]), None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) + f" ({e['msg']})" for e in exc.errors())
        raise StoreDefinitionError(
            f"store {store_id!r}: the new definition of {cls.__qualname__} cannot take over the live "
            f"state: {fields} can be neither kept nor defaulted; give the field a default, or dispose "
            f"the store (or reload the app) to start from the new initial state"
        ) from None
