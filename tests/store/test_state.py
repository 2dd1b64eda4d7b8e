"""State: read-only snapshots, validated writes, deep-merge patches, drafts, replace/reset/batch."""

from __future__ import annotations

import copy
import pickle
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from quvel_store import (
    App,
    MutationEvent,
    MutationKind,
    StateMutationError,
    StateValidationError,
    Store,
)
from tests.store.models import Checked, CheckedStore, Item, ItemsState, ItemsStore, Profile


def events_of(store: Store[ItemsState]) -> list[MutationEvent]:
    seen: list[MutationEvent] = []
    store.subscribe(lambda event, _state: seen.append(event))
    return seen


# ---- snapshots are read-only -------------------------------------------------------------------------------


def test_snapshot_refuses_every_kind_of_mutation(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    state = store.state
    with pytest.raises(StateMutationError):
        state.count = 5
    with pytest.raises(StateMutationError):
        state.items.append(Item(id=2, title="b"))
    with pytest.raises(StateMutationError):
        state.items[0].read = True
    with pytest.raises(StateMutationError):
        state.items.sort(key=lambda i: i.id)
    with pytest.raises(StateMutationError):
        state.scores["x"] = 1
    with pytest.raises(StateMutationError):
        state.labels.add("x")
    with pytest.raises(StateMutationError):
        state.profile.tags += ["x"]
    with pytest.raises(StateMutationError):
        del state.items[0]
    assert store.state.model_dump() == {
        "items": [{"id": 1, "title": "a", "read": False}],
        "count": 0,
        "profile": {"name": "", "tags": []},
        "scores": {},
        "labels": set(),
        "note": None,
    }


def test_snapshot_is_still_the_users_model(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    state = store.state
    assert isinstance(state, ItemsState)
    assert isinstance(state.items[0], Item)
    assert isinstance(state.items, list)
    assert state == ItemsState(items=[Item(id=1, title="a")])
    assert ItemsState(items=[Item(id=1, title="a")]) == state
    assert repr(state.items[0]) == "Item(id=1, title='a', read=False)"
    assert state.model_dump_json() == ItemsState(items=[Item(id=1, title="a")]).model_dump_json()


def test_copies_of_a_snapshot_are_mutable_and_detached(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    deep = store.state.model_copy(deep=True)
    deep.items.append(Item(id=2, title="b"))
    deep.items[0].read = True
    shallow = store.state.model_copy()
    shallow.count = 3
    for other in (copy.deepcopy(store.state), pickle.loads(pickle.dumps(store.state))):
        other.items[0].title = "changed"
        other.items.append(Item(id=7, title="x"))
    assert store.state == ItemsState(items=[Item(id=1, title="a")])
    assert len(deep.items) == 2
    assert shallow.count == 3


def test_an_old_snapshot_never_changes(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    before = store.state
    items_before = store.state.items
    for n in range(5):
        store.add(f"n{n}")
    store.patch(lambda s: setattr(s.items[0], "read", True))
    assert [i.title for i in before.items] == ["a"]
    assert [i.title for i in items_before] == ["a"]
    assert before.items[0].read is False
    assert len(store.state.items) == 6
    assert store.state.items[0].read is True


def test_values_handed_to_the_store_become_read_only(app: App) -> None:
    store = app.use(ItemsStore)
    mine = Item(id=1, title="mine")
    store.patch(lambda s: s.items.append(mine))
    with pytest.raises(StateMutationError):
        mine.title = "changed behind the store's back"
    assert store.state.items[0].title == "mine"


# ---- patch(dict) ------------------------------------------------------------------------------------------


def test_patch_mapping_deep_merges_models_and_dicts_and_replaces_lists(app: App) -> None:
    store = app.use(ItemsStore)
    store.patch({"profile": {"name": "ann", "tags": ["a", "b"]}, "scores": {"x": 1, "y": 2}})
    store.patch({"profile": {"tags": ["c"]}, "scores": {"y": 5}})
    assert store.state.profile == Profile(name="ann", tags=["c"])
    assert store.state.scores == {"x": 1, "y": 5}
    store.patch({"items": [{"id": 1, "title": "a"}]})
    store.patch({"items": [{"id": 2, "title": "b"}]})
    assert store.state.items == [Item(id=2, title="b")]


def test_patch_coerces_like_pydantic(app: App) -> None:
    store = app.use(ItemsStore)
    store.patch({"count": "7"})
    assert store.state.count == 7


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"nope": 1}, "nope"),
        ({"profile": {"nope": 1}}, "profile.nope"),
        ({"items": [{"id": 1, "title": "a", "extra": True}]}, "items[0].extra"),
        ({"count": "many"}, "count"),
        ({"items": [{"id": "x", "title": "a"}]}, "items[0].id"),
        ({"scores": {"a": "high"}}, "scores.a"),
        ({"profile": {"name": "ok"}, "count": []}, "count"),
    ],
)
def test_bad_patch_raises_names_the_field_and_changes_nothing(
    app: App, changes: dict[str, object], field: str
) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    store.patch({"scores": {"a": 1}})
    before = store.state
    seen = events_of(store)
    with pytest.raises(StateValidationError) as info:
        store.patch(changes)
    assert field in info.value.fields
    assert "items" in str(info.value)
    assert field in str(info.value)
    assert store.state is before
    assert store.state.model_dump() == before.model_dump()
    assert seen == []


# ---- patch(fn) --------------------------------------------------------------------------------------------


def test_patch_function_edits_a_draft_and_commits_once(app: App) -> None:
    store = app.use(ItemsStore)
    seen = events_of(store)

    def change(s: ItemsState) -> None:
        s.items.append(Item(id=1, title="a"))
        s.items.append({"id": 2, "title": "b"})  # type: ignore[arg-type]  # validated like pydantic input
        s.items[0].read = True
        s.count += 2
        s.profile.name = "zoe"
        s.scores["k"] = 3
        s.labels.add("x")

    store.patch(change)
    assert store.state.items == [Item(id=1, title="a", read=True), Item(id=2, title="b")]
    assert (store.state.count, store.state.profile.name, store.state.scores, store.state.labels) == (
        2,
        "zoe",
        {"k": 3},
        {"x"},
    )
    assert len(seen) == 1
    assert seen[0].kind is MutationKind.PATCH_FUNCTION
    assert seen[0].store_id == "items"
    assert ("items",) in seen[0].changed
    assert ("count",) in seen[0].changed


def test_patch_function_that_raises_rolls_everything_back(app: App) -> None:
    store = app.use(ItemsStore)
    for n in range(3):
        store.add(f"t{n}")
    before = store.state.model_dump()
    seen = events_of(store)

    def change(s: ItemsState) -> None:
        s.items.append(Item(id=10, title="x"))
        s.items.extend([Item(id=11, title="y")])
        s.items[0].title = "renamed"
        s.items[1] = Item(id=50, title="swapped")
        s.scores["k"] = 1
        s.count = 9
        raise KeyError("late failure")

    with pytest.raises(KeyError):
        store.patch(change)
    assert store.state.model_dump() == before
    assert seen == []
    store.add("after")  # the store still works and appends after a rollback
    assert [i.title for i in store.state.items] == ["t0", "t1", "t2", "after"]


def test_invalid_draft_write_raises_at_the_line_and_rolls_back(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")

    def change(s: ItemsState) -> None:
        s.items.append(Item(id=2, title="b"))
        s.count = "not a number"  # type: ignore[assignment]

    with pytest.raises(StateValidationError) as info:
        store.patch(change)
    assert info.value.fields == ["count"]
    assert [i.id for i in store.state.items] == [1]
    with pytest.raises(StateValidationError) as info2:
        store.patch(lambda s: setattr(s, "unknown", 1))
    assert info2.value.fields == ["unknown"]
    with pytest.raises(StateValidationError):
        store.patch(lambda s: s.items.append({"id": 3}))  # type: ignore[arg-type]


def test_draft_list_operations_match_python_lists(app: App) -> None:
    store = app.use(ItemsStore)
    store.patch({"profile": {"tags": ["d", "a", "c", "b"]}})

    def change(s: ItemsState) -> None:
        tags = s.profile.tags
        tags.insert(0, "z")
        tags.remove("c")
        assert tags.pop() == "b"
        tags.sort()
        tags.reverse()
        tags[1:2] = ["m", "n"]
        del tags[0]
        tags += ["q"]
        assert "q" in tags
        assert tags.index("q") == len(tags) - 1
        assert tags.count("m") == 1

    store.patch(change)
    expected = ["d", "a", "c", "b"]
    expected.insert(0, "z")
    expected.remove("c")
    expected.pop()
    expected.sort()
    expected.reverse()
    expected[1:2] = ["m", "n"]
    del expected[0]
    expected += ["q"]
    assert store.state.profile.tags == expected


def test_dict_draft_operations_and_rollback(app: App) -> None:
    store = app.use(ItemsStore)
    store.patch({"scores": {"a": 1, "b": 2}})
    store.patch(lambda s: (s.scores.pop("a"), s.scores.update(c=3), s.scores.setdefault("d", 4)))
    assert store.state.scores == {"b": 2, "c": 3, "d": 4}

    def failing(s: ItemsState) -> None:
        s.scores["b"] = 20
        del s.scores["c"]
        s.scores["new"] = 1
        raise ValueError

    with pytest.raises(ValueError):
        store.patch(failing)
    assert store.state.scores == {"b": 2, "c": 3, "d": 4}


def test_drafts_die_with_their_patch(app: App) -> None:
    store = app.use(ItemsStore)
    kept: list[ItemsState] = []
    store.patch(kept.append)
    with pytest.raises(StateMutationError):
        kept[0].count = 3
    with pytest.raises(StateMutationError):
        kept[0].items.append(Item(id=1, title="late"))
    assert store.state.count == 0
    assert store.state.items == []


def test_patch_rejects_async_functions_and_nested_patches(app: App) -> None:
    store = app.use(ItemsStore)

    async def not_allowed(s: ItemsState) -> None:
        s.count = 1

    with pytest.raises(TypeError, match="synchronous"):
        store.patch(not_allowed)
    with pytest.raises(StateMutationError):
        store.patch(lambda s: store.patch({"count": 1}))
    with pytest.raises(TypeError):
        store.patch(42)  # type: ignore[call-overload]
    assert store.state.count == 0


def test_reading_state_mid_patch_shows_the_committed_state(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    seen: list[int] = []

    def change(s: ItemsState) -> None:
        s.items.append(Item(id=2, title="b"))
        seen.append(len(store.state.items))
        s.items.append(Item(id=3, title="c"))

    old = store.state
    store.patch(change)
    assert seen == [1]
    assert len(old.items) == 1
    assert len(store.state.items) == 3


def test_appends_keep_prior_snapshots_intact_when_they_are_held(app: App) -> None:
    store = app.use(ItemsStore)
    held = []
    for n in range(50):
        store.add(f"t{n}")
        if n % 7 == 0:
            held.append(store.state)
    for snapshot in held:
        assert [i.title for i in snapshot.items] == [f"t{k}" for k in range(len(snapshot.items))]
    assert len(store.state.items) == 50


# ---- validators and constraints ---------------------------------------------------------------------------


def test_field_constraints_and_validators_apply_to_draft_writes(app: App) -> None:
    store = app.use(CheckedStore)
    store.patch(lambda s: s.limited.extend([1, 2, 3]))
    with pytest.raises(StateValidationError) as info:
        store.patch(lambda s: s.limited.append(4))
    assert info.value.fields == ["limited"]
    with pytest.raises(StateValidationError):
        store.patch({"positive": 0})
    with pytest.raises(StateValidationError):
        store.patch({"low": 11})
    # a model validator sees the whole draft at commit, so an intermediate state may be out of order
    store.patch(lambda s: (setattr(s, "high", 30), setattr(s, "low", 20)))
    assert store.state == Checked(low=20, high=30, limited=[1, 2, 3])


# ---- replace, reset, batch --------------------------------------------------------------------------------


def test_replace_validates_strictly_and_reset_restores_the_initial_state(app: App) -> None:
    store = app.use(ItemsStore)
    seen = events_of(store)
    store.replace({"count": 4, "items": [{"id": 1, "title": "a"}]})
    assert store.state.count == 4
    assert store.state.profile == Profile()
    with pytest.raises(StateValidationError):
        store.replace({"count": 1, "surprise": True})
    mine = ItemsState(count=8)
    store.replace(mine)
    mine.count = 100  # the caller's object stays the caller's
    assert store.state.count == 8
    store.reset()
    assert store.state == ItemsState()
    assert [e.kind for e in seen] == [MutationKind.REPLACE, MutationKind.REPLACE, MutationKind.RESET]


def test_replace_with_an_old_snapshot_is_an_undo(app: App) -> None:
    store = app.use(ItemsStore)
    store.add("a")
    saved = store.state
    store.add("b")
    store.replace(saved)
    assert store.state is saved


def test_batch_is_one_commit_and_all_or_nothing(app: App) -> None:
    store = app.use(ItemsStore)
    seen = events_of(store)
    with store.batch():
        store.add("a")
        store.patch({"count": 1})
        store.patch(lambda s: setattr(s, "note", "hi"))
        assert store.state.count == 1  # writes are visible inside the batch
    assert len(seen) == 1
    assert seen[0].kind is MutationKind.BATCH
    assert [kind for kind, _ in seen[0].payload] == [
        MutationKind.PATCH_FUNCTION,
        MutationKind.PATCH_OBJECT,
        MutationKind.PATCH_FUNCTION,
    ]
    before = store.state

    def abandoned_batch() -> None:
        with store.batch():
            store.add("b")
            store.patch({"count": 2})
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError):
        abandoned_batch()
    assert store.state is before
    assert len(seen) == 1


def test_every_commit_emits_exactly_one_event_with_its_payload(app: App) -> None:
    store = app.use(ItemsStore)
    seen = events_of(store)
    store.patch({"count": 1})
    store.add("a")
    store.replace(ItemsState())
    assert [(e.kind, e.store_id) for e in seen] == [
        (MutationKind.PATCH_OBJECT, "items"),
        (MutationKind.PATCH_FUNCTION, "items"),
        (MutationKind.REPLACE, "items"),
    ]
    assert seen[0].payload == {"count": 1}
    assert seen[0].action is None
    assert seen[1].action == "add"
    assert seen[1].action_id is not None


def test_models_with_extra_allow_keep_their_extras(app: App) -> None:
    class Open(BaseModel, extra="allow"):
        a: int = 0

    class OpenStore(Store[Open]):
        id = "open"

    store = app.use(OpenStore)
    store.replace({"a": 1, "b": 2})
    assert store.state.model_dump() == {"a": 1, "b": 2}


# ---- less common model shapes -----------------------------------------------------------------------------


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"
    good: bool = True


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Shapes(BaseModel):
    pets: list[Annotated[Cat | Dog, Field(discriminator="kind")]] = []
    tree: Node = Node(name="root")
    by_id: dict[int, Cat] = {}
    maybe: list[int] | None = None


class ShapesStore(Store[Shapes]):
    id = "shapes"


def test_unions_recursive_models_int_keys_and_optionals(app: App) -> None:
    store = app.use(ShapesStore)

    def change(s: Shapes) -> None:
        s.pets.append({"kind": "dog"})  # type: ignore[arg-type]
        s.pets.append(Cat(lives=3))
        s.pets[0].good = False  # type: ignore[union-attr]
        s.tree.children.append(Node(name="a"))
        s.tree.children[0].children.append({"name": "a1"})  # type: ignore[arg-type]
        s.by_id["7"] = {"lives": 1}  # type: ignore[index,assignment]  # keys and values are validated
        s.maybe = [1, 2]

    store.patch(change)
    state = store.state
    assert state.pets == [Dog(good=False), Cat(lives=3)]
    assert state.tree.children[0].children[0].name == "a1"
    assert state.by_id == {7: Cat(lives=1)}
    assert state.maybe == [1, 2]
    with pytest.raises(StateValidationError):
        store.patch(lambda s: s.pets.append({"kind": "fish"}))  # type: ignore[arg-type]
    with pytest.raises(StateValidationError):
        store.patch(lambda s: s.by_id.__setitem__("x", Cat()))  # type: ignore[arg-type]
    assert store.state is state


def test_new_containers_built_from_draft_items_can_be_assigned_back(app: App) -> None:
    store = app.use(ItemsStore)
    store.patch({"items": [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}], "scores": {"x": 1}})
    store.patch(lambda s: setattr(s, "items", [*s.items, Item(id=3, title="c")]))
    assert [i.id for i in store.state.items] == [1, 2, 3]
    store.patch(lambda s: setattr(s, "items", sorted(s.items, key=lambda i: -i.id)))
    assert [i.id for i in store.state.items] == [3, 2, 1]
    store.patch(lambda s: setattr(s, "items", [i for i in s.items if i.id != 2]))
    assert [i.id for i in store.state.items] == [3, 1]
    store.patch(lambda s: setattr(s, "scores", {**s.scores, "y": 2}))
    assert store.state.scores == {"x": 1, "y": 2}
    # The old items were copied, not moved: the snapshot taken before still holds them intact.
    before = store.state
    store.patch(lambda s: setattr(s, "items", [s.items[0], s.items[0]]))
    assert [i.id for i in before.items] == [3, 1]
    assert [i.id for i in store.state.items] == [3, 3]
