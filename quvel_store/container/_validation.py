"""Validation against pydantic models, reported as Laravel-style error bags ``{"field.path": ["message"]}``.

The same bag shape as a Laravel 422 response, so a form shows client-side and server-side errors alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, PydanticSchemaGenerationError, PydanticUserError, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from quvel_store.errors import SchemaError, ValidationFailed

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from quvel_store.container._i18n import I18nService

__all__ = ["ROOT_FIELD", "ErrorBag", "ValidationService"]

T = TypeVar("T")

ErrorBag = dict[str, list[str]]
"""Field path (dots, list indexes as numbers: ``items.0.title``) to its messages, like Laravel's."""

ROOT_FIELD = "__root__"
"""Bag key for errors about the whole input (a model validator, or input that is not an object)."""


class ValidationService:
    """Validates data against pydantic models (or any type pydantic can validate).

    With an :class:`I18nService`, messages are translated from ``validation.<pydantic error type>`` keys
    (e.g. ``validation.missing = "The :attribute field is required."``) when the catalog has them;
    ``:attribute`` is the field path and pydantic's context values (``:min_length``...) are parameters.
    """

    def __init__(self, i18n: I18nService | None = None) -> None:
        self._i18n = i18n
        self._adapters: dict[Any, TypeAdapter[Any]] = {}

    def validate(self, model: type[T], data: Any, *, strict: bool | None = None) -> T:
        """``data`` validated into ``model``; raises :class:`ValidationFailed` carrying the error bag.

        ``data`` may be a mapping or a model instance; for a pydantic model, also JSON text (str / bytes).
        """
        try:
            return cast("T", self._validate(model, data, strict))
        except PydanticValidationError as exc:
            bag = self.bag_from(exc)
            raise ValidationFailed(_summary(bag), bag) from exc

    def errors(self, model: type[Any], data: Any, *, strict: bool | None = None) -> ErrorBag:
        """The error bag for ``data`` against ``model``: empty when the data is valid."""
        try:
            self._validate(model, data, strict)
        except PydanticValidationError as exc:
            return self.bag_from(exc)
        return {}

    def is_valid(self, model: type[Any], data: Any, *, strict: bool | None = None) -> bool:
        """Whether ``data`` validates against ``model``."""
        return not self.errors(model, data, strict=strict)

    def field_errors(self, value: Any, type_: Any, attribute: str) -> list[str]:
        """Every message for one value (a form field) against a type, e.g.
        ``Annotated[str, Field(min_length=8)]``; ``attribute`` names it in translated messages."""
        try:
            self._validate(type_, value, None, allow_json=False)
        except PydanticValidationError as exc:
            return [self._message(attribute, d, attribute) for d in exc.errors(include_url=False)]
        return []

    def first_error(self, value: Any, type_: Any, attribute: str) -> str | None:
        """The first message for one value, or None when it is valid (QuVel's ``validateFirstError``)."""
        errors = self.field_errors(value, type_, attribute)
        return errors[0] if errors else None

    def rule(self, type_: Any, attribute: str) -> Callable[[Any], str | None]:
        """A reusable field rule: ``check = validation.rule(Email, "email"); check(value)`` returns the
        first message or None (QuVel's ``createInputRule``)."""
        self._adapter(type_)  # fail now, not on first use, if the type cannot be validated
        return lambda value: self.first_error(value, type_, attribute)

    def bag_from(self, error: PydanticValidationError) -> ErrorBag:
        """Convert a pydantic ``ValidationError`` into a Laravel-style error bag (order kept)."""
        bag: ErrorBag = {}
        for detail in error.errors(include_url=False):
            field = ".".join(str(part) for part in detail["loc"]) or ROOT_FIELD
            bag.setdefault(field, []).append(self._message(field, detail))
        return bag

    def _validate(self, model: Any, data: Any, strict: bool | None, *, allow_json: bool = True) -> Any:
        if isinstance(model, type) and issubclass(model, BaseModel):
            if allow_json and isinstance(data, str | bytes | bytearray):
                return model.model_validate_json(data, strict=strict)
            if isinstance(data, BaseModel):
                data = data.model_dump()
            return model.model_validate(data, strict=strict)
        return self._adapter(model).validate_python(data, strict=strict)

    def _adapter(self, model: Any) -> TypeAdapter[Any]:
        adapter = self._adapters.get(model)
        if adapter is None:
            try:
                adapter = TypeAdapter(model)
            except (PydanticUserError, PydanticSchemaGenerationError, TypeError) as exc:
                raise SchemaError(f"cannot validate against {model!r}: {exc}") from exc
            self._adapters[model] = adapter
        return adapter

    def _message(self, field: str, detail: ErrorDetails, attribute: str | None = None) -> str:
        if self._i18n is not None:
            key = f"validation.{detail['type']}"
            if self._i18n.has(key):
                name = attribute if attribute is not None else field.rsplit(".", 1)[-1].replace("_", " ")
                params: dict[str, Any] = {"attribute": name}
                params.update(_jsonable(detail.get("ctx") or {}))
                return self._i18n.t(key, **params)
        return detail["msg"]


def _jsonable(ctx: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in ctx.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = str(value)
    return out


def _summary(bag: ErrorBag) -> str:
    """Laravel's message: the first error, plus "(and N more errors)"."""
    messages = [m for ms in bag.values() for m in ms]
    if not messages:
        return "The given data was invalid."
    first_field, first_messages = next(iter(bag.items()))
    head = f"{first_field}: {first_messages[0]}"
    rest = len(messages) - 1
    if rest == 0:
        return head
    return f"{head} (and {rest} more error{'s' if rest > 1 else ''})"
