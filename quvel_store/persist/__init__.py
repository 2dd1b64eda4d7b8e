"""Stores that outlive the process: ``persist = Persist(...)`` on a store class, and the storages.

```python
from quvel_store.persist import Persist, SQLiteStorage, JSONFileStorage
```
"""

from quvel_store.persist._persist import (
    Persist,
    Persistence,
    PersistError,
    PersistVersionError,
    StoredDataError,
)
from quvel_store.persist._storage import JSONFileStorage, MemoryStorage, SQLiteStorage, Storage

__all__ = [
    "JSONFileStorage",
    "MemoryStorage",
    "Persist",
    "PersistError",
    "PersistVersionError",
    "Persistence",
    "SQLiteStorage",
    "Storage",
    "StoredDataError",
]
