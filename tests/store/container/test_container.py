"""ServiceContainer: named services, typed built-ins, and the register -> boot -> shutdown lifecycle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from quvel_store.container import (
    ApiService,
    Config,
    I18nService,
    ServiceContainer,
    TaskService,
    ValidationService,
)
from quvel_store.errors import (
    ContainerClosed,
    QuvelError,
    ServiceAlreadyRegistered,
    ServiceError,
    ServiceLifecycleError,
    ServiceNotFound,
    ServiceTypeError,
)
from tests.store.container.conftest import LaravelLikeServer


class Recorder:
    """A service that writes each hook call into a shared journal."""

    def __init__(self, name: str, journal: list[str], fail: str | None = None) -> None:
        self.name = name
        self.journal = journal
        self.fail = fail
        self.container: ServiceContainer | None = None

    def register(self, container: ServiceContainer) -> None:
        self.container = container
        self._log("register")

    def boot(self) -> None:
        self._log("boot")

    def shutdown(self) -> None:
        self._log("shutdown")

    def _log(self, hook: str) -> None:
        self.journal.append(f"{hook}:{self.name}")
        if self.fail == hook:
            raise RuntimeError(f"{self.name} {hook} broke")


class AsyncRecorder(Recorder):
    async def register(self, container: ServiceContainer) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        super().register(container)

    async def boot(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        super().boot()

    async def shutdown(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        super().shutdown()


class Plain:
    """A service with no hooks at all."""


# --- construction and built-ins ----------------------------------------------------------------------------


def test_no_arguments_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUVEL_API_URL", "https://api.example.test")
    monkeypatch.setenv("QUVEL_TENANT_ID", "acme")
    container = ServiceContainer()
    assert container.phase == "new"
    assert container.config.api_url == "https://api.example.test"
    assert container.config.get("tenant_id") == "acme"
    assert isinstance(container.api, ApiService)
    assert container.api.base_url == "https://api.example.test"
    assert isinstance(container.i18n, I18nService)
    assert isinstance(container.validation, ValidationService)
    assert isinstance(container.task, TaskService)


def test_builtins_are_lazy_and_single() -> None:
    container = ServiceContainer(Config(env=False))
    assert container.service_names == ("config",)
    task = container.task
    assert container.task is task
    assert container.service_names == ("config", "task")
    assert container.get_service("task") is task
    assert container.has_service("api")  # creatable on demand
    assert "api" not in container.service_names


def test_config_from_a_plain_dict_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUVEL_LOCALE", "de")
    container = ServiceContainer({"locale": "fr", "fallback_locale": "en", "feature_x": True})
    assert container.config.locale == "fr"
    assert container.config.get("feature_x") is True
    assert container.i18n.locale == "fr"  # the lazy i18n service reads config


def test_explicit_builtins_are_used() -> None:
    i18n = I18nService(locale="nl")
    tasks = TaskService()
    container = ServiceContainer(i18n=i18n, task=tasks)
    assert container.i18n is i18n
    assert container.task is tasks


def test_builtin_slots_are_type_checked() -> None:
    container = ServiceContainer()
    with pytest.raises(ServiceTypeError, match="must be a ApiService"):
        container.api = "not an api"  # type: ignore[assignment]
    with pytest.raises(ServiceTypeError):
        ServiceContainer(task=object())  # type: ignore[arg-type]
    with pytest.raises(ServiceTypeError):
        container.add_service("i18n", Plain(), overwrite=True)
    assert isinstance(container.api, ApiService)  # nothing held was lost


def test_two_containers_share_nothing() -> None:
    a, b = ServiceContainer({"tenant_id": "a"}), ServiceContainer({"tenant_id": "b"})
    a.add_service("x", Plain())
    assert not b.has_service("x")
    assert a.config.get("tenant_id") == "a"
    assert b.config.get("tenant_id") == "b"
    assert a.api.client is not b.api.client
    assert a.task is not b.task


# --- named services ----------------------------------------------------------------------------------------


def test_add_get_has_remove() -> None:
    container = ServiceContainer()
    service = Plain()
    assert container.add_service("plain", service) is service
    assert container.has_service("plain")
    assert "plain" in container
    assert container.get_service("plain") is service
    assert container.get_service("plain", Plain) is service
    assert container.remove_service("plain") is service
    assert not container.has_service("plain")


def test_duplicate_name_needs_overwrite_which_shuts_the_old_one_down() -> None:
    journal: list[str] = []
    container = ServiceContainer()
    old = container.add_service("svc", Recorder("old", journal))
    with pytest.raises(ServiceAlreadyRegistered, match="overwrite=True"):
        container.add_service("svc", Recorder("new", journal))
    assert container.get_service("svc") is old
    new = container.add_service("svc", Recorder("new", journal), overwrite=True)
    assert container.get_service("svc") is new
    assert journal == ["shutdown:old"]
    assert container.add_service("svc", new) is new  # re-adding the same object is a no-op


def test_overwrite_keeps_the_new_service_even_if_the_old_shutdown_fails() -> None:
    journal: list[str] = []
    container = ServiceContainer(services={"svc": Recorder("old", journal, fail="shutdown")})
    new = Recorder("new", journal)
    with pytest.raises(ServiceLifecycleError, match=r"'svc'.*shutdown"):
        container.add_service("svc", new, overwrite=True)
    assert container.get_service("svc") is new


def test_missing_service_names_the_known_ones() -> None:
    container = ServiceContainer()
    container.add_service("billing", Plain())
    with pytest.raises(ServiceNotFound) as caught:
        container.get_service("biling")
    message = str(caught.value)
    assert "'biling'" in message
    assert "'billing'" in message
    assert "'api'" in message
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, QuvelError)
    with pytest.raises(ServiceNotFound):
        container.remove_service("nothing")


def test_typed_get_rejects_the_wrong_type() -> None:
    container = ServiceContainer(services={"plain": Plain()})
    with pytest.raises(ServiceTypeError, match="not the requested Recorder"):
        container.get_service("plain", Recorder)


@pytest.mark.parametrize("bad", ["", 3, None])
def test_bad_service_names(bad: Any) -> None:
    with pytest.raises(ServiceTypeError):
        ServiceContainer().add_service(bad, Plain())


def test_get_or_create_service() -> None:
    container = ServiceContainer()
    first = container.get_or_create_service(Plain)
    assert container.get_service("Plain") is first
    assert container.get_or_create_service(Plain) is first
    made = container.get_or_create_service(lambda: {"n": 1}, name="settings")
    assert made == {"n": 1}
    with pytest.raises(ServiceTypeError, match="name="):
        container.get_or_create_service(lambda: 1)

    class Other:
        pass

    container.add_service("Other", Plain())
    with pytest.raises(ServiceTypeError, match="not a Other"):
        container.get_or_create_service(Other)
    assert isinstance(container.get_service("Other"), Plain)  # nothing held was replaced


@pytest.mark.parametrize("name", [None, "held"])
def test_get_or_create_service_refuses_what_is_neither_class_nor_factory(name: str | None) -> None:
    container = ServiceContainer()
    container.add_service("held", Plain())
    not_a_factory: Any = Plain()  # an instance, a common slip for the class
    with pytest.raises(ServiceTypeError, match="class or a factory function, got Plain"):
        container.get_or_create_service(not_a_factory, name=name)
    assert isinstance(container.get_service("held"), Plain)
    assert container.service_names == ("held",)


def test_get_or_create_builtin_by_name() -> None:
    container = ServiceContainer()
    assert container.get_or_create_service(TaskService, name="task") is container.task


# --- lifecycle ---------------------------------------------------------------------------------------------


async def test_register_all_then_boot_all_then_shutdown_in_reverse() -> None:
    journal: list[str] = []
    container = ServiceContainer(
        services={"a": Recorder("a", journal), "b": AsyncRecorder("b", journal), "c": Recorder("c", journal)}
    )
    async with container as entered:
        assert entered is container
        assert container.phase == "booted"
        assert journal == ["register:a", "register:b", "register:c", "boot:a", "boot:b", "boot:c"]
    assert journal[6:] == ["shutdown:c", "shutdown:b", "shutdown:a"]
    assert container.phase == "closed"
    assert container.get_service("a", Recorder).container is container


async def test_each_hook_runs_once() -> None:
    journal: list[str] = []
    container = ServiceContainer(services={"a": AsyncRecorder("a", journal)})
    await container.boot()
    await container.boot()
    await container.shutdown()
    await container.shutdown()
    assert journal == ["register:a", "boot:a", "shutdown:a"]
    with pytest.raises(ContainerClosed):
        await container.boot()


def test_sync_with_block() -> None:
    journal: list[str] = []
    container = ServiceContainer(services={"a": Recorder("a", journal), "b": AsyncRecorder("b", journal)})
    with container:
        assert container.phase == "booted"
    assert journal == ["register:a", "register:b", "boot:a", "boot:b", "shutdown:b", "shutdown:a"]


async def test_sync_path_inside_a_running_loop_says_use_async() -> None:
    container = ServiceContainer()
    with pytest.raises(ServiceLifecycleError, match="async with container"):
        container.boot_sync()
    assert container.phase == "new"


class Gated:
    """A service whose boot and shutdown wait for the test to open a gate."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.fail = fail
        self.booted = self.stopped = False

    async def boot(self) -> None:
        self.entered.set()
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("boot failed")
        self.booted = True

    async def shutdown(self) -> None:
        self.stopped = True


async def test_concurrent_boot_waits_for_the_first() -> None:
    gated = Gated()
    container = ServiceContainer(services={"gated": gated})
    first = asyncio.create_task(container.boot())
    await asyncio.wait_for(gated.entered.wait(), 5)
    second = asyncio.create_task(container.boot())
    await asyncio.sleep(0)
    assert not second.done()  # it waits for the boot in progress, it does not return early
    gated.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert gated.booted
    await container.shutdown()


async def test_concurrent_boot_sees_the_failure() -> None:
    gated = Gated(fail=True)
    container = ServiceContainer(services={"gated": gated})
    first = asyncio.create_task(container.boot())
    await asyncio.wait_for(gated.entered.wait(), 5)
    second = asyncio.create_task(container.boot())
    await asyncio.sleep(0)
    gated.gate.set()
    with pytest.raises(ServiceLifecycleError, match="'gated'"):
        await asyncio.wait_for(first, 5)
    with pytest.raises(ServiceLifecycleError, match="another task"):
        await asyncio.wait_for(second, 5)
    await container.shutdown()
    assert gated.stopped


async def test_shutdown_during_boot_waits_then_shuts_down() -> None:
    gated = Gated()
    container = ServiceContainer(services={"gated": gated})
    booting = asyncio.create_task(container.boot())
    await asyncio.wait_for(gated.entered.wait(), 5)
    closing = asyncio.create_task(container.shutdown())
    again = asyncio.create_task(container.shutdown())
    await asyncio.sleep(0)
    assert not gated.stopped
    gated.gate.set()
    await asyncio.wait_for(asyncio.gather(booting, closing, again), 5)
    assert gated.booted
    assert gated.stopped
    assert container.phase == "closed"


async def test_service_added_during_register_joins_the_same_boot() -> None:
    journal: list[str] = []

    class Installer(Recorder):
        def register(self, container: ServiceContainer) -> None:
            super().register(container)
            container.add_service("late", Recorder("late", journal))

    container = ServiceContainer(services={"installer": Installer("installer", journal)})
    async with container:
        pass
    assert journal == [
        "register:installer",
        "register:late",
        "boot:installer",
        "boot:late",
        "shutdown:late",
        "shutdown:installer",
    ]


async def test_service_added_after_boot_is_registered_and_booted_at_once() -> None:
    journal: list[str] = []
    async with ServiceContainer() as container:
        container.add_service("sync", Recorder("sync", journal))
        assert journal == ["register:sync", "boot:sync"]
        container.add_service("async", AsyncRecorder("async", journal))
        await container.ready()
        assert journal[2:] == ["register:async", "boot:async"]
    assert journal[4:] == ["shutdown:async", "shutdown:sync"]


async def test_lazily_created_builtin_after_boot_joins_the_lifecycle() -> None:
    async with ServiceContainer() as container:
        api = container.api
    assert api.client.is_closed


async def test_builtins_boot_first_and_shut_down_last(http_api: LaravelLikeServer) -> None:
    """A service's shutdown can still call the API even when the API client was created after it."""
    seen: list[object] = []

    class Farewell:
        def __init__(self) -> None:
            self.container: ServiceContainer | None = None

        def register(self, container: ServiceContainer) -> None:
            self.container = container

        async def shutdown(self) -> None:
            assert self.container is not None
            seen.append(await self.container.api.post("/api/echo", {"bye": True}))

    async with ServiceContainer({"api_url": http_api.url}, services={"farewell": Farewell()}) as container:
        _ = container.api  # created lazily, after "farewell"
        assert container.service_names == ("config", "farewell", "api")
    assert len(seen) == 1
    assert seen[0]["json"] == {"bye": True}  # type: ignore[index]
    assert container.api.client.is_closed


async def test_service_added_by_a_boot_hook_is_registered_then_booted() -> None:
    journal: list[str] = []

    class Spawner(Recorder):
        def boot(self) -> None:
            super().boot()
            assert self.container is not None
            self.container.add_service("child", Recorder("child", journal))

    async with ServiceContainer(services={"spawner": Spawner("spawner", journal)}):
        assert journal == ["register:spawner", "boot:spawner", "register:child", "boot:child"]


async def test_service_removed_by_a_register_hook_is_not_booted() -> None:
    journal: list[str] = []

    class Remover(Recorder):
        def register(self, container: ServiceContainer) -> None:
            super().register(container)
            container.remove_service("victim")

    container = ServiceContainer(
        services={"remover": Remover("remover", journal), "victim": Recorder("victim", journal)}
    )
    async with container:
        pass
    assert journal == ["register:remover", "shutdown:victim", "boot:remover", "shutdown:remover"]


async def test_remove_service_runs_its_shutdown() -> None:
    journal: list[str] = []
    async with ServiceContainer(
        services={"s": Recorder("s", journal), "a": AsyncRecorder("a", journal)}
    ) as container:
        container.remove_service("s")
        assert journal[-1] == "shutdown:s"
        container.remove_service("a")
        await container.ready()
        assert journal[-1] == "shutdown:a"
    assert journal.count("shutdown:s") == 1
    assert journal.count("shutdown:a") == 1


async def test_removing_a_builtin_resets_it_to_a_fresh_lazy_one() -> None:
    async with ServiceContainer() as container:
        first = container.api
        container.remove_service("api")
        await container.ready()
        assert first.client.is_closed
        second = container.api
        assert second is not first
        assert not second.client.is_closed


async def test_boot_failure_names_the_service_and_shuts_down_what_booted() -> None:
    journal: list[str] = []
    container = ServiceContainer(
        services={"ok": Recorder("ok", journal), "bad": Recorder("bad", journal, fail="boot")}
    )
    with pytest.raises(ServiceLifecycleError, match=r"'bad'.*boot") as caught:
        async with container:
            pytest.fail("the body must not run when boot fails")
    assert isinstance(caught.value.errors["bad"], RuntimeError)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert journal == ["register:ok", "register:bad", "boot:ok", "boot:bad", "shutdown:bad", "shutdown:ok"]
    assert container.phase == "closed"


async def test_shutdown_keeps_going_and_reports_every_failure() -> None:
    journal: list[str] = []
    container = ServiceContainer(
        services={
            "a": Recorder("a", journal, fail="shutdown"),
            "b": Recorder("b", journal),
            "c": AsyncRecorder("c", journal, fail="shutdown"),
        }
    )
    await container.boot()
    with pytest.raises(ServiceLifecycleError) as caught:
        await container.shutdown()
    assert set(caught.value.errors) == {"a", "c"}
    assert journal[-3:] == ["shutdown:c", "shutdown:b", "shutdown:a"]
    assert container.phase == "closed"


async def test_background_hook_failure_is_reported_by_ready_and_shutdown() -> None:
    journal: list[str] = []
    container = ServiceContainer()
    await container.boot()
    container.add_service("bad", AsyncRecorder("bad", journal, fail="boot"))
    with pytest.raises(ServiceLifecycleError) as caught:
        await container.ready()
    assert "bad" in caught.value.errors
    await container.ready()  # reported once
    await container.shutdown()
    assert journal[-1] == "shutdown:bad"


async def test_closed_container_refuses_new_services() -> None:
    container = ServiceContainer()
    await container.shutdown()
    with pytest.raises(ContainerClosed):
        container.add_service("x", Plain())
    with pytest.raises(ContainerClosed):
        _ = container.api
    assert isinstance(ContainerClosed("x"), ServiceError)


def test_no_loop_remove_of_async_service_runs_its_shutdown() -> None:
    journal: list[str] = []
    container = ServiceContainer(services={"a": AsyncRecorder("a", journal)})
    container.remove_service("a")
    assert journal == ["shutdown:a"]


def test_repr_and_iteration() -> None:
    container = ServiceContainer(services={"p": Plain()})
    assert list(container) == ["p"]
    assert "p" in repr(container)
    assert "new" in repr(container)
