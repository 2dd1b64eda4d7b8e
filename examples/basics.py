"""Stores without a server: state, getters, actions, patch, subscribe, select.

``python examples/basics.py`` prints what happens and exits 0.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from quvel_store import Store, action, create_app, getter


class Todo(BaseModel):
    id: int
    title: str
    done: bool = False


class TodoState(BaseModel):
    todos: list[Todo] = []
    filter: Literal["all", "open", "done"] = "all"


class TodoStore(Store[TodoState]):
    id = "todos"

    @getter
    def open_count(self) -> int:
        return sum(not t.done for t in self.state.todos)

    @getter
    def visible(self) -> list[Todo]:
        if self.state.filter == "all":
            return list(self.state.todos)
        return [t for t in self.state.todos if t.done == (self.state.filter == "done")]

    @action
    def add(self, title: str) -> Todo:
        todo = Todo(id=len(self.state.todos) + 1, title=title)
        self.patch(lambda s: s.todos.append(todo))
        return todo

    @action
    def toggle(self, todo_id: int) -> None:
        def flip(state: TodoState) -> None:
            for todo in state.todos:
                if todo.id == todo_id:
                    todo.done = not todo.done
                    return
            raise KeyError(f"no todo {todo_id}")

        self.patch(flip)


def main() -> int:
    app = create_app()
    store = app.use(TodoStore)

    # $subscribe: one call per commit, with the mutation and the new state.
    commits: list[str] = []
    store.subscribe(lambda event, state: commits.append(f"{event.kind} -> {len(state.todos)} todos"))
    # select: emits the current value, then only when it changes.
    open_counts: list[int] = []
    store.select(lambda s: sum(not t.done for t in s.todos)).subscribe(open_counts.append)
    # $onAction: every action call.
    calls: list[str] = []
    store.on_action(lambda ctx: calls.append(ctx.name))

    store.add("Write the docs")
    store.add("Ship it")
    store.toggle(1)
    store.patch({"filter": "open"})
    print("visible:", [t.title for t in store.visible], "open:", store.open_count)

    # A function patch that raises is rolled back: nothing changes, the error reaches the caller.
    try:
        store.toggle(99)
    except KeyError as exc:
        print("rolled back:", exc)
    # A patch with a wrong type is refused and leaves the state as it was.
    try:
        store.patch({"filter": "someday"})
    except Exception as exc:
        print("refused:", type(exc).__name__)
    assert store.state.filter == "open"

    with store.batch():  # several writes, one commit
        store.add("Celebrate")
        store.patch({"filter": "all"})

    store.reset()
    print("commits:", commits)
    print("open counts seen by select:", open_counts)
    print("actions:", calls)
    assert open_counts == [0, 1, 2, 1, 2, 0], open_counts
    assert store.state == TodoState()
    app.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
