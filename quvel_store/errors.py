"""The one exception hierarchy of :mod:`quvel_store`: every error the package raises is a :class:`QuvelError`.

Grouped by area; each error's message says what went wrong and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ApiCsrfMismatch",
    "ApiDecodeError",
    "ApiError",
    "ApiForbidden",
    "ApiNotFound",
    "ApiRateLimited",
    "ApiServerError",
    "ApiStatusError",
    "ApiTimeout",
    "ApiTransportError",
    "ApiUnauthenticated",
    "ApiValidationFailed",
    "ConfigError",
    "ContainerClosed",
    "I18nError",
    "QuvelError",
    "SchemaError",
    "ServiceAlreadyRegistered",
    "ServiceError",
    "ServiceLifecycleError",
    "ServiceNotConfigured",
    "ServiceNotFound",
    "ServiceTypeError",
    "TaskError",
    "ValidationFailed",
]


class QuvelError(Exception):
    """Base of every error raised by :mod:`quvel_store`; catch this to catch them all."""


# --------------------------------------------------------------------------------------------------------
# Service container
# --------------------------------------------------------------------------------------------------------


class ServiceError(QuvelError):
    """Base of the service container's errors."""


class ServiceNotFound(ServiceError, LookupError):
    """``get_service(name)`` for a name the container does not hold."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        listed = ", ".join(repr(k) for k in self.known) or "none"
        super().__init__(
            f"no service named {name!r} in the container (known services: {listed}); "
            f"add it with container.add_service({name!r}, service)"
        )


class ServiceAlreadyRegistered(ServiceError):
    """``add_service(name, ...)`` for a name already taken, without ``overwrite=True``."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"a service named {name!r} is already in the container; "
            f"pass overwrite=True to replace it (the old one is shut down)"
        )


class ServiceNotConfigured(ServiceError):
    """A built-in service was used but the configuration it needs is missing."""


class ServiceTypeError(ServiceError, TypeError):
    """A service is not of the type the caller (or the built-in slot) requires."""


class ServiceLifecycleError(ServiceError):
    """A service's ``register``, ``boot`` or ``shutdown`` hook failed, or a hook cannot run here.

    ``errors`` maps each failing service name to its exception (shutdown keeps going past failures and
    reports them all at the end).
    """

    def __init__(self, message: str, errors: Mapping[str, BaseException] | None = None) -> None:
        self.errors: dict[str, BaseException] = dict(errors or {})
        super().__init__(message)


class ContainerClosed(ServiceError):
    """The container was shut down; it no longer creates or accepts services."""


# --------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------


class ConfigError(QuvelError, ValueError):
    """A configuration value is missing or malformed; ``key`` and ``source`` say which and where from."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        self.key = key
        self.source = source
        super().__init__(message)


# --------------------------------------------------------------------------------------------------------
# Validation (shared by the validation service and the API's 422 responses)
# --------------------------------------------------------------------------------------------------------


class ValidationFailed(QuvelError):
    """Data failed validation; ``errors`` is a Laravel-style bag ``{"field.path": ["message", ...]}``."""

    def __init__(self, message: str, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        self.message = message
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}
        super().__init__(message)

    def first(self, field: str) -> str | None:
        """The first message for ``field``, or None when the field has no error."""
        messages = self.errors.get(field)
        return messages[0] if messages else None

    def has(self, field: str) -> bool:
        """Whether ``field`` has at least one error."""
        return bool(self.errors.get(field))


class SchemaError(QuvelError, TypeError):
    """What was given as a model is not something pydantic can validate against."""


# --------------------------------------------------------------------------------------------------------
# API (HTTP) service
# --------------------------------------------------------------------------------------------------------


class ApiError(QuvelError):
    """Base of the API service's errors; ``method`` and ``url`` name the request that failed."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        self.message = message
        self.method = method
        self.url = url
        super().__init__(message)


class ApiTransportError(ApiError):
    """No response arrived: connection refused, DNS failure, broken connection."""


class ApiTimeout(ApiTransportError):
    """The request timed out (connect, read, write or pool); raise ``api_timeout`` if this is expected."""


class ApiDecodeError(ApiError):
    """The server answered 2xx but the body is not the JSON the service expects."""

    def __init__(self, message: str, *, method: str, url: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(message, method=method, url=url)


class ApiStatusError(ApiError):
    """The server answered with a 4xx or 5xx status; ``status``, ``body`` and ``headers`` hold the reply."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(message, method=method, url=url)


class ApiValidationFailed(ApiStatusError, ValidationFailed):
    """HTTP 422: Laravel rejected the input; ``errors`` is its field error bag."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        body: Any,
        errors: Mapping[str, Sequence[str]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        ApiStatusError.__init__(self, message, method=method, url=url, status=422, body=body, headers=headers)
        self.errors = {k: list(v) for k, v in errors.items()}


class ApiUnauthenticated(ApiStatusError):
    """HTTP 401: no valid session or token; log in or call ``api.set_token(...)``."""


class ApiForbidden(ApiStatusError):
    """HTTP 403: authenticated but not allowed."""


class ApiNotFound(ApiStatusError):
    """HTTP 404."""


class ApiCsrfMismatch(ApiStatusError):
    """HTTP 419 (Laravel's "CSRF token mismatch" / page expired): fetch ``/sanctum/csrf-cookie`` again."""


class ApiRateLimited(ApiStatusError):
    """HTTP 429; ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, method=method, url=url, status=status, body=body, headers=headers)


class ApiServerError(ApiStatusError):
    """HTTP 5xx: the server failed."""


# --------------------------------------------------------------------------------------------------------
# Task and i18n services
# --------------------------------------------------------------------------------------------------------


class TaskError(QuvelError):
    """A task handle was misused (e.g. ``run()`` while already active with ``concurrent=False``)."""


class I18nError(QuvelError):
    """A translation catalog could not be loaded, or a key is missing in strict mode."""
