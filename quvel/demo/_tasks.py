"""The demo app's ``Task`` model: an Eloquent model with ``BroadcastsEvents`` and ``SoftDeletes``, its
table, its ``/api/tasks`` routes, and the model broadcasts Laravel sends for it (``TaskCreated``,
``TaskUpdated``, ``TaskTrashed``, ``TaskRestored``, ``TaskDeleted`` with a ``model`` payload) on the
task's own channel and on the per-class channel ``private-App.Models.Task``."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from quvel.demo._http import Handler, HTTPError, Request, Response
from quvel.demo._laravel import laravel_timestamp

#: The per-class channel task broadcasts also go to (each task has its own ``private-App.Models.Task.{id}``).
TASKS_CHANNEL = "private-App.Models.Task"

Broadcast = Callable[[list[str], str, Any], Awaitable[bool]]
Authenticate = Callable[[Request], Any]


@dataclass
class TaskRecord:
    """A row of the ``tasks`` table of an Eloquent ``Task`` model with ``BroadcastsEvents`` and
    ``SoftDeletes``."""

    id: int
    title: str
    user_id: int
    created_at: str
    updated_at: str
    done: bool = False
    deleted_at: str | None = None

    def to_api(self) -> dict[str, Any]:
        """``$task->toArray()``: what the API returns and what model broadcasts carry under ``model``."""
        return {
            "id": self.id,
            "title": self.title,
            "done": self.done,
            "user_id": self.user_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
        }


class TaskBoard:
    """The tasks table and what the app does with it; ``broadcast`` publishes (returns False when the
    server cannot be reached: the change stays, as with Laravel's queue), ``authenticate`` resolves the
    signed-in user of a request (raising 401)."""

    def __init__(self, broadcast: Broadcast, authenticate: Authenticate) -> None:
        self.records: dict[int, TaskRecord] = {}
        self._ids = itertools.count(1)
        self._broadcast = broadcast
        self._user = authenticate

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/api/tasks", self._list_tasks),
            ("POST", "/api/tasks", self._post_task),
            ("PATCH", "/api/tasks/{id}", self._patch_task),
            ("DELETE", "/api/tasks/{id}", self._delete_task),
            ("POST", "/api/tasks/{id}/restore", self._restore_task),
        ]

    def live(self) -> list[TaskRecord]:
        """The tasks not trashed, in id order."""
        return [t for t in self.records.values() if t.deleted_at is None]

    def task_channels(self, task: TaskRecord) -> list[str]:
        """``broadcastOn($event)``: ``[$this, new PrivateChannel('App.Models.Task')]``."""
        return [f"private-App.Models.Task.{task.id}", TASKS_CHANNEL]

    async def _broadcast_model(self, task: TaskRecord, *events: str) -> None:
        """What ``BroadcastsEvents`` publishes for each model event: ``Task{Event}`` (the ``broadcastAs``
        name) with the public properties of ``BroadcastableModelEventOccurred`` (``model`` as
        ``toArray()``, ``connection``, ``queue``; the broadcaster removes ``socket``)."""
        payload = {"model": task.to_api(), "connection": None, "queue": None}
        for event in events:
            await self._broadcast(self.task_channels(task), f"Task{event.capitalize()}", payload)

    def _task(self, task_id: int) -> TaskRecord:
        task = self.records.get(task_id)
        if task is None:
            raise KeyError(f"no task {task_id}")
        return task

    async def create(self, user_id: int, title: str) -> TaskRecord:
        now = laravel_timestamp()
        task = TaskRecord(next(self._ids), title, user_id, now, now)
        self.records[task.id] = task
        await self._broadcast_model(task, "created")
        return task

    async def update(self, task_id: int, *, title: str | None = None, done: bool | None = None) -> TaskRecord:
        task = self._task(task_id)
        task.title = task.title if title is None else title
        task.done = task.done if done is None else done
        task.updated_at = laravel_timestamp()
        await self._broadcast_model(task, "updated")
        return task

    async def trash(self, task_id: int) -> TaskRecord:
        """``$task->delete()`` with soft deletes: Laravel fires ``trashed``, then ``deleted``."""
        task = self._task(task_id)
        task.deleted_at = task.updated_at = laravel_timestamp()
        await self._broadcast_model(task, "trashed", "deleted")
        return task

    async def restore(self, task_id: int) -> TaskRecord:
        """``$task->restore()``: saved (``updated``), then ``restored``."""
        task = self._task(task_id)
        task.deleted_at = None
        task.updated_at = laravel_timestamp()
        await self._broadcast_model(task, "updated", "restored")
        return task

    async def force_delete(self, task_id: int) -> None:
        """``$task->forceDelete()``: the row is gone; ``deleted`` is broadcast with the model."""
        task = self.records.pop(task_id)
        await self._broadcast_model(task, "deleted")

    async def _list_tasks(self, request: Request) -> Response:
        self._user(request)
        trashed = request.query.get("with_trashed") in {"1", "true"}
        rows = [t.to_api() for t in self.records.values() if trashed or t.deleted_at is None]
        return Response.json({"data": rows})

    def _api_task(self, request: Request) -> TaskRecord:
        try:
            return self._task(int(request.params["id"]))
        except (KeyError, ValueError):
            raise HTTPError(404, "No query results for model [App\\Models\\Task].") from None

    @staticmethod
    def _task_fields(request: Request) -> tuple[str | None, bool | None]:
        body = request.json()
        body = body if isinstance(body, dict) else {}
        title, done = body.get("title"), body.get("done")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise HTTPError(
                422, "The title field must be a string.", {"title": ["The title field must be a string."]}
            )
        if done is not None and not isinstance(done, bool):
            raise HTTPError(
                422,
                "The done field must be true or false.",
                {"done": ["The done field must be true or false."]},
            )
        return (title.strip() if title else None), done

    async def _post_task(self, request: Request) -> Response:
        user = self._user(request)
        title, done = self._task_fields(request)
        if title is None:
            raise HTTPError(422, "The title field is required.", {"title": ["The title field is required."]})
        task = await self.create(user.id, title)
        if done:
            task = await self.update(task.id, done=True)
        return Response.json({"data": task.to_api()}, 201)

    async def _patch_task(self, request: Request) -> Response:
        self._user(request)
        task = self._api_task(request)
        title, done = self._task_fields(request)
        return Response.json({"data": (await self.update(task.id, title=title, done=done)).to_api()})

    async def _delete_task(self, request: Request) -> Response:
        self._user(request)
        task = self._api_task(request)
        if request.query.get("force") in {"1", "true"}:
            await self.force_delete(task.id)
        elif task.deleted_at is None:
            await self.trash(task.id)
        return Response(204)

    async def _restore_task(self, request: Request) -> Response:
        self._user(request)
        task = self._api_task(request)
        if task.deleted_at is not None:
            task = await self.restore(task.id)
        return Response.json({"data": task.to_api()})
