"""TaskService: task handles with observable state, result, error and error bag."""

from __future__ import annotations

import asyncio

import pytest

from quvel_store.container import ServiceContainer, Task, TaskService, TaskSnapshot
from quvel_store.errors import TaskError, ValidationFailed


async def test_success_walks_fresh_active_success() -> None:
    seen: list[TaskSnapshot[int]] = []

    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    task = TaskService().new_task(double)
    task.observe().subscribe(seen.append)
    assert task.state == "fresh"
    assert await task.run(21) == 42
    assert [s.state for s in seen] == ["fresh", "active", "success"]
    assert task.state == "success"
    assert task.result == 42
    assert task.error is None
    assert task.errors == {}
    assert seen[1].is_active


async def test_error_is_captured_with_the_validation_bag() -> None:
    handled: list[BaseException] = []

    async def save() -> None:
        raise ValidationFailed("invalid", {"email": ["The email is taken."]})

    task = TaskService().new_task(save, on_error=[handled.append])
    assert await task.run() is None
    assert task.state == "error"
    assert isinstance(task.error, ValidationFailed)
    assert task.errors == {"email": ["The email is taken."]}
    assert handled == [task.error]
    with pytest.raises(ValidationFailed):
        await task.run_or_raise()
    assert task.state == "error"


async def test_plain_error_has_an_empty_bag_and_reset_clears() -> None:
    def broken() -> int:
        raise ValueError("nope")

    task = TaskService().new_task(broken)
    await task.run()
    assert isinstance(task.error, ValueError)
    assert task.errors == {}
    task.reset()
    assert task.snapshot == TaskSnapshot("fresh")


async def test_always_handlers_run_after_either_outcome_and_result_clears_on_run() -> None:
    finished: list[str] = []

    async def cleanup() -> None:
        await asyncio.sleep(0)
        finished.append("async")

    outcomes = iter([1, ValueError("x")])

    def step() -> int:
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    task = TaskService().new_task(step, always=[lambda: finished.append("sync"), cleanup])
    actives: list[TaskSnapshot[int]] = []
    task.observe().subscribe(lambda s: actives.append(s) if s.state == "active" else None)
    assert await task.run() == 1
    await task.run()
    assert finished == ["sync", "async", "sync", "async"]
    assert [a.result for a in actives] == [None, None]  # a new run clears the previous outcome
    assert task.state == "error"


async def test_sync_functions_and_success_handlers() -> None:
    got: list[str] = []
    task = TaskService().new_task(str.upper, on_success=[got.append])
    assert await task.run("hi") == "HI"
    assert got == ["HI"]


async def test_should_run_can_veto() -> None:
    calls: list[int] = []
    allowed = False

    async def gate() -> bool:
        return allowed

    task = TaskService().new_task(lambda: calls.append(1), should_run=gate)
    assert await task.run() is None
    assert task.state == "fresh"
    with pytest.raises(TaskError, match="should_run"):
        await task.run_or_raise()
    allowed = True
    await task.run()
    assert calls == [1]
    assert task.state == "success"


async def test_drop_ignores_runs_while_active() -> None:
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(n: int) -> int:
        calls.append(n)
        await release.wait()
        return n

    task = TaskService().new_task(slow)
    first = asyncio.create_task(task.run(1))
    await asyncio.sleep(0)
    assert task.is_active
    assert await task.run(2) is None
    with pytest.raises(TaskError, match="already running"):
        await task.run_or_raise(3)
    release.set()
    assert await asyncio.wait_for(first, 5) == 1
    assert calls == [1]


async def test_switch_cancels_the_active_run() -> None:
    started: list[int] = []
    cancelled: list[int] = []
    release = asyncio.Event()

    async def work(n: int) -> int:
        started.append(n)
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    task = TaskService().new_task(work, concurrency="switch")
    first = asyncio.create_task(task.run(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(task.run(2))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.wait_for(first, 5) is None  # superseded, the caller is not cancelled
    assert await asyncio.wait_for(second, 5) == 2
    assert cancelled == [1]
    assert task.result == 2
    assert task.state == "success"


async def test_parallel_only_the_latest_run_writes_state() -> None:
    gates = {1: asyncio.Event(), 2: asyncio.Event()}

    async def work(n: int) -> int:
        await gates[n].wait()
        return n

    task = TaskService().new_task(work, concurrency="parallel")
    first = asyncio.create_task(task.run(1))
    second = asyncio.create_task(task.run(2))
    await asyncio.sleep(0)
    gates[2].set()
    assert await asyncio.wait_for(second, 5) == 2
    gates[1].set()
    assert await asyncio.wait_for(first, 5) == 1
    assert task.result == 2


async def test_reset_cancels_the_active_run_only() -> None:
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    task = TaskService().new_task(work)
    running = asyncio.create_task(task.run())
    await asyncio.sleep(0)
    task.reset()
    assert await asyncio.wait_for(running, 5) is None
    assert task.state == "fresh"
    pending = asyncio.create_task(task.run_or_raise())
    await asyncio.sleep(0)
    task.reset()
    with pytest.raises(TaskError, match="cancelled"):
        await asyncio.wait_for(pending, 5)


async def test_caller_cancellation_propagates_and_state_returns_to_fresh() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    task = TaskService().new_task(forever)
    running = asyncio.create_task(task.run())
    await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert task.state == "fresh"


async def test_raising_handlers_and_observers_do_not_break_the_task() -> None:
    def bad_handler(_: object) -> None:
        raise RuntimeError("handler")

    def bad_observer(_: object) -> None:
        raise RuntimeError("observer")

    seen: list[str] = []
    task = TaskService().new_task(lambda: 5, on_success=[bad_handler])
    task.observe().subscribe(bad_observer)
    task.observe().subscribe(lambda s: seen.append(s.state))
    assert await task.run() == 5
    assert task.state == "success"
    assert seen == ["fresh", "active", "success"]


def test_bad_arguments() -> None:
    service = TaskService()
    with pytest.raises(TaskError):
        service.new_task(42)  # type: ignore[call-overload]
    with pytest.raises(TaskError, match="concurrency"):
        service.new_task(lambda: 1, concurrency="queue")  # type: ignore[arg-type]


async def test_container_shutdown_cancels_active_tasks() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    completed: list[bool] = []
    async with ServiceContainer() as container:
        task: Task[[], None] = container.task.new_task(forever, name="forever")
        task.observe().subscribe(on_completed=lambda: completed.append(True))
        running = asyncio.create_task(task.run())
        await asyncio.sleep(0)
        assert task.is_active
    assert await asyncio.wait_for(running, 5) is None
    assert completed == [True]
    assert "forever" in repr(task)
