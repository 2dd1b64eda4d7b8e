"""The names of the Store API: a store subclass's getters and actions, and plugins, may not take them."""

from __future__ import annotations

__all__ = ["RESERVED"]

# Names a store subclass, a getter, an action or a plugin may not take over.
RESERVED: frozenset[str] = frozenset(
    {
        "app",
        "container",
        "key",
        "store_id",
        "state",
        "state_model",
        "options",
        "errors",
        "disposed",
        "patch",
        "replace",
        "reset",
        "batch",
        "observe",
        "select",
        "subscribe",
        "on_action",
        "connect",
        "dispose",
        "on_init",
        "on_dispose",
        "initial_state",
        "id",
    }
)
