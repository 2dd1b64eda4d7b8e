"""The service container: one place that holds, wires and tears down the services a store uses.

After QuVel's ``ServiceContainer``: built-in services (``config``, ``api``, ``i18n``, ``validation``,
``task``, ``ws``) as typed attributes created lazily, plus named custom services with an ordered
``register`` -> ``boot`` -> ``shutdown`` lifecycle.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from quvel_store.container._builtins import (
    BUILTIN_NAMES,
    builtin_available,
    check_builtin_type,
    create_builtin,
)
from quvel_store.container._lifecycle import (
    Entry,
    Hook,
    Running,
    drive_sync,
    hook_done,
    hook_of,
    is_async,
    mark_done,
    run_sync,
)
from quvel_store.errors import (
    ContainerClosed,
    ServiceAlreadyRegistered,
    ServiceLifecycleError,
    ServiceNotFound,
    ServiceTypeError,
)

if TYPE_CHECKING:
    from quvel_store.container._api import ApiService
    from quvel_store.container._config import Config
    from quvel_store.container._i18n import I18nService
    from quvel_store.container._task import TaskService
    from quvel_store.container._validation import ValidationService
    from quvel_ws import WebSocketService

__all__ = ["ContainerPhase", "ServiceContainer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

ContainerPhase = Literal["new", "booting", "booted", "closing", "closed"]


class ServiceContainer:
    """Holds the services stores use; ``async with container:`` boots them and shuts them down.

    Every argument is optional: built-in services not given are created from ``config`` on first use.
    ``config`` may be a :class:`Config` or a plain mapping of settings (merged over ``QUVEL_*`` env vars).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        *,
        api: ApiService | None = None,
        i18n: I18nService | None = None,
        validation: ValidationService | None = None,
        task: TaskService | None = None,
        ws: WebSocketService | None = None,
        services: Mapping[str, object] | None = None,
    ) -> None:
        self._entries: dict[str, Entry] = {}
        self._phase: ContainerPhase = "new"
        self._pending: set[asyncio.Future[None]] = set()
        self._pending_errors: dict[str, BaseException] = {}
        self._booting: Running | None = None
        self._closing: Running | None = None
        self._owners: list[Callable[[], Any]] = []  # apps' "who owns what opens now" (add_ws_owner)
        if config is not None:
            self.add_service("config", _as_config(config))
        for name, given in (("api", api), ("i18n", i18n), ("validation", validation), ("task", task)):
            if given is not None:
                self.add_service(name, given)
        if ws is not None:
            self.add_service("ws", ws)
        for name, service in (services or {}).items():
            self.add_service(name, service)

    # ---------------------------------------------------------------------------------------------------
    # Built-in services (typed attributes, created lazily)
    # ---------------------------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """Typed settings (arguments, ``QUVEL_*`` environment, dicts)."""
        from quvel_store.container._config import Config

        return self._typed_builtin("config", Config)

    @config.setter
    def config(self, value: Config) -> None:
        """Replace the settings; built-ins already created keep the settings they were built with
        (``remove_service("api")`` rebuilds the API client from the new ones on next use)."""
        self.add_service("config", value, overwrite=True)

    @property
    def api(self) -> ApiService:
        """The JSON HTTP client for the backend (one shared ``httpx.AsyncClient``)."""
        from quvel_store.container._api import ApiService

        return self._typed_builtin("api", ApiService)

    @api.setter
    def api(self, value: ApiService) -> None:
        self.add_service("api", value, overwrite=True)

    @property
    def i18n(self) -> I18nService:
        """Translations: catalogs per locale, ``t(key, **params)`` with a fallback locale."""
        from quvel_store.container._i18n import I18nService

        return self._typed_builtin("i18n", I18nService)

    @i18n.setter
    def i18n(self, value: I18nService) -> None:
        self.add_service("i18n", value, overwrite=True)

    @property
    def validation(self) -> ValidationService:
        """Validates data against pydantic models into Laravel-style error bags."""
        from quvel_store.container._validation import ValidationService

        return self._typed_builtin("validation", ValidationService)

    @validation.setter
    def validation(self, value: ValidationService) -> None:
        self.add_service("validation", value, overwrite=True)

    @property
    def task(self) -> TaskService:
        """Creates observable task handles (``fresh | active | success | error``)."""
        from quvel_store.container._task import TaskService

        return self._typed_builtin("task", TaskService)

    @task.setter
    def task(self, value: TaskService) -> None:
        self.add_service("task", value, overwrite=True)

    @property
    def ws(self) -> WebSocketService:
        """The WebSocket (Pusher / Laravel Echo) service, built from ``config.ws_url`` on first use.

        Its channel-auth requests go through ``api.client``, so they carry the same cookies and token.
        """
        # Duck-typed on purpose: tests and apps may hold their own WebSocket service object here.
        return cast("WebSocketService", self._builtin("ws"))

    @ws.setter
    def ws(self, value: WebSocketService) -> None:
        self.add_service("ws", value, overwrite=True)

    def _typed_builtin(self, name: str, cls: type[T]) -> T:
        service = self._builtin(name)
        if not isinstance(service, cls):  # guarded at add time; kept for mypy and for safety
            raise ServiceTypeError(f"service {name!r} is {type(service).__name__}, expected {cls.__name__}")
        return service

    def _builtin(self, name: str) -> object:
        entry = self._entries.get(name)
        if entry is not None:
            return entry.service
        if self._phase in ("closing", "closed"):
            raise ContainerClosed(f"the container is shut down; it cannot create the {name!r} service")
        service = create_builtin(self, name)
        logger.debug("created built-in service %r (%s)", name, type(service).__name__)
        self._attach(name, service)
        return service

    # ---------------------------------------------------------------------------------------------------
    # Named services
    # ---------------------------------------------------------------------------------------------------

    def add_service(self, name: str, service: T, overwrite: bool = False) -> T:
        """Hold ``service`` under ``name`` and return it.

        A taken name raises :class:`ServiceAlreadyRegistered` unless ``overwrite=True``, which shuts the old
        service down first. After the container booted, the new service is registered and booted at once.
        """
        if not isinstance(name, str) or not name:
            raise ServiceTypeError(f"a service name must be a non-empty string, got {name!r}")
        if self._phase in ("closing", "closed"):
            raise ContainerClosed(f"the container is shut down; it cannot accept the service {name!r}")
        if name in BUILTIN_NAMES:
            check_builtin_type(name, service)
        existing = self._entries.get(name)
        if existing is not None:
            if existing.service is service:
                return service
            if not overwrite:
                raise ServiceAlreadyRegistered(name)
            # The new service is held before the old one shuts down: if that shutdown fails, the error
            # is raised but the container is left holding the service the caller asked for.
            del self._entries[name]
            self._attach(name, service)
            self._run_hook_now(name, existing, "shutdown")
            return service
        self._attach(name, service)
        return service

    @overload
    def get_service(self, name: str) -> object: ...

    @overload
    def get_service(self, name: str, type_: type[T]) -> T: ...

    def get_service(self, name: str, type_: type[Any] | None = None) -> object:
        """The service named ``name`` (built-ins are created on demand).

        With ``type_`` the result is checked and typed: ``container.get_service("billing", Billing)``.
        Raises :class:`ServiceNotFound` (listing the known names) when there is none.
        """
        entry = self._entries.get(name)
        if entry is not None:
            service = entry.service
        elif name in BUILTIN_NAMES:
            service = self._builtin(name)
        else:
            raise ServiceNotFound(name, self._known_names())
        if type_ is not None and not isinstance(service, type_):
            raise ServiceTypeError(
                f"service {name!r} is a {type(service).__name__}, not the requested {type_.__name__}"
            )
        return service

    def has_service(self, name: str) -> bool:
        """Whether ``get_service(name)`` would find a service (built-ins count when they can be created)."""
        if name in self._entries:
            return True
        return name in BUILTIN_NAMES and builtin_available(self, name)

    def get_or_create_service(self, cls_or_factory: Callable[[], T], name: str | None = None) -> T:
        """The service under ``name`` if held, else ``cls_or_factory()`` added under that name.

        ``name`` defaults to the class's name; a factory that is not a class (or a lambda) needs one.
        When given a class, a held service of another type raises :class:`ServiceTypeError`.
        """
        if not callable(cls_or_factory):
            raise ServiceTypeError(
                "get_or_create_service takes a service class or a factory function, "
                f"got {type(cls_or_factory).__name__}"
            )
        if name is None:
            factory_name = getattr(cls_or_factory, "__name__", "")
            if not factory_name or factory_name == "<lambda>":
                raise ServiceTypeError(
                    "get_or_create_service needs name=... for a factory without a usable __name__"
                )
            name = factory_name
        if self.has_service(name):
            existing = self.get_service(name)
            if isinstance(cls_or_factory, type) and not isinstance(existing, cls_or_factory):
                raise ServiceTypeError(
                    f"service {name!r} is a {type(existing).__name__}, not a {cls_or_factory.__name__}"
                )
            return existing  # type: ignore[return-value]  # the caller's factory type is our best knowledge
        return self.add_service(name, cls_or_factory())

    def remove_service(self, name: str) -> object:
        """Take ``name`` out of the container, run its ``shutdown()``, and return it.

        A built-in goes back to its lazy default (the next access builds a fresh one from config).
        An async ``shutdown`` runs as a task when a loop is running; ``await container.ready()`` waits for it.
        """
        entry = self._entries.pop(name, None)
        if entry is None:
            raise ServiceNotFound(name, self._known_names())
        self._run_hook_now(name, entry, "shutdown")
        return entry.service

    @property
    def service_names(self) -> tuple[str, ...]:
        """Names of the services held now, in the order they were added (lazy built-ins not yet created
        are not listed)."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has_service(name)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def _ordered(self) -> list[tuple[str, Entry]]:
        """Lifecycle order: built-ins (in creation order: ``api`` before the ``ws`` that uses it), then
        the other services in the order they were added."""
        items = list(self._entries.items())
        return [i for i in items if i[0] in BUILTIN_NAMES] + [i for i in items if i[0] not in BUILTIN_NAMES]

    def _known_names(self) -> list[str]:
        names = list(self._entries)
        names.extend(n for n in BUILTIN_NAMES if n not in self._entries and builtin_available(self, n))
        return names

    def _attach(self, name: str, service: object) -> None:
        entry = Entry(service)
        self._entries[name] = entry
        if name == "api":  # Echo's interceptor: the app's requests carry X-Socket-ID (toOthers())
            cast("ApiService", service).add_header_provider(self._socket_headers)
        if name == "ws" and getattr(service, "owner", False) is None:  # (an owner set by hand stays)
            service.owner = self._current_owner  # type: ignore[attr-defined]
        if self._phase == "booted":
            # Added after boot: it joins the lifecycle now, register first, then boot.
            self._run_hook_now(name, entry, "register", then_boot=True)

    def add_ws_owner(self, resolve: Callable[[], Any]) -> Callable[[], None]:
        """Let ``resolve()`` name who owns what ``ws`` opens now (an object with ``.add(disposable)``, or
        None). Each app adds its own: the store whose action runs, or the active ``app.scope()``. Returns
        the function that removes it again."""
        self._owners.append(resolve)

        def remove() -> None:
            if resolve in self._owners:
                self._owners.remove(resolve)

        return remove

    def _current_owner(self) -> Any:
        for resolve in reversed(self._owners):
            owner = resolve()
            if owner is not None:
                return owner
        return None

    def _socket_headers(self) -> Mapping[str, str]:
        """``{"X-Socket-ID": id}`` while the held WebSocket service is connected, else nothing."""
        entry = self._entries.get("ws")
        headers = getattr(entry.service, "socket_headers", None) if entry is not None else None
        return headers() if callable(headers) else {}

    # ---------------------------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------------------------

    @property
    def phase(self) -> ContainerPhase:
        """``new`` -> ``booting`` -> ``booted`` -> ``closing`` -> ``closed``."""
        return self._phase

    async def boot(self) -> None:
        """Run every service's ``register(container)``, then every ``boot()``: built-in services first, then
        yours in the order added (shutdown is the exact reverse, so infrastructure is up first, down last).

        Runs once; a call while another task boots waits for it. A failing hook raises
        :class:`ServiceLifecycleError` naming the service (what booted stays booted: call :meth:`shutdown`).
        """
        if self._phase != "new":
            if self._phase in ("closing", "closed"):
                raise ContainerClosed("the container is shut down; it cannot boot again")
            await self._wait_for(self._booting)
            return
        self._phase = "booting"
        self._booting = Running()
        try:
            for hook in ("register", "boot"):
                while True:  # a hook may add services; they join this same pass
                    todo = [(n, e) for n, e in self._ordered() if not hook_done(e, hook)]
                    if not todo:
                        break
                    for name, entry in todo:
                        if self._entries.get(name) is not entry:
                            continue  # removed by an earlier hook
                        if hook == "boot" and not entry.registered:  # added by a boot() hook
                            await self._run_hook(name, entry, "register")
                        await self._run_hook(name, entry, hook)
        except BaseException as exc:
            self._phase = "booted"  # what booted can still be shut down
            self._booting.finish(exc)
            raise
        self._phase = "booted"
        self._booting.finish(None)
        logger.debug("container booted with services %s", list(self._entries))

    async def shutdown(self) -> None:
        """Shut every service down in the reverse of boot order (your services, last added first, then the
        built-ins, so a service's shutdown can still use ``api``); keeps going past failures and reports all.

        Waits for hooks still running in the background first. Runs once; the container is then closed.
        """
        if self._phase in ("closing", "closed"):
            await self._wait_for(self._closing)
            return
        if self._phase == "booting":
            await self._wait_for(self._booting)  # let a concurrent boot finish, then undo it
            if self._phase in ("closing", "closed"):
                await self._wait_for(self._closing)
                return
        self._phase = "closing"
        self._closing = Running()
        errors: dict[str, BaseException] = {}
        try:
            await self._drain_pending(errors)
            for name, entry in reversed(self._ordered()):
                try:
                    await self._run_hook(name, entry, "shutdown")
                except ServiceLifecycleError as exc:
                    errors[name] = exc.__cause__ or exc
        finally:
            self._phase = "closed"
            self._closing.finish(None)
        if errors:
            raise ServiceLifecycleError(
                f"{len(errors)} service(s) failed during shutdown: {', '.join(errors)}", errors
            ) from next(iter(errors.values()))

    async def _wait_for(self, running: Running | None) -> None:
        """Wait until a boot/shutdown started by another task ends (at once from inside its own hooks)."""
        if running is None or running.done or running.task is asyncio.current_task():
            return
        await running.event.wait()
        if running.error is not None:
            raise ServiceLifecycleError(
                f"the container failed to boot in another task: {running.error}"
            ) from running.error

    async def ready(self) -> None:
        """Wait for lifecycle hooks running in the background (async hooks of services added after boot,
        async shutdowns from :meth:`remove_service`); raises :class:`ServiceLifecycleError` if any failed."""
        errors: dict[str, BaseException] = {}
        await self._drain_pending(errors)
        if errors:
            raise ServiceLifecycleError(
                f"background lifecycle hook(s) failed for: {', '.join(errors)}", errors
            ) from next(iter(errors.values()))

    def boot_sync(self) -> None:
        """:meth:`boot` for code without an event loop (async hooks run in a private loop)."""
        run_sync(self.boot(), "boot_sync")

    def shutdown_sync(self) -> None:
        """:meth:`shutdown` for code without an event loop (async hooks run in a private loop)."""
        run_sync(self.shutdown(), "shutdown_sync")

    async def __aenter__(self) -> ServiceContainer:
        try:
            await self.boot()
        except BaseException:
            await self.shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def __enter__(self) -> ServiceContainer:
        try:
            self.boot_sync()
        except BaseException:
            self.shutdown_sync()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown_sync()

    async def _drain_pending(self, errors: dict[str, BaseException]) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        errors.update(self._pending_errors)
        self._pending_errors.clear()

    async def _run_hook(self, name: str, entry: Entry, hook: Hook) -> None:
        """Run one hook once; an exception becomes a ServiceLifecycleError naming the service."""
        fn = hook_of(entry, hook)
        mark_done(entry, hook)
        if fn is None:
            return
        try:
            result = fn(self) if hook == "register" else fn()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise ServiceLifecycleError(
                f"service {name!r} ({type(entry.service).__name__}) failed in {hook}(): {exc!r}", {name: exc}
            ) from exc

    def _run_hook_now(self, name: str, entry: Entry, hook: Hook, then_boot: bool = False) -> None:
        """Run a hook from synchronous code: at once if sync, as a tracked task if async and a loop runs,
        in a private loop otherwise."""
        needs_async = is_async(hook_of(entry, hook)) or (then_boot and is_async(hook_of(entry, "boot")))

        async def run() -> None:
            await self._run_hook(name, entry, hook)
            if then_boot:
                await self._run_hook(name, entry, "boot")

        if not needs_async:
            drive_sync(run())
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(run())
            return
        task = loop.create_task(run(), name=f"quvel-service-{hook}-{name}")
        self._pending.add(task)

        def done(t: asyncio.Future[None]) -> None:
            self._pending.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                assert exc is not None
                logger.error("service %r failed in background %s: %r", name, hook, exc)
                self._pending_errors[name] = exc.__cause__ or exc

        task.add_done_callback(done)

    def __repr__(self) -> str:
        return f"<ServiceContainer {self._phase} services={list(self._entries)}>"


def _as_config(value: Config | Mapping[str, Any]) -> Config:
    from quvel_store.container._config import Config

    return value if isinstance(value, Config) else Config(value)
