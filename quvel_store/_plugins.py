"""Plugins: functions applied to every store of an app (existing ones and later ones)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from quvel_store._actions import Action
from quvel_store.errors import PluginError

if TYPE_CHECKING:
    from quvel_store._app import App
    from quvel_store._store import Store
    from quvel_store.container import ServiceContainer

__all__ = ["Plugin", "PluginContext"]


@dataclass(frozen=True)
class PluginContext:
    """What a plugin receives for each store: the app, the store, its custom options, the container."""

    app: App
    store: Store[Any]
    options: Mapping[str, Any]
    container: ServiceContainer

    @property
    def actions(self) -> tuple[str, ...]:
        """Names of the store's actions."""
        names = []
        for klass in type(self.store).__mro__:
            for name, value in vars(klass).items():
                if isinstance(value, Action) and name not in names:
                    names.append(name)
        return tuple(names)

    def wrap_action(self, name: str, wrapper: Callable[..., Any]) -> None:
        """Replace action ``name`` on this store by ``wrapper(original, *args, **kwargs)``.

        ``original`` is the action as it was (hooks, stream and stubs still apply inside it).
        """
        if name not in self.actions:
            raise PluginError(f"store {self.store.store_id!r} has no action {name!r} to wrap")
        if not callable(wrapper):
            raise PluginError(
                f"wrap_action({name!r}, ...) needs a function wrapper(original, *args, **kwargs), "
                f"got {type(wrapper).__name__}"
            )
        original = getattr(self.store, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return wrapper(original, *args, **kwargs)

        wrapped.__name__ = name
        wrapped.__wrapped__ = original  # type: ignore[attr-defined]
        self.store.__dict__[name] = wrapped

    def add_cleanup(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` when the store is disposed."""
        self.store.add_cleanup(fn)


class Plugin(Protocol):
    """``plugin(context)`` may return a mapping of attributes to set on the store."""

    def __call__(self, context: PluginContext, /) -> Mapping[str, Any] | None: ...
