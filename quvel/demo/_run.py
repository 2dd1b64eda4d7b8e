"""The demo's orchestration: embedded server, simulated back end, three users' apps, a schedule of
notifications and chat, one server restart midway, and the check that nothing was lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reactivex.abc import DisposableBase

from quvel.demo._stack import DemoClient, DemoStack, demo_stack
from quvel.demo._view import DemoSnapshot, DemoSummary, DemoView, NotificationLine
from quvel.demo.backend import DEFAULT_USERS, DemoBackend, DemoUser
from quvel.demo.chat import MAX_MESSAGES, RoomStore
from quvel.demo.notifications import NotificationStore, PersistentNotificationStore
from quvel.demo.tasks import TaskStore
from quvel_store import ResyncFailed, StoreErrorEvent
from quvel_ws import NotConnected
from quvel_ws.server import PusherServer

logger = logging.getLogger(__name__)

TENANT = "acme"


@dataclass(frozen=True)
class DemoOptions:
    """What a run does: how long, how busy, whether and how long the server goes down midway."""

    duration: float = 20.0
    #: Seconds between two scheduled back-end jobs (they alternate notification / chat message).
    interval: float = 0.35
    restart: bool = True
    room: str = "lobby"
    #: How long the server stays down during the restart (the back end keeps notifying meanwhile).
    down_for: float = 1.0
    #: How long the app's API then answers 503 after the server is back (a deploy: the WebSocket server
    #: returns before the app), so the stores' reloads fail and are retried until in sync.
    api_down_for: float = 1.0
    #: How long to wait at the end for the stores to hold everything that was sent.
    settle_timeout: float = 15.0
    seed: int | None = None
    #: Where the viewer's notifications and their read state are saved between runs (None: not saved).
    state_dir: Path | None = None


class Demo:
    """Runs the demo and reports to a :class:`DemoView`; :meth:`run` returns the summary."""

    def __init__(self, options: DemoOptions, view: DemoView) -> None:
        self.options = options
        self.view = view
        self._stop = asyncio.Event()
        self.events: Counter[str] = Counter()
        self.failures: list[str] = []
        self._log: list[str] = []
        self._started = 0.0
        self._connection = "initialized"
        self._server_state = "starting"
        self._reconnections = 0
        self._was_connected = False
        self._restarted = False
        self._disposables: list[DisposableBase] = []
        self._backend: DemoBackend | None = None
        self._viewer: DemoClient | None = None
        self._notes: NotificationStore | None = None
        self._room: RoomStore | None = None
        #: ids of the notifications restored from the last run, and of those among them that were read
        self._restored: frozenset[str] = frozenset()
        self._restored_read: frozenset[str] = frozenset()
        self._tasks: TaskStore | None = None
        self._api_down_for = min(options.api_down_for, options.duration * 0.2)
        #: The back end whose API is down after the restart until the viewer reconnects.
        self._api_outage: DemoBackend | None = None
        #: Set on every store or connection change while the run settles (see ``_settle``).
        self._progress: asyncio.Event | None = None

    # --- the run ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """End the run early (Ctrl-C): the stores settle and the summary is printed as usual."""
        if not self._stop.is_set():
            self._stop.set()
            self._event("stopping early (Ctrl-C)")

    async def run(self) -> DemoSummary:
        self._started = time.monotonic()
        self.view.start()
        try:
            async with demo_stack(tenant_id=TENANT, seed=self.options.seed) as stack:
                assert stack.server is not None
                self._backend = stack.backend
                self._server_state = "up"
                self._event(f"embedded Pusher server on {stack.ws_url}")
                self._event(f"simulated Laravel back end on {stack.backend.url}")
                try:
                    summary = await self._run_clients(stack, stack.server)
                finally:
                    self._stop_watching()  # before the clients close, so their teardown is not reported
        finally:
            self._stop_watching()
            self.view.stop()
        self.view.summary(summary)
        return summary

    async def _run_clients(self, stack: DemoStack, server: PusherServer) -> DemoSummary:
        ann, ben, cleo = DEFAULT_USERS
        opts = self.options
        backend = stack.backend
        state_dir = opts.state_dir
        saved = {"state_dir": str(state_dir), "user": str(ann.id)} if state_dir is not None else None
        viewer = self._viewer = await stack.client(ann, config=saved)
        friend = await stack.client(ben)
        visitor: DemoClient | None = None
        visited = False
        self._watch_viewer(viewer)
        notes = self._notes = viewer.app.use(
            PersistentNotificationStore if state_dir is not None else NotificationStore
        )
        if isinstance(notes, PersistentNotificationStore):
            self._report_restored(notes, state_dir)
        room = self._room = viewer.app.use(RoomStore, key=opts.room)
        tasks = self._tasks = viewer.app.use(TaskStore)
        for store in (notes, room, tasks):
            self._disposables.append(store.errors.subscribe(self._store_error))
        await notes.subscribe_to_socket(ann.id)
        tasks.follow()
        await room.join(opts.room)
        friend_room = friend.app.use(RoomStore, key=opts.room)
        self._disposables.append(friend_room.errors.subscribe(self._store_error))
        await friend_room.join(opts.room)

        schedule = asyncio.create_task(self._schedule(backend, notes, friend_room, ben, cleo))
        deadline = self._started + opts.duration
        restart_at = self._started + opts.duration / 2
        visitor_at = self._started + opts.duration * 0.15
        visitor_leaves_at = self._started + opts.duration * 0.4
        try:
            while (now := time.monotonic()) < deadline and not self._stop.is_set():
                if opts.restart and not self._restarted and now >= restart_at:
                    await self._restart(server, backend)
                if visitor is None and not visited and now >= visitor_at:
                    visited = True
                    visitor = await stack.client(cleo)
                    visitor_room = visitor.app.use(RoomStore, key=opts.room)
                    self._disposables.append(visitor_room.errors.subscribe(self._store_error))
                    await visitor_room.join(opts.room)
                elif visitor is not None and now >= visitor_leaves_at:
                    await stack.close_client(visitor)
                    visitor = None
                self.view.update(self.snapshot())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.1)
        finally:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
        await self._settle(notes, room, backend, ann)
        self.view.update(self.snapshot())
        return self._summary(notes, room, backend, ann)

    async def _schedule(
        self,
        backend: DemoBackend,
        notes: NotificationStore,
        friend_room: RoomStore,
        ben: DemoUser,
        cleo: DemoUser,
    ) -> None:
        """The back end's jobs, in turn: a notification for the viewer; Ben types, then posts through
        the API; a notification; Cleo's message broadcast server-side. Every third notification, the
        viewer reads the oldest unread one (``mark_read`` through the API)."""
        step = 0
        while True:
            try:
                if step % 2 == 0:
                    record = await backend.notify_random([1])
                    if not record.broadcast:
                        self._event("broadcast failed (server down): notification stored, not pushed")
                    # (only this run's notifications: those restored from the last run are unknown to
                    # this back end)
                    ours = {r.id for r in backend.sent_to(DEFAULT_USERS[0].id)}
                    unread = [n for n in notes.state.notifications if not n.read and n.id in ours]
                    if step % 6 == 4 and unread:
                        await notes.mark_read(unread[-1].id)
                        self._event(f"Ann read: {unread[-1].title}")
                elif step % 4 == 1:
                    friend_room.set_typing(ben.name, True)
                    await asyncio.sleep(self.options.interval / 2)
                    await friend_room.send(f"message #{step} from {ben.name}")
                else:
                    await backend.chat_random(self.options.room, [cleo.id])
                if step % 5 == 3:
                    await self._task_job(backend, step)
            except NotConnected:
                self._event("Ben's typing whisper skipped: his connection is reconnecting")
            except Exception as exc:  # reported, and the schedule goes on
                logger.debug("scheduled job failed", exc_info=True)
                self._event(f"job failed: {type(exc).__name__}: {exc}")
            step += 1
            await asyncio.sleep(self.options.interval)

    def _report_restored(self, notes: PersistentNotificationStore, state_dir: Path | None) -> None:
        held = notes.state.notifications
        self._restored = frozenset(n.id for n in held)
        self._restored_read = frozenset(n.id for n in held if n.read)
        error = notes.persistence.error  # type: ignore[attr-defined]  # (set by Persist)
        if error is not None:
            self._event(f"saved state unusable, starting fresh: {error}")
        elif held:
            self._event(
                f"restored {len(held)} notifications from the last run ({len(self._restored_read)} read) "
                f"from {state_dir}"
            )
        else:
            self._event(f"no saved notifications in {state_dir}: a first run")

    async def _task_job(self, backend: DemoBackend, step: int) -> None:
        """Someone changes the task board (model broadcasts: TaskCreated, TaskUpdated, TaskTrashed...)."""
        board = backend.tasks
        live = board.live()
        if len(live) < 3 or step % 3 == 0:
            task = await board.create(2, f"task #{step}")
            self._event(f"Ben created {task.title!r} (TaskCreated)")
        elif step % 3 == 1:
            task = await board.update(live[0].id, done=not live[0].done)
            self._event(f"Ben ticked {task.title!r} (TaskUpdated)")
        else:
            task = await board.trash(live[0].id)
            self._event(f"Ben trashed {task.title!r} (TaskTrashed, TaskDeleted)")

    def _store_error(self, event: StoreErrorEvent) -> None:
        if isinstance(event.error, ResyncFailed):  # the store retries on its own; its status says so
            self._event(f"{event.store_id}: {event.error}")
        else:
            self._fail(f"store error: {event!r}")

    async def _restart(self, server: PusherServer, backend: DemoBackend) -> None:
        self._restarted = True
        self._server_state = "restarting"
        self._event("restarting the server: clients get 4200 and reconnect")
        await server.stop()
        self._server_state = "down"
        down_for = min(self.options.down_for, self.options.duration * 0.2)
        self._event(f"server down for {down_for:.1f}s; the back end keeps sending")
        await asyncio.sleep(down_for)
        if self._api_down_for > 0:
            # The app stays down until the viewer is back (then ``api_down_for`` more, see _on_state), so
            # its reloads after resubscribing meet the outage however long the reconnection takes.
            backend.api_unavailable(self.options.settle_timeout)
            self._api_outage = backend
        await server.start()
        self._server_state = "up"
        self._event("server is back")
        if self._api_down_for > 0:
            self._event("the app's API answers 503 until the clients are back (a deploy): reloads retry")

    async def _settle(
        self, notes: NotificationStore, room: RoomStore, backend: DemoBackend, user: DemoUser
    ) -> None:
        """Wait until the stores hold every notification and chat message sent and, after a restart, the
        client is connected again (or the settle timeout passes): a short run must not end
        mid-reconnection."""
        progress = asyncio.Event()
        self._progress = progress

        def settled() -> bool:
            held = {n.id for n in notes.state.notifications}
            caught_up = all(r.id in held for r in backend.sent_to(user.id))
            caught_up = caught_up and not self._missing_messages(room, backend)
            return caught_up and (not self._restarted or self._reconnections > 0)

        subscriptions = [store.observe().subscribe(lambda _state: progress.set()) for store in (notes, room)]
        deadline = time.monotonic() + self.options.settle_timeout
        try:
            while not settled() and (remaining := deadline - time.monotonic()) > 0:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), remaining)
        finally:
            for subscription in subscriptions:
                subscription.dispose()
            self._progress = None

    def _said(self, backend: DemoBackend) -> list[Any]:
        """The room's messages the viewer's store should hold: the newest it keeps."""
        return [m for m in backend.messages if m.room_id == self.options.room][-MAX_MESSAGES:]

    def _missing_messages(self, room: RoomStore, backend: DemoBackend) -> list[str]:
        held = {m.id for m in room.state.messages}
        return [f"{m.id} {m.user.name}: {m.text}" for m in self._said(backend) if m.id not in held]

    # --- observation -------------------------------------------------------------------------------

    def _watch_viewer(self, viewer: DemoClient) -> None:
        ws = viewer.ws
        self._disposables.append(ws.state.subscribe(self._on_state))
        notes_channel = ws.channel(f"tenant.{TENANT}.User.{viewer.user.id}", type="privateNotification")
        room = ws.channel(f"room.{self.options.room}", type="presence")
        self._count(
            notes_channel.notifications(),
            "notifications",
            lambda p: f"notification: {p.get('title', '?')}: {p.get('body', '')}",
        )
        self._count(
            room.listen("NewMessage"),
            "messages",
            lambda p: f"message from {p.get('user', {}).get('name', '?')}: {p.get('text', '')}",
        )
        self._count(room.joining, "joining", lambda m: f"joined: {_name(m.info)}")
        self._count(room.leaving, "leaving", lambda m: f"left: {_name(m.info)}")
        self._count(
            room.listen_for_whisper("typing"), "whispers", lambda p: f"whisper: {p.get('name')} typing"
        )
        self._count(notes_channel.subscribed, "subscriptions", lambda _e: f"subscribed {notes_channel.name}")
        self._count(room.subscribed, "subscriptions", lambda _e: f"subscribed {room.name}")
        for channel in (notes_channel, room):
            self._disposables.append(channel.errors.subscribe(lambda e: self._fail(f"channel error: {e}")))

    def _stop_watching(self) -> None:
        for d in self._disposables:
            d.dispose()
        self._disposables.clear()

    def _count(self, source: Any, kind: str, describe: Callable[[Any], str]) -> None:
        def on_next(value: Any) -> None:
            self.events[kind] += 1
            self._event(describe(value))

        self._disposables.append(source.subscribe(on_next))

    def _on_state(self, state: Any) -> None:
        name = str(getattr(state, "value", state))
        self._connection = name
        self.events["state changes"] += 1
        if name == "connected":
            if self._was_connected:
                self._reconnections += 1
            self._was_connected = True
        self._event(f"connection: {name}")
        if name == "connected" and self._api_outage is not None:
            self._api_outage.api_unavailable(self._api_down_for)  # the resubscribed stores' reloads get 503s
            self._api_outage = None
            self._event(f"the app's API comes back in {self._api_down_for:.1f}s")
        if self._progress is not None:
            self._progress.set()

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        self._event(message)

    def _event(self, line: str) -> None:
        self._log.append(f"{time.monotonic() - self._started:5.1f}s {line}")
        del self._log[:-50]
        self.view.event(self.snapshot(), line)

    def snapshot(self) -> DemoSnapshot:
        elapsed = time.monotonic() - self._started if self._started else 0.0
        base = DemoSnapshot(
            elapsed=elapsed,
            duration=self.options.duration,
            connection=self._connection,
            server=self._server_state,
            user=DEFAULT_USERS[0].name,
            room=self.options.room,
            reconnections=self._reconnections,
            events=dict(self.events),
            log=tuple(self._log),
        )
        viewer, backend, notes, room = self._viewer, self._backend, self._notes, self._room
        if viewer is None or backend is None or notes is None or room is None:
            return base
        lines = tuple(
            NotificationLine(n.title, str(n.data.get("body", "")), n.read)
            for n in notes.state.notifications[:8]
        )
        messages = tuple(f"{m.user.name}: {m.text}" for m in room.state.messages[-6:])
        return DemoSnapshot(
            elapsed=elapsed,
            duration=self.options.duration,
            connection=self._connection,
            server=self._server_state,
            user=viewer.user.name,
            room=self.options.room,
            notifications=lines,
            unread=notes.unread_count,
            total=len(notes.state.notifications),
            sent=len(backend.sent_to(viewer.user.id)),
            members=tuple(room.member_names),
            activity=tuple(room.state.activity),
            tenant=TENANT,
            typing=tuple(room.state.typing),
            messages=messages,
            reconnections=self._reconnections,
            events=dict(self.events),
            log=tuple(self._log),
            sync=notes.sync_status.value,
            tasks=tuple(f"[{'x' if t.done else ' '}] {t.title}" for t in self._tasks.state.tasks)
            if self._tasks is not None
            else (),
            tasks_sync=self._tasks.sync_status.value if self._tasks is not None else "stale",
        )

    def _summary(
        self, notes: NotificationStore, room: RoomStore, backend: DemoBackend, user: DemoUser
    ) -> DemoSummary:
        held_now = notes.state.notifications
        held = {n.id for n in held_now}
        sent = backend.sent_to(user.id)
        lost = tuple(f"{r.id} {r.data.get('title', '')}" for r in sent if r.id not in held)
        return DemoSummary(
            duration=time.monotonic() - self._started,
            sent=len(sent),
            in_store=len(held & {r.id for r in sent}),
            lost=lost,
            unread=notes.unread_count,
            reconnections=self._reconnections,
            restarted=self._restarted,
            members=tuple(room.member_names),
            messages=len(room.state.messages),
            messages_said=len(self._said(backend)),
            messages_lost=tuple(self._missing_messages(room, backend)),
            api_refused=backend.stats.api_refused,
            events=dict(self.events),
            broadcast_failures=backend.stats.broadcast_failures,
            failures=tuple(self.failures),
            state_dir=str(self.options.state_dir) if self.options.state_dir is not None else None,
            restored=len(self._restored),
            restored_read=len(self._restored_read),
            restored_still_read=sum(1 for n in held_now if n.read and n.id in self._restored_read),
            saved=len(held_now),
            saved_read=sum(1 for n in held_now if n.read),
        )


def _name(info: Any) -> str:
    return str(info.get("name", "?")) if isinstance(info, dict) else str(info)
