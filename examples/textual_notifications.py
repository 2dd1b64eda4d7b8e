"""The notification recipe as a terminal app (Textual): the list, an unread badge, mark-as-read and a
connection-status light, all bound to the store with :func:`quvel_ui.textual.bind`.

    python examples/textual_notifications.py                 # embedded server + simulated back end
    quvel serve --port 6001 &                                # or against a running `quvel serve`:
    python examples/textual_notifications.py --ws-url ws://127.0.0.1:6001/app/app-key \\
        --http-url http://127.0.0.1:6001

Keys: up/down choose, r marks the chosen notification read, a marks all read, q quits. A notification
arrives every few seconds (``--notify-every 0`` turns that off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from quvel.demo import DemoClient, DemoStack, PusherCredentials, demo_stack
from quvel.demo.notifications import Notification, NotificationState, NotificationStore
from quvel_ui.textual import bind, share_loop
from quvel_ws import ConnectionStatus


class UnreadBadge(Static):
    """The unread count; ``count`` is a reactive attribute the store feeds."""

    count: reactive[int] = reactive(0)

    def watch_count(self, count: int) -> None:
        self.update(f" {count} unread ")
        self.set_class(count > 0, "has-unread")


class ConnectionLight(Static):
    status: reactive[str] = reactive("")

    def watch_status(self, status: str) -> None:
        self.update(f" ● {status or 'starting'} ")
        self.set_class(status == ConnectionStatus.CONNECTED, "connected")


def _row(n: Notification) -> Option:
    mark = "  " if n.read else "● "
    body = str(n.data.get("body", ""))
    style = "dim" if n.read else "bold"
    return Option(Text.assemble((mark, "yellow"), (n.title, style), ("  " + body, "dim")), id=n.id)


class NotificationsApp(App[None]):
    """One user's notifications. The quvel app is created in ``on_mount``, on Textual's loop."""

    TITLE = "quvel notifications"
    CSS = """
    #bar { height: 1; }
    UnreadBadge { width: auto; background: $panel; }
    UnreadBadge.has-unread { background: $error; color: $text; text-style: bold; }
    ConnectionLight { width: auto; color: $warning; }
    ConnectionLight.connected { color: $success; }
    #channel { width: 1fr; color: $text-muted; }
    OptionList { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "mark_read", "Mark read"),
        Binding("a", "mark_all_read", "Mark all read"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, stack: DemoStack, user: str = "Ann") -> None:
        super().__init__()
        self.stack = stack
        self.user = user
        self.client: DemoClient | None = None
        self.store: NotificationStore | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="bar"):
            yield UnreadBadge()
            yield ConnectionLight()
            yield Static(id="channel")
        yield OptionList(id="list")
        yield Footer()

    async def on_mount(self) -> None:
        self.client = client = await self.stack.client(self.user)
        share_loop(client.app)
        self.store = store = client.app.use(NotificationStore)
        bind(self.query_one(UnreadBadge), store.select(_unread), "count")
        bind(self.query_one(ConnectionLight), client.ws.connection_statuses, "status")
        bind(self.query_one("#list", OptionList), store.select(lambda s: s.notifications), self._show)
        channel = self.query_one("#channel", Static)
        bind(channel, store.select(lambda s: s.channel), lambda name: channel.update(f" {name or ''}"))
        self.sub_title = client.user.name
        await store.subscribe_to_socket(client.user.id)

    def _show(self, notifications: list[Notification]) -> None:
        options = self.query_one("#list", OptionList)
        chosen = options.highlighted
        options.clear_options()
        options.add_options([_row(n) for n in notifications])
        if notifications:
            options.highlighted = min(chosen or 0, len(notifications) - 1)

    async def action_mark_read(self) -> None:
        options = self.query_one("#list", OptionList)
        if self.store is None or options.highlighted is None:
            return
        chosen = options.get_option_at_index(options.highlighted).id
        if chosen is not None:
            await self.store.mark_read(chosen)

    async def action_mark_all_read(self) -> None:
        if self.store is not None:
            await self.store.mark_all_read()

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.stack.close_client(self.client)


def _unread(state: NotificationState) -> int:
    return sum(not n.read for n in state.notifications)


async def run(args: argparse.Namespace) -> None:
    credentials = None
    if args.ws_url:
        credentials = PusherCredentials(args.http_url, args.app_id, args.key, args.secret)
    async with demo_stack(ws_url=args.ws_url, credentials=credentials) as stack:
        user = stack.user(args.user)

        async def notify_now_and_then() -> None:
            while args.notify_every > 0:
                await asyncio.sleep(args.notify_every)
                await stack.backend.notify_random([user.id])

        sender = asyncio.create_task(notify_now_and_then())
        try:
            await NotificationsApp(stack, user.name).run_async()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--user", default="Ann", help="Ann, Ben or Cleo")
    parser.add_argument(
        "--ws-url", default=None, help="a running server (quvel serve, Soketi); default: embedded"
    )
    parser.add_argument("--http-url", default="http://127.0.0.1:6001", help="that server's HTTP API")
    parser.add_argument("--app-id", default="1")
    parser.add_argument("--key", default="app-key")
    parser.add_argument("--secret", default="app-secret")
    parser.add_argument("--notify-every", type=float, default=4.0, metavar="S")
    logging.basicConfig(level=logging.CRITICAL)  # the terminal belongs to the app
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
