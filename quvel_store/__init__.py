"""quvel_store: Pinia-style typed stores (pydantic state, getters, actions) with an injected container.

```python
from quvel_store import Store, getter, action, create_app
```
"""

from quvel_store._actions import ActionCall, AsyncAction, Concurrency, SyncAction, action
from quvel_store._app import App, Scope, create_app
from quvel_store._events import ActionEvent, ActionPhase, MutationEvent, MutationKind, StoreErrorEvent
from quvel_store._getters import Getter, getter
from quvel_store._plugins import Plugin, PluginContext
from quvel_store._select import Selection
from quvel_store._store import Store
from quvel_store.container import (
    ApiService,
    Config,
    I18nService,
    ServiceContainer,
    TaskService,
    ValidationService,
)
from quvel_store.errors import (
    ActionError,
    HydrationError,
    InvalidStoreKeyError,
    LoopBindingError,
    PluginError,
    QuvelError,
    ResyncFailed,
    SnapshotError,
    StateMutationError,
    StateValidationError,
    StoreArgumentError,
    StoreDefinitionError,
    StoreDisposedError,
    StoreError,
    SyncedCollectionError,
    TransactionConflictError,
)
from quvel_store.synced import (
    ModelEvent,
    ResyncPolicy,
    SyncedCollection,
    SyncInfo,
    SyncStatus,
    model_event_names,
)
from quvel_store.ws import WebSockets, use_websockets

__all__ = [
    "ActionCall",
    "ActionError",
    "ActionEvent",
    "ActionPhase",
    "ApiService",
    "App",
    "AsyncAction",
    "Concurrency",
    "Config",
    "Getter",
    "HydrationError",
    "I18nService",
    "InvalidStoreKeyError",
    "LoopBindingError",
    "ModelEvent",
    "MutationEvent",
    "MutationKind",
    "Plugin",
    "PluginContext",
    "PluginError",
    "QuvelError",
    "ResyncFailed",
    "ResyncPolicy",
    "Scope",
    "Selection",
    "ServiceContainer",
    "SnapshotError",
    "StateMutationError",
    "StateValidationError",
    "Store",
    "StoreArgumentError",
    "StoreDefinitionError",
    "StoreDisposedError",
    "StoreError",
    "StoreErrorEvent",
    "SyncAction",
    "SyncInfo",
    "SyncStatus",
    "SyncedCollection",
    "SyncedCollectionError",
    "TaskService",
    "TransactionConflictError",
    "ValidationService",
    "WebSockets",
    "action",
    "create_app",
    "getter",
    "model_event_names",
    "use_websockets",
]
