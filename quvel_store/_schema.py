"""What the draft needs to know about a state model: per-field plans and validators, per app.

A field is *simple* when its type is a plain ``list[T]`` / ``dict[K, V]`` / ``set[T]`` / model (optionally
``| None``) with no constraints or validators of its own: then a write validates only the new element,
which is what keeps appends O(1). Anything else is revalidated as a whole field on commit.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, TypeAdapter

from quvel_store._frozen import frozen_base, make_frozen_class, seal

__all__ = ["ModelPlan", "StateSchema", "TypePlan"]

Kind = Literal["model", "list", "dict", "set", "leaf"]
Extra = Literal["forbid", "ignore", "allow"] | None


@dataclass(eq=False)
class TypePlan:
    """How to draft and validate a value of one declared type."""

    kind: Kind
    model: type[BaseModel] | None = None
    elem: TypePlan | None = None  # list/set element, dict value
    validate_elem: Callable[[Any], Any] | None = None  # returns the validated (unsealed) element
    validate_key: Callable[[Any], Any] | None = None


@dataclass(eq=False)
class FieldPlan:
    name: str
    simple: bool
    plan: TypePlan
    # For a simple field of type int, float, str or bool: validates a new value alone, under the model's
    # config (what validate_assignment does for such a field, without copying the model's dict: ~10x less).
    check: Callable[[Any], Any] | None = None


@dataclass(eq=False)
class ModelPlan:
    cls: type[BaseModel]
    frozen_cls: type[BaseModel]  # the read-only class of cls (copies on write are made of it)
    eager: bool  # validate each assignment at once (no model validators, not frozen)
    extra: Extra
    fields: dict[str, FieldPlan] = field(default_factory=dict)
    draft_cls: type[Any] | None = None  # DraftModel subclass with a property per field (built by _draft)


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


_SCALAR_TYPES: frozenset[Any] = frozenset(
    {
        int,
        float,
        str,
        bool,
        bytes,
        type(None),
        complex,
        decimal.Decimal,
        uuid.UUID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
    }
)


def _is_scalar_type(tp: Any) -> bool:
    """Whether every value of annotation ``tp`` is immutable (so sealing it needs no walk)."""
    if tp in _SCALAR_TYPES:
        return True
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return all(_is_scalar_type(a) for a in typing.get_args(tp))
    return False


_CHECKED_SCALARS: frozenset[Any] = frozenset({int, float, str, bool})


def _scalar_check(annotation: Any, config: ConfigDict) -> Callable[[Any], Any] | None:
    """The model-config-aware validator of a plain int/float/str/bool field (constraints, strictness
    and validators of the field itself make it non-simple, so they never get here)."""
    if annotation not in _CHECKED_SCALARS:
        return None
    try:
        validator = TypeAdapter(annotation, config=config).validator
    except Exception:  # an unusual config: keep the general path
        return None
    return validator.validate_python


# Frozen classes and model plans are pure functions of a model class and cost ~1 ms each to build
# (a pydantic subclass, validators): they are kept on the model class itself, so the per-request apps of
# a server build them once per process, not once per request. Nothing in them is per-app state.
_FROZEN_ATTR = "__quvel_frozen__"
_PLAN_ATTR = "__quvel_plan__"


def _class_cached(cls: type[BaseModel], attr: str, build: Callable[[], Any]) -> Any:
    """``cls``'s own cached value of ``attr`` (never a base class's), built once."""
    value = cls.__dict__.get(attr)
    if value is None:
        value = build()
        # two threads may build at once: keep whichever landed first, so one class stays the frozen one
        existing = cls.__dict__.get(attr)
        if existing is not None:
            return existing
        type.__setattr__(cls, attr, value)
    return value


class StateSchema:
    """Per-app lookup of frozen classes and model plans (both built once per model class and shared:
    they are immutable)."""

    def __init__(self) -> None:
        self._frozen: dict[type[BaseModel], type[BaseModel]] = {}
        self._flat_models: dict[type[BaseModel], type[BaseModel]] = {}
        self._models: dict[type[BaseModel], ModelPlan] = {}
        self._types: dict[Any, TypePlan] = {}

    # ---- sealing --------------------------------------------------------------------------------------
    def frozen_class(self, cls: type[BaseModel]) -> type[BaseModel]:
        cls = frozen_base(cls)
        fc = self._frozen.get(cls)
        if fc is None:
            base = cls
            fc, flat = _class_cached(
                base,
                _FROZEN_ATTR,
                lambda: (
                    make_frozen_class(base),
                    all(_is_scalar_type(info.annotation) for info in base.model_fields.values()),
                ),
            )
            self._frozen[cls] = fc
            if flat:
                self._flat_models[cls] = fc
        return fc

    def seal(self, value: Any) -> Any:
        cls = type(value)
        fast = self._flat_models.get(cls)
        if fast is not None and value.__pydantic_extra__ is None:
            # every field holds an immutable scalar: freezing is just the class swap
            object.__setattr__(value, "__class__", fast)
            return value
        return seal(value, self.frozen_class)

    # ---- plans ----------------------------------------------------------------------------------------
    def model_plan(self, cls: type[BaseModel]) -> ModelPlan:
        cls = frozen_base(cls)
        plan = self._models.get(cls)
        if plan is not None:
            return plan
        shared = cls.__dict__.get(_PLAN_ATTR)
        if shared is not None:
            self._models[cls] = shared
            self.frozen_class(cls)  # (this app's lookup of the same frozen class)
            return cast(ModelPlan, shared)
        plan = self._build_model_plan(cls)
        return cast(ModelPlan, _class_cached(cls, _PLAN_ATTR, lambda: plan))

    def _build_model_plan(self, cls: type[BaseModel]) -> ModelPlan:
        decorators = cls.__pydantic_decorators__
        has_model_validators = bool(decorators.model_validators) or bool(
            getattr(decorators, "root_validators", {})
        )
        cfg = cls.model_config
        frozen = bool(cfg.get("frozen"))
        extra: Extra = None if cfg.get("extra") == "allow" else "forbid"
        plan = ModelPlan(
            cls=cls,
            frozen_cls=self.frozen_class(cls),
            eager=not has_model_validators and not frozen,
            extra=extra,
        )
        self._models[cls] = plan  # before recursing: models may refer to themselves
        validated_fields: set[str] = set()
        for dec in decorators.field_validators.values():
            validated_fields.update(dec.info.fields)
        strict = bool(cfg.get("strict"))
        checks: dict[Any, Callable[[Any], Any] | None] = {}  # one validator per scalar type of this model
        for name, info in cls.model_fields.items():
            tp = _unwrap_optional(info.annotation)
            tplan = self.type_plan(tp, strict=strict, extra=extra)
            simple = (
                plan.eager
                and not info.metadata
                and name not in validated_fields
                and "*" not in validated_fields
                and info.frozen is not True
            )
            check = None
            if simple and info.annotation in _CHECKED_SCALARS:
                if info.annotation not in checks:
                    checks[info.annotation] = _scalar_check(info.annotation, cfg)
                check = checks[info.annotation]
            plan.fields[name] = FieldPlan(name=name, simple=simple, plan=tplan, check=check)
        return plan

    def type_plan(self, tp: Any, *, strict: bool, extra: Extra) -> TypePlan:
        key = (tp, strict, extra)
        try:
            cached = self._types.get(key)
        except TypeError:  # unhashable annotation: plan it without caching
            return self._build_type_plan(tp, strict=strict, extra=extra)
        if cached is not None:
            return cached
        plan = self._types[key] = self._build_type_plan(tp, strict=strict, extra=extra)
        return plan

    def _build_type_plan(self, tp: Any, *, strict: bool, extra: Extra) -> TypePlan:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return TypePlan(kind="model", model=tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (list, set) and len(args) == 1:
            elem_tp = args[0]
            return TypePlan(
                kind="list" if origin is list else "set",
                elem=self.type_plan(_unwrap_optional(elem_tp), strict=strict, extra=extra),
                validate_elem=self._validator(elem_tp, strict=strict, extra=extra),
            )
        if origin is dict and len(args) == 2:
            return TypePlan(
                kind="dict",
                elem=self.type_plan(_unwrap_optional(args[1]), strict=strict, extra=extra),
                validate_elem=self._validator(args[1], strict=strict, extra=extra),
                validate_key=self._validator(args[0], strict=strict, extra=extra),
            )
        return TypePlan(kind="leaf")

    def _validator(self, tp: Any, *, strict: bool, extra: Extra) -> Callable[[Any], Any]:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            core = tp.__pydantic_validator__
            own_extra: Extra = None if tp.model_config.get("extra") == "allow" else extra

            def validate_model(value: Any) -> Any:
                return core.validate_python(value, extra=own_extra)

            return validate_model
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
        strict_opt = True if strict else None

        def validate(value: Any) -> Any:
            return adapter.validate_python(value, strict=strict_opt, extra=extra)

        return validate
