"""The service container (after QuVel's ``ServiceContainer``) and its built-in services.

``from quvel_store.container import ServiceContainer``; ``ServiceContainer()`` works with no arguments
(settings come from ``QUVEL_*`` environment variables) and creates built-in services on first use.
"""

from quvel_store.container._api import ApiService
from quvel_store.container._config import Config
from quvel_store.container._container import ContainerPhase, ServiceContainer
from quvel_store.container._i18n import I18nService
from quvel_store.container._laravel_env import LaravelBroadcasting, parse_dotenv
from quvel_store.container._task import Task, TaskConcurrency, TaskService, TaskSnapshot, TaskState
from quvel_store.container._validation import ROOT_FIELD, ErrorBag, ValidationService

__all__ = [
    "ROOT_FIELD",
    "ApiService",
    "Config",
    "ContainerPhase",
    "ErrorBag",
    "I18nService",
    "LaravelBroadcasting",
    "ServiceContainer",
    "Task",
    "TaskConcurrency",
    "TaskService",
    "TaskSnapshot",
    "TaskState",
    "ValidationService",
    "parse_dotenv",
]
