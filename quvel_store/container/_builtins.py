"""The container's built-in services: their names, how each is built from the settings, which type a
replacement must have. The container calls these; they use only its public face."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quvel_store.errors import ServiceError, ServiceNotConfigured, ServiceNotFound, ServiceTypeError

if TYPE_CHECKING:
    from quvel_store.container._container import ServiceContainer

__all__ = ["BUILTIN_NAMES", "builtin_available", "check_builtin_type", "create_builtin"]

BUILTIN_NAMES: tuple[str, ...] = ("config", "api", "i18n", "validation", "task", "ws")


def create_builtin(container: ServiceContainer, name: str) -> object:
    """A new built-in service ``name``, from the container's settings (and the built-ins it needs)."""
    if name == "config":
        from quvel_store.container._config import Config

        return Config()
    if name == "api":
        from quvel_store.container._api import ApiService

        return ApiService.from_config(container.config, locale=lambda: _current_locale(container))
    if name == "i18n":
        from quvel_store.container._i18n import I18nService

        config = container.config
        return I18nService(locale=config.locale, fallback_locale=config.fallback_locale)
    if name == "validation":
        from quvel_store.container._validation import ValidationService

        return ValidationService(i18n=container.i18n)
    if name == "task":
        from quvel_store.container._task import TaskService

        return TaskService()
    if name == "ws":
        return _create_ws(container)
    raise ServiceNotFound(name, list(BUILTIN_NAMES))  # pragma: no cover - callers pass built-in names


def builtin_available(container: ServiceContainer, name: str) -> bool:
    """Whether the built-in ``name`` can be created now (``ws`` needs a URL, or server rendering)."""
    if name == "ws":
        try:
            config = container.config
        except ServiceError:
            return False
        return bool(config.ws_url) or config.server_rendering
    return container.phase not in ("closing", "closed")


def check_builtin_type(name: str, service: object) -> None:
    """A service held under a built-in name must be of that built-in's type (``ws`` is duck-typed)."""
    expected: type[Any] | None = None
    if name == "config":
        from quvel_store.container._config import Config

        expected = Config
    elif name == "api":
        from quvel_store.container._api import ApiService

        expected = ApiService
    elif name == "i18n":
        from quvel_store.container._i18n import I18nService

        expected = I18nService
    elif name == "validation":
        from quvel_store.container._validation import ValidationService

        expected = ValidationService
    elif name == "task":
        from quvel_store.container._task import TaskService

        expected = TaskService
    if expected is not None and not isinstance(service, expected):
        raise ServiceTypeError(
            f"the built-in {name!r} service must be a {expected.__name__}, got {type(service).__name__}"
        )


def _current_locale(container: ServiceContainer) -> str | None:
    """The i18n service's locale once it exists, else the configured one (sent as Accept-Language)."""
    from quvel_store.container._config import Config
    from quvel_store.container._i18n import I18nService

    held = container.service_names
    if "i18n" in held:
        i18n = container.get_service("i18n")
        if isinstance(i18n, I18nService):
            return i18n.locale
    if "config" in held:
        config = container.get_service("config")
        return config.locale if isinstance(config, Config) else None
    return None


def _create_ws(container: ServiceContainer) -> object:
    config = container.config
    url = config.ws_url
    if not url and not config.server_rendering:
        raise ServiceNotConfigured(
            "the WebSocket service needs a server URL: set QUVEL_WS_URL in the environment, pass "
            "ServiceContainer(config={'ws_url': 'ws://host:port/app/<key>'}), or give one explicitly "
            "with ServiceContainer(ws=WebSocketService(...)) / container.ws = ..."
        )
    try:
        from quvel_ws import WebSocketService
    except ImportError as exc:
        raise ServiceNotConfigured(
            "the WebSocket service is not available: quvel_ws.WebSocketService cannot be imported "
            f"({exc}); install quvel with its quvel_ws package, or set container.ws explicitly"
        ) from exc
    return WebSocketService(
        # Server rendering never connects, so it needs no real server: the URL is only a placeholder.
        url or "ws://server-rendering.invalid/app/none",
        http_client=container.api.client,
        auth_endpoint=config.ws_auth_endpoint,
        user_auth_endpoint=config.ws_user_auth_endpoint,
        server_rendering=config.server_rendering,
    )
