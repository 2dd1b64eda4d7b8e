"""NiceGUI binding: elements follow a store selection, per browser client or shared by all of them.

```python
@ui.page("/")
async def index() -> None:
    quvel = create_app(container=...)  # per client: made on NiceGUI's loop, for this browser only
    release_with_client(quvel.dispose)  # its stores and channels go when the client does
    store = quvel.use(NotificationStore)
    badge = ui.badge()
    bind(badge, store.select(lambda s: sum(not n.read for n in s.notifications)), "text")
    ui.button("Mark all read", on_click=store.mark_all_read)
```

A binding lives as long as its element's client (a browser tab): it ends when NiceGUI deletes the client,
and a value that finds its element deleted (a refreshed ``@ui.refreshable``) ends it too. A store shared
by every client (one app made at startup, on the same loop) is bound the same way. NiceGUI runs its own
loop (uvicorn's): create quvel apps and containers inside pages or startup handlers so they bind to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from nicegui import context
from nicegui.element import Element
from reactivex import Observable

from quvel_ui._binding import Binding, BindingError, Target, describe, resolve_target

__all__ = ["bind", "release_with_client"]

T = TypeVar("T")


def bind(element: Element, source: Observable[T], target: Target[T]) -> Binding[T]:
    """Feed every value of ``source`` (``store.select(fn)``, ``store.observe()``, any Observable) to
    ``target``: a function called with the value, or the name of an attribute of ``element`` that is
    assigned (``"text"`` of a label or badge, ``"value"``, ``"visible"``); NiceGUI sends the change to the
    browser. The current value is applied at once when the source replays one."""
    try:
        client = element.client
    except RuntimeError:
        raise BindingError(f"{type(element).__name__}'s browser client is gone; nothing to bind") from None
    binding = Binding(
        source,
        resolve_target(element, target),
        alive=lambda: not element.is_deleted and not client.is_deleted,
        name=describe(element, target),
    )
    if not binding.disposed:
        client.on_delete(binding.dispose)
    return binding


def release_with_client(cleanup: Callable[[], object | Awaitable[object]]) -> None:
    """Run ``cleanup`` (sync or async: ``app.dispose``, ``container.shutdown``) when the current browser
    client is deleted, which NiceGUI does once its tab is closed and did not reconnect in time. Call it in
    a page function, where per-client stores are made."""
    context.client.on_delete(cleanup)
