"""How ``quvel demo`` shows itself: a ``rich`` live view in a terminal, plain lines for logs and CI."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class NotificationLine:
    title: str
    body: str
    read: bool


@dataclass(frozen=True)
class DemoSnapshot:
    """Everything the view shows at one moment (the orchestrator builds it from the stores)."""

    elapsed: float
    duration: float
    connection: str
    server: str
    user: str
    room: str
    tenant: str = "acme"
    notifications: tuple[NotificationLine, ...] = ()
    unread: int = 0
    total: int = 0
    sent: int = 0
    members: tuple[str, ...] = ()
    activity: tuple[str, ...] = ()
    typing: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    reconnections: int = 0
    events: Mapping[str, int] = field(default_factory=dict)
    log: tuple[str, ...] = ()
    #: The notification list's sync status (``synced``, ``resyncing`` or ``stale``: "catching up").
    sync: str = "synced"
    #: The shared task board (model broadcasting): one line per task, and its sync status.
    tasks: tuple[str, ...] = ()
    tasks_sync: str = "synced"


@dataclass(frozen=True)
class DemoSummary:
    """The outcome: what was sent against what the stores hold, and what was received."""

    duration: float
    sent: int
    in_store: int
    lost: tuple[str, ...]
    unread: int
    reconnections: int
    restarted: bool
    members: tuple[str, ...]
    messages: int
    events: Mapping[str, int]
    broadcast_failures: int
    failures: tuple[str, ...]
    #: The saved state (``--state-dir``): what the run started from and what it leaves for the next one.
    state_dir: str | None = None
    restored: int = 0
    restored_read: int = 0
    restored_still_read: int = 0
    saved: int = 0
    saved_read: int = 0
    #: Chat messages said in the room (the newest the room keeps), and those the viewer's store lacks.
    messages_said: int = 0
    messages_lost: tuple[str, ...] = ()
    #: API requests refused (503) during the outage injected after the restart.
    api_refused: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and not self.messages_lost
            and not self.failures
            and self.sent > 0
            and (not self.restarted or self.reconnections >= 1)
        )

    def lines(self) -> list[str]:
        events = ", ".join(f"{k} {v}" for k, v in sorted(self.events.items()))
        verdict = "OK" if self.ok else "FAILED"
        caught_up = ""
        if self.broadcast_failures:
            plural = "s" if self.broadcast_failures != 1 else ""
            caught_up = (
                f" ({self.broadcast_failures} broadcast{plural} failed while the server was down,"
                f" caught up by reload)"
            )
        out = [
            f"summary: {verdict} after {self.duration:.1f}s",
            f"notifications: sent {self.sent}, in store {self.in_store}, lost {len(self.lost)}{caught_up}",
            f"chat messages: said {self.messages_said}, in store {self.messages}, "
            f"lost {len(self.messages_lost)}",
            f"unread: {self.unread}",
            f"server restarted: {'yes' if self.restarted else 'no'}; reconnections: {self.reconnections}",
            f"room members at the end: {', '.join(self.members) or '(none)'}",
            f"events received: {sum(self.events.values())} ({events})",
        ]
        if self.state_dir is not None:
            kept = "all still read" if self.restored_still_read == self.restored_read else "some lost"
            restored = (
                f"restored {self.restored} from the last run, {self.restored_read} read ({kept})"
                if self.restored
                else "nothing restored (first run)"
            )
            out.append(
                f"read state: {restored}; saved {self.saved} ({self.saved_read} read) to {self.state_dir}"
            )
        if self.api_refused:
            plural = "s" if self.api_refused != 1 else ""
            out.append(
                f"API down after the restart: {self.api_refused} request{plural} refused (503); the stores "
                "retried their reloads until in sync"
            )
        out += [f"lost notification: {n}" for n in self.lost]
        out += [f"lost chat message: {m}" for m in self.messages_lost]
        out += [f"failure: {f}" for f in self.failures]
        if self.sent == 0:
            out.append("failure: no notification was sent; run longer (--duration) or busier (--interval)")
        if self.restarted and self.reconnections == 0:
            out.append("failure: the client had not reconnected after the server restart when the run ended")
        return out


class DemoView(Protocol):
    def start(self) -> None: ...
    def event(self, snapshot: DemoSnapshot, line: str) -> None: ...
    def update(self, snapshot: DemoSnapshot) -> None: ...
    def stop(self) -> None: ...
    def summary(self, summary: DemoSummary) -> None: ...


class PlainView:
    """One line per event and a status line per ``status_every`` seconds, for logs and CI."""

    def __init__(self, out: TextIO | None = None, status_every: float = 1.0) -> None:
        self._out = out or sys.stdout
        self._status_every = status_every
        self._next_status = 0.0

    def start(self) -> None:
        self._print("quvel demo: embedded server, simulated Laravel back end, notification and chat stores")

    def event(self, snapshot: DemoSnapshot, line: str) -> None:
        self._print(f"[{snapshot.elapsed:6.2f}s] {line}")

    def update(self, snapshot: DemoSnapshot) -> None:
        if snapshot.elapsed < self._next_status:
            return
        self._next_status = snapshot.elapsed + self._status_every
        self._print(
            f"[{snapshot.elapsed:6.2f}s] status: {snapshot.connection}, server {snapshot.server}, "
            f"unread {snapshot.unread}/{snapshot.total} (sent {snapshot.sent}), "
            f"members {','.join(snapshot.members) or '-'}, events {sum(snapshot.events.values())}"
        )

    def stop(self) -> None:
        pass

    def summary(self, summary: DemoSummary) -> None:
        for line in summary.lines():
            self._print(line)

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)


class LiveView:
    """A ``rich.live`` screen: notifications and unread count, room, connection, event counters, log."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._live = Live(console=self._console, auto_refresh=True, refresh_per_second=8, transient=False)

    def start(self) -> None:
        self._live.start()

    def event(self, snapshot: DemoSnapshot, line: str) -> None:
        self.update(snapshot)

    def update(self, snapshot: DemoSnapshot) -> None:
        self._live.update(render(snapshot))

    def stop(self) -> None:
        self._live.stop()

    def summary(self, summary: DemoSummary) -> None:
        style = "bold green" if summary.ok else "bold red"
        lines = summary.lines()
        body = Text("\n".join(lines[1:]))
        self._console.print(Panel(body, title=Text(lines[0], style=style), border_style=style))


def _state_style(state: str) -> str:
    return {
        "connected": "green",
        "connecting": "yellow",
        "unavailable": "red",
        "failed": "red",
        "up": "green",
        "restarting": "yellow",
        "down": "red",
    }.get(state, "white")


def _catching_up(status: str) -> str:
    return "" if status == "synced" else f" · catching up ({status})"


def render(s: DemoSnapshot) -> Group:
    """The live screen for one snapshot."""
    header = Table.grid(expand=True)
    header.add_column()
    header.add_column(justify="right")
    header.add_row(
        Text.assemble(
            ("quvel demo", "bold"),
            f"  {s.user} @ tenant {s.tenant}  ·  ",
            ("ws ", "dim"),
            (s.connection, _state_style(s.connection)),
            ("  server ", "dim"),
            (s.server, _state_style(s.server)),
            ("  reconnections ", "dim"),
            str(s.reconnections),
        ),
        Text(f"{s.elapsed:5.1f}s / {s.duration:.0f}s", style="dim"),
    )

    notes = Table(expand=True, show_header=False, box=None, padding=(0, 1))
    notes.add_column(width=2)
    notes.add_column(ratio=1)
    for n in s.notifications:
        notes.add_row(
            "○" if n.read else Text("●", style="bold cyan"),
            Text.assemble((n.title, "dim" if n.read else "bold"), "  ", (n.body, "dim")),
        )
    if not s.notifications:
        notes.add_row("", Text("waiting for notifications...", style="dim"))
    note_title = (
        f"Notifications · unread {s.unread} · in store {s.total} · sent {s.sent}{_catching_up(s.sync)}"
    )

    room = Table(expand=True, show_header=False, box=None, padding=(0, 1))
    room.add_column(ratio=1)
    room.add_row(Text.assemble(("here: ", "dim"), ", ".join(s.members) or "-"))
    if s.activity:
        room.add_row(Text(" · ".join(s.activity[-2:]), style="dim"))
    for line in s.messages:
        room.add_row(line)
    if s.typing:
        room.add_row(Text(f"{', '.join(s.typing)} typing...", style="italic dim"))
    room.add_row(Text.assemble(("tasks (App.Models.Task)", "bold"), (_catching_up(s.tasks_sync), "yellow")))
    for line in s.tasks[-5:] or ("-",):
        room.add_row(Text(line, style="dim" if line.startswith("[x]") else ""))

    body = Table.grid(expand=True)
    body.add_column(ratio=3)
    body.add_column(ratio=2)
    body.add_row(
        Panel(notes, title=note_title, border_style="cyan"),
        Panel(room, title=f"presence-room.{s.room}", border_style="magenta"),
    )

    counters = "  ".join(f"{k} {v}" for k, v in sorted(s.events.items())) or "-"
    log = Text("\n".join(s.log[-6:]) or "-", style="dim")
    footer = Panel(Group(Text.assemble(("events received: ", "dim"), counters), log), title="events")
    return Group(header, body, footer)
