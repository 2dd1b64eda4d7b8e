"""A store used from another thread (a GUI toolkit's thread, a sync worker): the store lives on its
app's asyncio loop, the thread calls in with ``app.call_threadsafe(...)`` and gets state changes through
a thread-safe queue, which is how GUI toolkits want them (post to the GUI's own event queue).

``python examples/threaded.py``: the back end sends notifications, a worker thread watches the count,
marks them all read through the store's async action and reads the result. Exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

from quvel.demo import demo_stack, wait_until
from quvel.demo.notifications import NotificationStore
from quvel_store import App


def worker(app: App, store: NotificationStore, counts: queue.Queue[int], results: list[str]) -> None:
    """Runs in its own thread: never touches the store directly, only through ``call_threadsafe``."""
    while (count := counts.get(timeout=10)) < 3:  # state changes, delivered in order
        results.append(f"worker thread saw {count} notification(s)")
    # An async action, run on the app's loop; the concurrent.futures.Future resolves with its result.
    app.call_threadsafe(store.mark_all_read).result(timeout=10)
    unread = app.call_threadsafe(lambda: store.unread_count).result(timeout=10)
    results.append(f"worker thread saw {count}, marked all read; unread now {unread}")


async def run() -> int:
    async with demo_stack() as stack:
        ann = await stack.client("Ann")
        store = ann.app.use(NotificationStore)
        await store.subscribe_to_socket(ann.user.id)
        await wait_until(store, lambda s: s.loads >= 1)

        counts: queue.Queue[int] = queue.Queue()
        # select() callbacks run on the loop thread; the queue hands the values to the worker.
        store.select(lambda s: len(s.notifications)).subscribe(counts.put)
        results: list[str] = []
        thread = threading.Thread(target=worker, args=(ann.app, store, counts, results), name="worker")
        thread.start()

        for n in range(3):
            await stack.backend.notify(
                ann.user.id, "App\\Notifications\\TaskAssigned", {"title": f"Task {n}"}
            )
        await asyncio.to_thread(thread.join, 30)  # the loop keeps running while the worker works
        for line in results:
            print(line)
        ok = not thread.is_alive() and store.unread_count == 0 and len(store.state.notifications) == 3
        return 0 if ok else 1


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
