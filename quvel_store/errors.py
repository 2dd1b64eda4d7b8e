"""The one exception hierarchy of :mod:`quvel_store`: every error the package raises is a :class:`QuvelError`.

Grouped by area (the store core, then the service container and its services); each error's message
says what went wrong and what to do about it. ``quvel_store`` re-exports the store core's errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ActionError",
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
    "HydrationError",
    "I18nError",
    "InvalidStoreKeyError",
    "LoopBindingError",
    "PluginError",
    "QuvelError",
    "ResyncFailed",
    "SchemaError",
    "ServiceAlreadyRegistered",
    "ServiceError",
    "ServiceLifecycleError",
    "ServiceNotConfigured",
    "ServiceNotFound",
    "ServiceTypeError",
    "SnapshotError",
    "StateMutationError",
    "StateValidationError",
    "StoreArgumentError",
    "StoreDefinitionError",
    "StoreDisposedError",
    "StoreError",
    "SyncedCollectionError",
    "TaskError",
    "TestKitError",
    "TransactionConflictError",
    "ValidationFailed",
]


class QuvelError(Exception):
    """Base of every error raised by :mod:`quvel_store`; catch this to catch them all."""


# --------------------------------------------------------------------------------------------------------
# Store core: state, writes, actions, lifecycle, hydration, loops, plugins, the test kit
# --------------------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


def _format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "<root>"


class StoreError(QuvelError):
    """Base of the store core's errors."""


class StoreDefinitionError(StoreError, TypeError):
    """A ``Store`` subclass is declared wrongly (no ``id``, no state model, a ':' in the id...)."""


class StoreArgumentError(StoreError, TypeError):
    """An argument to the store API has the wrong kind (a callback that is not callable, a source that is
    not an Observable, a container that is not a ``ServiceContainer``); refused at the call, nothing kept."""


class InvalidStoreKeyError(StoreError, ValueError):
    """``app.use(StoreClass, key=...)`` with a key that is not a non-empty str without ':'; no store made."""


class SnapshotError(StoreError, ValueError):
    """``app.snapshot()`` met a state it cannot dump as JSON; ``store_id`` names it, ``__cause__`` is why."""

    def __init__(self, store_id: str, message: str) -> None:
        self.store_id = store_id
        super().__init__(message)


class StateValidationError(StoreError, ValueError):
    """A write (patch, replace, hydrate, draft assignment) does not fit the store's state model.

    ``errors`` holds one dict per problem with ``loc`` (a tuple path from the state root), ``msg`` and
    ``type``, in pydantic's shape. Nothing was written: the store keeps the state it had.
    """

    def __init__(self, store_id: str, errors: Iterable[Mapping[str, Any]], *, what: str = "write") -> None:
        self.store_id = store_id
        self.errors: list[dict[str, Any]] = [
            {"loc": tuple(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors
        ]
        lines = [f"{_format_loc(e['loc'])}: {e['msg']} [type={e['type']}]" for e in self.errors]
        detail = "; ".join(lines) or "invalid state"
        super().__init__(f"store {store_id!r}: invalid {what}: {detail} (the state was left unchanged)")

    @property
    def fields(self) -> list[str]:
        """Dotted paths of the offending fields, e.g. ``["items[0].title"]``."""
        return [_format_loc(e["loc"]) for e in self.errors]


class HydrationError(StateValidationError):
    """``app.hydrate(data)`` found invalid data; no store was changed. ``by_store`` maps id -> errors."""

    def __init__(self, by_store: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        self.by_store: dict[str, list[dict[str, Any]]] = {}
        merged: list[dict[str, Any]] = []
        for sid, errs in by_store.items():
            copied = [dict(e) for e in errs]
            self.by_store[sid] = copied
            merged.extend(copied)
        first = next(iter(self.by_store), "?")
        super().__init__(first, merged, what="hydration data")
        if len(self.by_store) > 1:
            self.args = (f"{self.args[0]} (also invalid: {', '.join(list(self.by_store)[1:])})",)


class StateMutationError(StoreError, TypeError):
    """State snapshots are read-only, and drafts die with their patch: write through ``store.patch``."""


class TransactionConflictError(StoreError, RuntimeError):
    """A ``batch()`` (or atomic action) could not commit: while it was open, another task committed to
    the same store and wrote a path the batch also wrote. Nothing of the batch was applied; the other
    task's write stays. ``paths`` lists the contested paths (``()`` is the whole state)."""

    def __init__(self, store_id: str, paths: Iterable[tuple[str | int, ...]], detail: str = "") -> None:
        self.store_id = store_id
        self.paths: tuple[tuple[str | int, ...], ...] = tuple(sorted(set(paths), key=repr))
        shown = ", ".join(".".join(str(p) for p in path) or "<whole state>" for path in self.paths)
        super().__init__(
            f"store {store_id!r}: the batch was not committed: another task committed {shown or 'a write'} "
            f"while it was open{detail}; none of the batch's writes were applied and the other task's "
            f"write stays. Retry the work, or write those fields outside the batch"
        )


class StoreDisposedError(StoreError, RuntimeError):
    """The store (or its app) was disposed; get a fresh one with ``app.use(StoreClass)``."""


class ActionError(StoreError):
    """An action cannot run here (e.g. an async action called with no running event loop)."""


class PluginError(StoreError):
    """A plugin raised while it was applied to a store; ``__cause__`` is the plugin's exception."""


class LoopBindingError(StoreError, RuntimeError):
    """The app is bound to another event loop, or to none yet when a thread-safe call needs one."""


class SyncedCollectionError(StoreError, ValueError):
    """A :class:`~quvel_store.SyncedCollection` was set up wrongly (a state field it needs is missing, a
    retry policy is out of range) or was given an item it cannot fold (no ``model`` in a model event)."""


class ResyncFailed(StoreError):
    """One reload of a synced collection failed; ``__cause__`` is the loader's error. ``attempt`` counts
    the failures since the last success; ``retry_in`` is the delay before the next attempt, or ``None``
    when the error is not transient and the collection waits for the next (re)subscription or an explicit
    ``resync()``. Reported on ``store.errors``; the store's sync status says the same."""

    def __init__(self, message: str, *, attempt: int, retry_in: float | None) -> None:
        self.attempt = attempt
        self.retry_in = retry_in
        super().__init__(message)


class TestKitError(StoreError, TypeError):
    """The testing kit was given something it cannot use (a wrong argument type, a name that is no
    getter or action of the store): failing here beats a test that silently checks the wrong thing."""

    __test__ = False  # not a pytest test class


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
