"""The service container (after QuVel's ``ServiceContainer``) and its built-in services.

``from quvel_store.container import ServiceContainer``; ``ServiceContainer()`` works with no arguments
(settings come from ``QUVEL_*`` environment variables), built-in services are created on first use.
"""

from quvel_store.container._config import Config
from quvel_store.container._container import ContainerPhase, ServiceContainer

__all__ = ["Config", "ContainerPhase", "ServiceContainer"]
