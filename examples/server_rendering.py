"""Server rendering: every request gets its own app (never shared between requests or users), loads
what the page needs through the API, and renders JSON with ``app.snapshot()``; the browser-side app
hydrates from it and only then goes live. The request app's WebSocket service never connects.

``python examples/server_rendering.py`` renders three users' dashboards concurrently, hydrates one on
the "client", and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from quvel.demo import demo_stack, wait_until
from quvel.demo.notifications import NotificationStore
from quvel_store import create_app
from quvel_store.container import ServiceContainer


async def render_dashboard(settings: dict[str, Any], token: str, user_id: int) -> str:
    """One request: a fresh container and app, the user's data, a JSON page; everything closed after."""
    # server_rendering: the ws service hands out inert channels and never opens a socket.
    container = ServiceContainer(config={**settings, "server_rendering": True})
    async with container:
        container.api.set_token(token)
        app = create_app(container=container)
        try:
            notes = app.use(NotificationStore)
            await notes.load()
            # The same action the browser runs; on the server it subscribes nothing.
            await notes.subscribe_to_socket(user_id)
            page = {
                "title": f"{notes.unread_count} unread",
                "state": app.snapshot(),
                "ws_state": container.ws.current_state.value,
            }
        finally:
            app.dispose()
    return json.dumps(page)


async def run() -> int:
    async with demo_stack() as stack:
        backend = stack.backend
        for user_id, count in ((1, 3), (2, 1), (3, 2)):
            for n in range(count):
                await backend.notify(
                    user_id,
                    "App\\Notifications\\TaskAssigned",
                    {"title": "Task assigned", "body": f"Task {n} for user {user_id}"},
                )

        users = list(backend.users.values())
        settings = {"api_url": backend.url, "ws_url": stack.ws_url, "tenant_id": stack.tenant_id}
        pages = await asyncio.gather(*(render_dashboard(settings, u.token, u.id) for u in users))
        for user, page in zip(users, pages, strict=True):
            data: dict[str, Any] = json.loads(page)
            held = data["state"]["notifications"]["notifications"]
            print(f"{user.name}: {data['title']}, {len(held)} notifications rendered, ws {data['ws_state']}")
            assert {n["id"] for n in held} == {r.id for r in backend.sent_to(user.id)}, "state leaked"
            assert data["ws_state"] == "initialized", "a request app's WebSocket service started"

        # The browser: hydrate from the page, then go live. No request for the list is needed first.
        browser = await stack.client("Ann")
        notes = browser.app.use(NotificationStore)
        browser.app.hydrate(json.loads(pages[0])["state"])
        print(f"hydrated: {len(notes.state.notifications)} notifications before any network call")
        await notes.subscribe_to_socket(1)
        await backend.notify(
            1, "App\\Notifications\\TaskAssigned", {"title": "Live", "body": "After hydration"}
        )
        await wait_until(notes, lambda s: len(s.notifications) == 4)
        print(f"live: {len(notes.state.notifications)} notifications, unread {notes.unread_count}")
        return 0


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
