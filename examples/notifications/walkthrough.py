"""The notification recipe, end to end: a user's store follows their private channel, the back end
notifies them, they mark notifications read, the server goes down while notifications keep being sent,
and the store catches up when its channel is subscribed again. Exits 1 if any notification was lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from quvel.demo import DemoStack, demo_stack, wait_until
from quvel.demo.notifications import NotificationStore

INVOICE = "App\\Notifications\\InvoicePaid"

#: Takes the WebSocket server down, awaits ``while_down()``, and brings the server back.
Outage = Callable[[Callable[[], Awaitable[Any]]], Awaitable[None]]


async def walkthrough(stack: DemoStack, outage: Outage, *, log: Callable[[str], None] = print) -> int:
    backend = stack.backend
    ann = await stack.client("Ann")
    store = ann.app.use(NotificationStore)
    await store.subscribe_to_socket(ann.user.id)
    await wait_until(store, lambda s: s.loads >= 1)  # subscribed, then the list was loaded once
    log(f"following {store.state.channel}")

    for n in range(3):
        await backend.notify(
            ann.user.id, INVOICE, {"title": "Invoice paid", "body": f"Invoice #{n} was paid."}
        )
    await wait_until(store, lambda s: len(s.notifications) == 3)
    body = store.latest.data["body"] if store.latest else "-"
    log(f"3 notifications arrived live; unread {store.unread_count}; latest: {body}")

    await store.mark_read(store.state.notifications[-1].id)
    log(f"marked the oldest read through the API: unread {store.unread_count}")

    async def notify_while_down() -> None:
        record = await backend.notify(
            ann.user.id, INVOICE, {"title": "Sent while down", "body": "No one listened."}
        )
        log(f"server down: notification stored, broadcast {'sent' if record.broadcast else 'failed'}")

    loads_before = store.state.loads
    await outage(notify_while_down)
    await backend.notify(ann.user.id, INVOICE, {"title": "After the restart", "body": "Live again."})
    sent = {r.id for r in backend.sent_to(ann.user.id)}
    state = await wait_until(
        store, lambda s: s.loads > loads_before and sent <= {n.id for n in s.notifications}, timeout=30
    )
    log(f"re-subscribed and reloaded: {len(state.notifications)} in store")

    await store.mark_all_read()
    log(f"marked all read: unread {store.unread_count}")

    lost = sent - {n.id for n in store.state.notifications}
    log(f"sent {len(sent)}, in store {len(sent) - len(lost)}, lost {len(lost)}")
    return 1 if lost else 0


async def run() -> int:
    async with demo_stack() as stack:
        server = stack.server
        assert server is not None

        async def outage(while_down: Callable[[], Awaitable[Any]]) -> None:
            await server.stop()  # clients are closed with 4200 and keep retrying
            await while_down()
            await server.start()  # same port: they reconnect, re-authorise and re-subscribe

        return await walkthrough(stack, outage)


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
