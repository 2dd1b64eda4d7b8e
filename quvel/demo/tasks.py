"""The model-broadcasting recipe: a store of Eloquent ``Task`` models kept in sync from Laravel's model
broadcasts (``BroadcastsEvents``), like echo-vue's ``useEchoModel`` but for a whole collection.

The app broadcasts ``TaskCreated``, ``TaskUpdated``, ``TaskTrashed``, ``TaskRestored`` and ``TaskDeleted``
(each with the model under ``model``) on ``private-App.Models.Task``; the store loads ``GET /api/tasks``
and reloads it after every (re)subscription until the reload succeeds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from reactivex import operators as ops
from reactivex.abc import DisposableBase

from quvel_store import Store, SyncedCollection, SyncInfo, SyncStatus, action, getter

_EPOCH = datetime.fromtimestamp(0, UTC)


class Task(BaseModel):
    """``App\\Models\\Task`` as ``toArray()`` gives it (the API and the broadcasts send the same shape)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    title: str
    done: bool = False
    user_id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class TaskState(BaseModel):
    tasks: list[Task] = []
    sync: SyncInfo = SyncInfo()


def _updated(task: Task) -> datetime:
    return task.updated_at or _EPOCH


class TaskStore(Store[TaskState]):
    """The shared task board: live from ``private-App.Models.Task``, changed through ``/api/tasks``."""

    id = "tasks"

    board: SyncedCollection[Task]
    _following: DisposableBase | None

    def on_init(self) -> None:
        self._following = None
        self.board = SyncedCollection(
            self,
            Task,
            load=self._fetch,
            items="tasks",
            order=lambda task: task.id,
            prune=True,  # GET /api/tasks lists them all: what it lacks was deleted while we were away
            version=_updated,  # a newer copy wins, whichever of reload and broadcast lands last
        )

    @getter
    def open_count(self) -> int:
        return sum(not t.done for t in self.state.tasks)

    @getter
    def sync_status(self) -> SyncStatus:
        return self.state.sync.status

    @action
    def follow(self) -> None:
        """Follow the board (once; calling again is harmless)."""
        if self._following is not None:
            return
        ws = self.container.ws
        channel = ws.channel("App.Models.Task", type="private")
        lost = ws.state.pipe(ops.filter(lambda state: state != "connected"))
        self._following = self.board.follow_models(channel, "Task", lost=lost)

    @action
    def unfollow(self) -> None:
        if self._following is not None:
            self._following.dispose()
            self._following = None

    async def _fetch(self) -> list[Any]:
        body = await self.container.api.get("/api/tasks")
        return list(body["data"])

    @action
    async def add(self, title: str) -> Task:
        """``POST /api/tasks``; the answer goes in at once (the ``TaskCreated`` broadcast then changes
        nothing: the same id, the same version)."""
        body = await self.container.api.post("/api/tasks", json={"title": title})
        return self.board.upsert(body["data"])

    @action
    async def toggle(self, task_id: int) -> Task:
        task = self.board.get(task_id)
        if task is None:
            raise KeyError(f"no task {task_id} on the board")
        body = await self.container.api.patch(f"/api/tasks/{task_id}", json={"done": not task.done})
        return self.board.upsert(body["data"])

    @action
    async def trash(self, task_id: int) -> None:
        await self.container.api.delete(f"/api/tasks/{task_id}")
        self.board.remove(task_id)
