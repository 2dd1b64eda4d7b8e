"""State models and stores shared by the store tests."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from quvel_store import Store, action, getter


class Item(BaseModel):
    id: int
    title: str
    read: bool = False


class Profile(BaseModel):
    name: str = ""
    tags: list[str] = []


class ItemsState(BaseModel):
    items: list[Item] = []
    count: int = 0
    profile: Profile = Profile()
    scores: dict[str, int] = {}
    labels: set[str] = set()
    note: str | None = None


class ItemsStore(Store[ItemsState]):
    id = "items"

    @getter
    def unread(self) -> int:
        return sum(not i.read for i in self.state.items)

    @action
    def add(self, title: str) -> int:
        new_id = len(self.state.items) + 1
        self.patch(lambda s: s.items.append(Item(id=new_id, title=title)))
        return new_id

    @action
    def add_then_fail(self, title: str) -> None:
        def change(s: ItemsState) -> None:
            s.items.append(Item(id=99, title=title))
            s.count += 1
            raise RuntimeError("boom")

        self.patch(change)


class Checked(BaseModel):
    low: int = 0
    high: int = 10
    limited: list[int] = Field(default_factory=list, max_length=3)
    positive: int = 1

    @field_validator("positive")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Checked:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class CheckedStore(Store[Checked]):
    id = "checked"


class CounterState(BaseModel):
    n: int = 0


class CounterStore(Store[CounterState]):
    id = "counter"

    @action
    def inc(self, by: int = 1) -> None:
        self.patch({"n": self.state.n + by})
