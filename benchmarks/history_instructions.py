"""History's cost per commit in CPU instructions (deterministic, unlike timings on a shared machine).

Run under callgrind, which writes one count per phase (a dump before each ``time.sleep(0)`` marker):

    valgrind --tool=callgrind --dump-before=time_sleep --callgrind-out-file=/tmp/hi python \\
        benchmarks/history_instructions.py
    grep -h summary: /tmp/hi.2 /tmp/hi.4 /tmp/hi.6 /tmp/hi.8

The four counts are: actions without History, actions with History, patches (10 subscribers) without,
patches with; 10,000 commits each while the history fills. Overhead = with / without. Without valgrind
it just runs the workloads (a smoke test of this file).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from quvel_store import App, Store, action, create_app
from quvel_store.history import History

N = 10_000


class Counted(BaseModel):
    count: int = 0


class ActionStore(Store[Counted]):
    id = "actions"

    @action
    def bump(self, i: int) -> None:
        self.patch({"count": i})


class PatchStore(Store[Counted]):
    id = "patches"


def _setup(with_history: bool, actions: bool) -> tuple[App, Callable[[int], Any]]:
    app = create_app(plugins=[History(limit=2 * N)] if with_history else [])
    if actions:
        counter = app.use(ActionStore)
        counter.subscribe(lambda _e, _s: None)
        return app, counter.bump
    store = app.use(PatchStore)
    for _ in range(10):
        store.subscribe(lambda _e, _s: None)
    return app, lambda i: store.patch({"count": i})


def main() -> None:
    for actions in (True, False):
        for with_history in (False, True):
            app, step = _setup(with_history, actions)
            for i in range(100):  # warm up
                step(i)
            gc.collect()
            time.sleep(0)  # marker: the phase starts
            for i in range(N):
                step(i)
            time.sleep(0)  # marker: the phase ends
            app.dispose()


if __name__ == "__main__":
    main()
