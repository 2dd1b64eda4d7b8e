"""A typed store: mypy --strict checks state fields, getters, action arguments and results, and selections.

python examples/typed_store.py      # runs it
mypy --strict examples/typed_store.py   # type-checks it (tests/store/test_typing.py does both)
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from reactivex import Observable

from quvel_store import MutationEvent, Store, action, create_app, getter


class Todo(BaseModel):
    id: int
    title: str
    done: bool = False


class TodosState(BaseModel):
    todos: list[Todo] = []
    filter: str = "all"


class TodosStore(Store[TodosState]):
    id = "todos"

    @getter
    def remaining(self) -> int:
        return sum(not t.done for t in self.state.todos)

    @getter
    def titles(self) -> list[str]:
        return [t.title for t in self.state.todos]

    @action
    def add(self, title: str) -> Todo:
        todo = Todo(id=len(self.state.todos) + 1, title=title)
        self.patch(lambda s: s.todos.append(todo))
        return todo

    @action
    def toggle(self, todo_id: int) -> None:
        def flip(s: TodosState) -> None:
            for t in s.todos:
                if t.id == todo_id:
                    t.done = not t.done

        self.patch(flip)

    @action(concurrency="switch")
    async def load(self, titles: list[str]) -> int:
        await asyncio.sleep(0)
        self.patch({"todos": [{"id": i + 1, "title": t} for i, t in enumerate(titles)]})
        return len(titles)


async def main() -> None:
    app = create_app()
    store: TodosStore = app.use(TodosStore)

    count: int = await store.load(["write docs", "ship"])  # Task[int], awaited
    todo: Todo = store.add("celebrate")
    store.toggle(todo.id)
    remaining: int = store.remaining
    titles: list[str] = store.titles
    state: TodosState = store.state

    done_count: Observable[int] = store.select(lambda s: sum(t.done for t in s.todos))
    seen: list[int] = []
    done_count.subscribe(seen.append)

    def log(event: MutationEvent, new_state: TodosState) -> None:
        print(f"{event.kind}: {len(new_state.todos)} todos")

    store.subscribe(log)
    store.toggle(1)

    print(f"loaded {count}, remaining {remaining}, titles {titles}, filter {state.filter!r}, done {seen}")
    app.dispose()


if __name__ == "__main__":
    asyncio.run(main())
