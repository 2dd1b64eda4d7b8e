"""Textual binding: a widget (or one of its reactive attributes) follows a store selection.

```python
class UnreadBadge(Static):
    count: reactive[int] = reactive(0)

    def on_mount(self) -> None:
        bind(self, store.select(lambda s: sum(not n.read for n in s.notifications)), "count")
```

The widget owns the subscription, like a Vue component its ``watch``: it ends when the widget is
unmounted (``remove()``, a screen popped, the app closing). Bind in ``on_mount`` (or later), when the
widget is attached and Textual's loop, which must also be the quvel app's loop, is running. Actions are
called straight from event handlers: ``await store.mark_read(id)`` in an ``async def on_...``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from reactivex import Observable
from textual.widget import Widget
from textual.worker import Worker

from quvel_store import App as StoreApp
from quvel_store import LoopBindingError
from quvel_ui._binding import Binding, BindingError, Target, describe, resolve_target

__all__ = ["bind", "share_loop"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


def bind(widget: Widget, source: Observable[T], target: Target[T]) -> Binding[T]:
    """Feed every value of ``source`` (a ``store.select(fn)``, ``store.observe()``, any Observable) to
    ``target``: a function called with the value, or the name of an attribute of ``widget`` (typically
    a ``reactive``) that is assigned. The current value is applied at once when the source replays one.

    Returns the :class:`~quvel_ui.Binding` (``dispose()`` ends it early). Raises :class:`BindingError`
    when the widget is not attached to a running app yet (bind in ``on_mount``, not ``__init__``)."""
    if not widget.is_attached:
        raise BindingError(
            f"{type(widget).__name__} is not mounted yet: bind in on_mount() (or later), so that the "
            "widget's lifetime can own the subscription"
        )
    binding = Binding(
        source,
        resolve_target(widget, target),
        alive=lambda: widget.is_attached,
        name=describe(widget, target),
    )
    if not binding.disposed:
        # Textual cancels a widget's workers when it is unmounted: that is the release hook. A widget
        # removed before the worker got its first turn is caught by the binding's own check instead,
        # at the next value (which is then not applied).

        async def hold() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                binding.dispose()

        worker: Worker[None] = widget.run_worker(
            hold, name=f"quvel binding {binding.name}", group="quvel-bindings"
        )
        logger.debug("binding %s held by %r", binding.name, worker)
    return binding


def share_loop(app: StoreApp) -> None:
    """Bind the quvel ``app`` to the running loop (Textual's), or raise :class:`LoopBindingError` when it
    already belongs to another open loop. Call it from ``on_mount`` before using the app's stores."""
    loop = asyncio.get_running_loop()
    if app.loop is not None and app.loop is not loop and not app.loop.is_closed():
        raise LoopBindingError(
            "this quvel app belongs to another event loop; create it (or its container) inside the "
            "Textual app, e.g. in on_mount, so both share Textual's loop"
        )
    app.bind_loop(loop)
