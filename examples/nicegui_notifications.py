"""The notification recipe as a web page (NiceGUI, which is Vue + Quasar in the browser): each browser tab
signs in as a user (``/?user=Ben``) and gets its own quvel app, bound to the page with
:func:`quvel_ui.nicegui.bind`: the notification list with "mark as read", an unread badge, the connection
status, who is here (a presence channel) and a chat box that whispers "typing" to the others.

    python examples/nicegui_notifications.py                  # embedded server + simulated back end
    # or against a running `quvel serve --enable-client-events` and a back end (quvel.demo.DemoBackend):
    python examples/nicegui_notifications.py --ws-url ws://127.0.0.1:6001/app/app-key \\
        --api-url http://127.0.0.1:8001

then open http://127.0.0.1:8080/?user=Ann and, in another window, /?user=Ben.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from nicegui import app as nicegui_app
from nicegui import ui

from quvel.demo import DEFAULT_USERS, DemoBackend, DemoUser, demo_stack
from quvel.demo.chat import RoomState, RoomStore
from quvel.demo.notifications import Notification, NotificationState, NotificationStore
from quvel_store import ServiceContainer, create_app
from quvel_ui.nicegui import bind, release_with_client

ROOM = "lobby"


@dataclass
class Site:
    """Where the page's clients connect; filled at startup when the demo stack runs in this process."""

    ws_url: str | None = None
    api_url: str | None = None
    tenant_id: str = "acme"
    backend: DemoBackend | None = None
    users: dict[str, DemoUser] = field(default_factory=lambda: {u.name.lower(): u for u in DEFAULT_USERS})


def unread(state: NotificationState) -> int:
    return sum(not n.read for n in state.notifications)


def member_names(state: RoomState) -> list[str]:
    return sorted(m.name for m in state.members)


def add_page(site: Site) -> None:
    @ui.page("/")
    async def index(user: str = "Ann") -> None:
        who = site.users.get(user.lower())
        if who is None or site.ws_url is None:
            ui.label(f"unknown user {user!r}; try ?user=Ann, Ben or Cleo").classes("text-negative")
            return
        # One container and one quvel app per browser client, made here on NiceGUI's loop.
        container = ServiceContainer(
            config={"tenant_id": site.tenant_id, "api_url": site.api_url, "ws_url": site.ws_url}
        )
        container.api.set_token(who.token)
        await container.boot()
        quvel = create_app(container=container)

        async def close() -> None:
            quvel.dispose()
            await container.shutdown()

        release_with_client(close)
        notes = quvel.use(NotificationStore)
        room = quvel.use(RoomStore, key=ROOM)

        with ui.header().classes("items-center gap-4"):
            ui.label(f"quvel · {who.name}").classes("text-h6")
            with ui.button(icon="notifications").props("flat round color=white"):
                badge = ui.badge("0", color="red").props("floating").classes("unread-badge")
            bind(badge, notes.select(unread), lambda n: badge.set_text(str(n)))
            bind(badge, notes.select(unread), lambda n: badge.set_visibility(n > 0))
            status = ui.label().classes("connection-status")
            bind(status, container.ws.connection_statuses, lambda s: status.set_text(f"● {s}"))

        with ui.row().classes("w-full no-wrap items-start gap-6"):
            with ui.card().classes("w-1/2"):
                with ui.row().classes("w-full items-center"):
                    ui.label("Notifications").classes("text-h6")
                    ui.space()

                    async def mark_all() -> None:
                        await notes.mark_all_read()

                    ui.button("Mark all read", on_click=mark_all).props("flat")
                    if site.backend is not None:
                        backend = site.backend

                        async def send_one() -> None:
                            await backend.notify_random([who.id])

                        ui.button("Send me one", on_click=send_one).props("flat")

                @ui.refreshable
                def notification_list(items: list[Notification]) -> None:
                    if not items:
                        ui.label("Nothing yet.").classes("text-grey")
                    for n in items:
                        with ui.row().classes("w-full items-center notification"):
                            ui.icon("circle", color="grey" if n.read else "red", size="xs")
                            ui.label(n.title).classes("text-bold" if not n.read else "text-grey")
                            ui.label(str(n.data.get("body", ""))).classes("text-grey")
                            ui.space()
                            if not n.read:

                                async def mark(notification_id: str = n.id) -> None:
                                    await notes.mark_read(notification_id)

                                ui.button("mark as read", on_click=mark).props("flat dense")

                column = ui.column().classes("w-full")
                with column:
                    notification_list([])
                bind(column, notes.select(lambda s: s.notifications), notification_list.refresh)

            with ui.card().classes("w-1/2"):
                ui.label("Lobby").classes("text-h6")
                here = ui.label().classes("presence")
                bind(
                    here, room.select(member_names), lambda names: here.set_text("here: " + ", ".join(names))
                )

                @ui.refreshable
                def messages(lines: list[str]) -> None:
                    for line in lines[-8:]:
                        ui.label(line).classes("message")

                log = ui.column().classes("gap-0")
                with log:
                    messages([])
                bind(
                    log,
                    room.select(lambda s: [f"{m.user.name}: {m.text}" for m in s.messages]),
                    messages.refresh,
                )
                typing = ui.label().classes("typing text-italic text-grey")
                bind(
                    typing,
                    room.select(lambda s: [n for n in s.typing if n != who.name]),
                    lambda names: typing.set_text(f"{', '.join(names)} typing…" if names else ""),
                )

                def whisper(event: Any) -> None:
                    if room.state.members:  # subscribed: whispers go out (never queued while offline)
                        room.set_typing(who.name, bool(event.value))

                async def send() -> None:
                    text = box.value.strip()
                    if text:
                        box.value = ""
                        await room.send(text)

                box = ui.input(placeholder="Say something", on_change=whisper).classes("w-full chat-input")
                box.on("keydown.enter", send)

        await notes.subscribe_to_socket(who.id)
        await room.join(ROOM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ws-url", default=None, help="a running server; default: an embedded one")
    parser.add_argument("--api-url", default=None, help="the back end (with --ws-url)")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument(
        "--reconnect-timeout", type=float, default=3.0, help="how long a closed tab keeps its stores"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    site = Site(ws_url=args.ws_url, api_url=args.api_url, tenant_id=args.tenant)
    if args.ws_url is None:
        stack_exit = contextlib.AsyncExitStack()

        async def start_stack() -> None:
            stack = await stack_exit.enter_async_context(demo_stack(tenant_id=args.tenant))
            site.ws_url, site.api_url, site.backend = stack.ws_url, stack.backend.url, stack.backend

        nicegui_app.on_startup(start_stack)
        nicegui_app.on_shutdown(stack_exit.aclose)
    elif args.api_url is None:
        parser.error("--ws-url needs --api-url (the back end that authorises channels)")
    add_page(site)
    ui.run(
        host=args.host,
        port=args.port,
        title="quvel notifications",
        reload=False,
        show=False,
        reconnect_timeout=args.reconnect_timeout,
        binding_refresh_interval=None,  # nothing here polls: the store pushes every change
        # quvel_ws needs the standard asyncio loop: on uvloop its transports fail an isinstance check.
        loop="asyncio",
    )


if __name__ == "__main__":
    main()
