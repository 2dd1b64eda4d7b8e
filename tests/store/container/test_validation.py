"""ValidationService: pydantic validation into Laravel-style error bags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field, model_validator

from quvel_store.container import ROOT_FIELD, I18nService, ServiceContainer, ValidationService
from quvel_store.errors import QuvelError, SchemaError, ValidationFailed


class Address(BaseModel):
    city: str = Field(min_length=2)


class Signup(BaseModel):
    name: str
    age: int = Field(ge=18)
    tags: list[str] = []
    address: Address | None = None


class Passwords(BaseModel):
    password: str
    confirm: str

    @model_validator(mode="after")
    def match(self) -> Passwords:
        if self.password != self.confirm:
            raise ValueError("passwords do not match")
        return self


def test_valid_data_returns_the_model() -> None:
    signup = ValidationService().validate(Signup, {"name": "Ada", "age": 36})
    assert signup == Signup(name="Ada", age=36)
    assert ValidationService().errors(Signup, {"name": "Ada", "age": 36}) == {}
    assert ValidationService().is_valid(Signup, {"name": "Ada", "age": 36})


def test_error_bag_uses_dotted_paths() -> None:
    bag = ValidationService().errors(Signup, {"age": 12, "tags": ["ok", 5], "address": {"city": "X"}})
    assert list(bag) == ["name", "age", "tags.1", "address.city"]
    assert bag["name"] == ["Field required"]
    assert bag["age"] == ["Input should be greater than or equal to 18"]
    assert all(isinstance(m, str) for ms in bag.values() for m in ms)


def test_raising_variant_carries_the_bag() -> None:
    with pytest.raises(ValidationFailed) as caught:
        ValidationService().validate(Signup, {"age": "old"})
    error = caught.value
    assert set(error.errors) == {"name", "age"}
    assert error.first("name") == "Field required"
    assert "(and 1 more error)" in error.message
    assert isinstance(error, QuvelError)


def test_model_level_errors_go_to_the_root_field() -> None:
    bag = ValidationService().errors(Passwords, {"password": "a", "confirm": "b"})
    assert bag == {ROOT_FIELD: ["Value error, passwords do not match"]}
    assert ValidationService().errors(Signup, 5)[ROOT_FIELD]


def test_json_text_models_and_other_types() -> None:
    service = ValidationService()
    assert service.validate(Signup, '{"name": "Ada", "age": 20}').age == 20
    assert service.validate(Signup, Signup(name="Ada", age=20)).name == "Ada"

    @dataclass
    class Point:
        x: int

    assert service.validate(Point, {"x": "3"}) == Point(x=3)
    assert service.errors(list[int], [1, "x"]) == {
        "1": ["Input should be a valid integer, unable to parse string as an integer"]
    }
    assert service.errors(Signup, b"{broken") != {}


def test_something_that_is_not_a_model_is_a_schema_error() -> None:
    class NotAModel:
        pass

    with pytest.raises(SchemaError, match="cannot validate against"):
        ValidationService().validate(NotAModel, {})


def test_strict_mode() -> None:
    assert ValidationService().errors(Signup, {"name": "A", "age": "20"}, strict=True)["age"]


def test_messages_translated_from_the_catalog() -> None:
    i18n = I18nService(
        catalogs={
            "en": {
                "validation": {
                    "missing": "The :attribute field is required.",
                    "greater_than_equal": "The :attribute must be at least :ge.",
                }
            }
        }
    )
    bag = ValidationService(i18n).errors(Signup, {"age": 3, "address": {"city": "X"}})
    assert bag["name"] == ["The name field is required."]
    assert bag["age"] == ["The age must be at least 18."]
    assert bag["address.city"] == ["String should have at least 2 characters"]  # no key: pydantic's text


def test_container_validation_uses_the_container_i18n() -> None:
    container = ServiceContainer({"locale": "en"})
    container.i18n.add_catalog("en", {"validation": {"missing": "Please fill in :attribute."}})
    assert container.validation.errors(Signup, {"age": 20}) == {"name": ["Please fill in name."]}


def test_single_field_rules_like_quvel() -> None:
    password = Annotated[str, Field(min_length=8)]
    i18n = I18nService(catalogs={"en": {"validation": {"string_too_short": "The :attribute is too short."}}})
    service = ValidationService(i18n)
    assert service.field_errors("short", password, "password") == ["The password is too short."]
    assert service.field_errors("long enough", password, "password") == []
    assert service.first_error(5, password, "password") == "Input should be a valid string"
    check = service.rule(Literal["admin", "user"], "role")
    assert check("user") is None
    assert check("root") == "Input should be 'admin' or 'user'"
    with pytest.raises(SchemaError):
        service.rule(object(), "x")
