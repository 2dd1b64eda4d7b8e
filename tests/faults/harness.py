"""The reliability harness shared by ``tests/faults`` (short runs) and ``benchmarks/`` (long runs).

A :class:`Stack` is a real deployment on loopback: a Pusher server in its own process (the embedded
server via ``quvel serve``, or Soketi) behind a :class:`FaultProxy`, the simulated Laravel back end
(:class:`quvel.demo.DemoBackend`) behind a second proxy (so the auth endpoint can fail too), and
:class:`Watcher` clients that follow a user's notifications the way the notification recipe does:
live events plus a reload of ``GET /api/notifications`` on every (re-)subscription. The back end's own
record of what it sent is the ground truth every scenario is compared with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from quvel.demo import DemoBackend, DemoUser, PusherCredentials
from quvel_ws import WebSocketService
from tests.faults.proxy import FaultProxy
from tests.peers import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    ROOT,
    SoketiServer,
    free_port,
    stop_process_group,
    wait_http_ok,
)

log = logging.getLogger(__name__)

#: Client timings that keep CI short: the policies are the same, only the clock runs faster.
FAST_CLIENT: dict[str, float] = {
    "backoff_initial": 0.05,
    "backoff_max": 0.5,
    "immediate_retry_jitter": 0.1,
    "connect_timeout": 2.0,
    "handshake_timeout": 2.0,
    "unavailable_timeout": 2.0,
}


class ServerLike(Protocol):
    port: int

    @property
    def ws_url(self) -> str: ...

    @property
    def http_url(self) -> str: ...

    def start(self, timeout: float = 20.0) -> Any: ...

    def stop(self, hard: bool = False) -> None: ...


@dataclass
class EmbeddedServerProcess:
    """``quvel serve`` in a child process, so it can be killed (SIGKILL) like a crashed server and
    restarted on the same port; the same shape as :class:`tests.peers.SoketiServer`."""

    port: int = field(default_factory=free_port)
    activity_timeout: float = 30
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/app/{APP_KEY}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quvel",
                "serve",
                "--port",
                str(self.port),
                "--app-id",
                APP_ID,
                "--app-key",
                APP_KEY,
                "--app-secret",
                APP_SECRET,
                "--enable-client-events",
                "--activity-timeout",
                str(self.activity_timeout),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_http_ok(f"{self.http_url}/", timeout)
        except TimeoutError:
            self.stop(hard=True)
            raise
        return self

    def stop(self, hard: bool = False) -> None:
        """``hard=True``: SIGKILL (no close frames, like a crash); otherwise SIGTERM (clients get 4200)."""
        proc, self.proc = self.proc, None
        stop_process_group(proc, hard=hard)


class ReverbLike:
    """The Reverb-like scripted server (``tests/ws/reverb_server.py``, on its own thread) in the shape of
    :class:`EmbeddedServerProcess`: ``stop(hard=True)`` drops every socket without a close frame and stops
    listening (its HTTP API too, like a killed process), ``start()`` listens again on the same ports."""

    def __init__(self) -> None:
        from tests.ws.reverb_server import ReverbLikeServer

        self.inner = ReverbLikeServer()
        self.port = self.inner.ws_port
        self._running = False
        self._started = False

    @property
    def ws_url(self) -> str:
        return self.inner.ws_url

    @property
    def http_url(self) -> str:
        return self.inner.http_url

    def start(self, timeout: float = 20.0) -> ReverbLike:
        if not self._started:
            self.inner.start()
            self._started = True
        elif not self._running:
            self.inner.revive()
        self._running = True
        return self

    def stop(self, hard: bool = False) -> None:
        if not self._running:
            return
        if not hard:  # close frames first (Reverb's shutdown), then stop listening
            self.inner.restart(hard=False)
        self.inner.kill()
        self._running = False

    def close(self) -> None:
        if self._started:
            self.inner.stop()
            self._started = self._running = False


def make_server(kind: str) -> ServerLike:
    if kind == "embedded":
        return EmbeddedServerProcess()
    if kind == "soketi":
        return SoketiServer()
    if kind == "reverb":
        return ReverbLike()
    raise ValueError(f"unknown server kind {kind!r}")


@dataclass
class Watcher:
    """One user's client: live notifications plus a reload on every (re-)subscription (the recipe)."""

    user: DemoUser
    ws: WebSocketService
    api: httpx.AsyncClient
    live: set[str] = field(default_factory=set)
    recovered: set[str] = field(default_factory=set)
    subscribed_at: list[float] = field(default_factory=list)
    reload_failures: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def ids(self) -> set[str]:
        return self.live | self.recovered

    def _on_notification(self, payload: Any) -> None:
        nid = payload.get("id") if isinstance(payload, dict) else None
        if isinstance(nid, str):
            self.live.add(nid)
            self.recovered.discard(nid)
            self.changed.set()

    def _on_subscribed(self, _: Any) -> None:
        self.subscribed_at.append(time.monotonic())
        self.changed.set()
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> None:
        """``GET /api/notifications``: whatever was missed while disconnected."""
        try:
            response = await self.api.get("/api/notifications")
            response.raise_for_status()
            rows = response.json()["data"]
        except (httpx.HTTPError, ValueError, KeyError):
            self.reload_failures += 1
            return
        for row in rows:
            if row["id"] not in self.live:
                self.recovered.add(row["id"])
        self.changed.set()

    async def wait(self, predicate: Callable[[Watcher], bool], within: float) -> None:
        async def loop() -> None:
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), within)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.shutdown()
        await self.api.aclose()


class RecipeWatcher:
    """A front end running the real notification recipe (:class:`quvel.demo.notifications.NotificationStore`
    in a store app with its service container), plus a tap on the same channel that tells which
    notifications arrived live (the rest came in through the store's reload)."""

    def __init__(self, user: DemoUser, container: Any, app: Any, store: Any) -> None:
        self.user = user
        self.container = container
        self.app = app
        self.store = store
        self.live: set[str] = set()
        self.subscribed_at: list[float] = []
        self.changed = asyncio.Event()
        self._state_subscription = store.observe().subscribe(lambda _: self.changed.set())

    @property
    def ids(self) -> set[str]:
        return {n.id for n in self.store.state.notifications}

    @property
    def duplicates(self) -> int:
        """Notifications held more than once (the store must hold each exactly once)."""
        held = [n.id for n in self.store.state.notifications]
        return len(held) - len(set(held))

    @property
    def recovered(self) -> set[str]:
        return self.ids - self.live

    def _on_notification(self, payload: Any) -> None:
        if isinstance(payload, dict) and isinstance(payload.get("id"), str):
            self.live.add(payload["id"])
            self.changed.set()

    def _on_subscribed(self, _: Any) -> None:
        self.subscribed_at.append(time.monotonic())
        self.changed.set()

    async def wait(self, predicate: Callable[[Any], bool], within: float) -> None:
        async def loop() -> None:
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), within)

    async def close(self) -> None:
        self._state_subscription.dispose()
        self.app.dispose()
        await self.container.shutdown()


class Stack:
    """Server process + fault proxies + back end, all on loopback (see the module docstring)."""

    def __init__(self, kind: str, *, users: int = 3, seed: int = 0) -> None:
        self.kind = kind
        self.server = make_server(kind)
        self.users = [
            DemoUser(i, f"User {i}", f"u{i}@example.test", f"token-{i}-{seed}") for i in range(1, users + 1)
        ]
        self.rng = random.Random(seed)
        self.ws_proxy: FaultProxy | None = None
        self.auth_proxy: FaultProxy | None = None
        self.backend: DemoBackend | None = None
        self.watchers: list[Watcher | RecipeWatcher] = []
        self.publishers: list[Publisher] = []

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.server.start)
        self.ws_proxy = await FaultProxy("127.0.0.1", self.server.port).start()
        creds = PusherCredentials(self.server.http_url, APP_ID, APP_KEY, APP_SECRET)
        self.backend = await DemoBackend(creds, users=self.users, seed=self.rng.randrange(1 << 30)).start()
        backend_port = int(httpx.URL(self.backend.url).port or 80)
        self.auth_proxy = await FaultProxy("127.0.0.1", backend_port).start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for publisher in self.publishers:  # a scenario that failed midway may leave one running
            await publisher.stop()
        for watcher in self.watchers:
            await watcher.close()
        if self.backend is not None:
            await self.backend.stop()
        for proxy in (self.ws_proxy, self.auth_proxy):
            if proxy is not None:
                await proxy.close()
        await asyncio.to_thread(self.server.stop, True)
        if isinstance(self.server, ReverbLike):
            await asyncio.to_thread(self.server.close)

    @property
    def ws_url(self) -> str:
        assert self.ws_proxy is not None
        return f"ws://127.0.0.1:{self.ws_proxy.port}/app/{APP_KEY}"

    @property
    def api_url(self) -> str:
        assert self.auth_proxy is not None
        return f"http://127.0.0.1:{self.auth_proxy.port}"

    def service(
        self, user: DemoUser | None = None, *, url: str | None = None, **options: Any
    ) -> tuple[WebSocketService, httpx.AsyncClient]:
        """A client service whose auth (and API) requests go through the auth proxy as ``user``; it
        connects to ``url`` (default: the server through the fault proxy)."""
        headers = {"Authorization": f"Bearer {user.token}"} if user else {}
        api = httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=5)
        opts = {**FAST_CLIENT, **options}
        return WebSocketService(url or self.ws_url, http_client=api, **opts), api

    async def watch(self, user: DemoUser, *, url: str | None = None, **options: Any) -> Watcher:
        ws, api = self.service(user, url=url, **options)
        assert self.backend is not None
        watcher = Watcher(user, ws, api)
        channel = ws.channel(self.backend.notification_channel(user.id))
        channel.notifications().subscribe(watcher._on_notification)
        channel.subscribed.subscribe(watcher._on_subscribed)
        self.watchers.append(watcher)
        return watcher

    async def watch_recipe(
        self, user: DemoUser, config: dict[str, Any] | None = None, **options: Any
    ) -> RecipeWatcher:
        """``user``'s front end with the notification store following their channel (the recipe);
        ``config`` adds container settings (e.g. ``api_timeout``)."""
        from quvel.demo.notifications import NotificationStore
        from quvel_store import create_app
        from quvel_store.container import ServiceContainer

        assert self.backend is not None
        container = ServiceContainer(
            config={
                "tenant_id": self.backend.tenant_id,
                "api_url": self.api_url,
                "ws_url": self.ws_url,
                **(config or {}),
            }
        )
        container.api.set_token(user.token)
        container.ws = WebSocketService(
            self.ws_url, http_client=container.api.client, **{**FAST_CLIENT, **options}
        )
        await container.boot()
        app = create_app(container=container)
        store = app.use(NotificationStore)
        watcher = RecipeWatcher(user, container, app, store)
        name = f"tenant.{self.backend.tenant_id}.User.{user.id}"
        tap = container.ws.channel(name, type="privateNotification")
        tap.notifications().subscribe(watcher._on_notification)
        tap.subscribed.subscribe(watcher._on_subscribed)
        await store.subscribe_to_socket(user.id)
        self.watchers.append(watcher)
        return watcher

    async def all_subscribed(self, times: int, within: float) -> float:
        """Wait until every watcher has been (re-)subscribed ``times`` times; returns when (monotonic)."""
        await asyncio.gather(
            *(w.wait(lambda w: len(w.subscribed_at) >= times, within) for w in self.watchers)
        )
        return max(w.subscribed_at[times - 1] for w in self.watchers)

    def sent_ids(self, user: DemoUser) -> set[str]:
        assert self.backend is not None
        return {n.id for n in self.backend.sent_to(user.id)}

    async def converge(self, within: float) -> None:
        """Wait until every watcher holds every notification the back end sent to its user."""
        await asyncio.gather(
            *(w.wait(lambda w: self.sent_ids(w.user) <= w.ids, within) for w in self.watchers)
        )

    def tally(self) -> dict[str, int]:
        """Events sent (back end record), received live, recovered by reload, lost."""
        sent = received = recovered = lost = 0
        duplicates = 0
        for w in self.watchers:
            ids = self.sent_ids(w.user)
            duplicates += getattr(w, "duplicates", 0)
            sent += len(ids)
            received += len(ids & w.live)
            recovered += len(ids & (w.recovered - w.live))
            lost += len(ids - w.ids)
        return {
            "events_sent": sent,
            "events_received": received,
            "events_recovered": recovered,
            "events_lost": lost,
            "duplicates": duplicates,
        }

    async def restart_server(self, *, hard: bool, down_for: float) -> float:
        """Kill (or stop) the server, keep it down ``down_for`` s, start it; returns when it is back up."""
        await asyncio.to_thread(self.server.stop, hard)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self.server.start)
        return time.monotonic()


class Publisher:
    """Sends notifications to users at ``rate`` per second until stopped (Laravel's ``notify()``), from
    ``workers`` concurrent senders so the rate does not depend on one request's latency."""

    def __init__(
        self, stack: Stack, rate: float, users: Sequence[DemoUser] | None = None, workers: int = 1
    ) -> None:
        self.stack = stack
        self.rate = rate
        self.users = list(users or stack.users)
        self.workers = workers
        stack.publishers.append(self)
        self.sent = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def _run(self, worker: int) -> None:
        backend = self.stack.backend
        assert backend is not None
        interval = self.workers / self.rate
        start = time.monotonic() + worker / self.rate
        i = 0
        while not self._stopping:
            user = self.users[(i * self.workers + worker) % len(self.users)]
            i += 1
            await backend.notify(user.id, "App\\Notifications\\Tick", {"n": i, "worker": worker})
            self.sent += 1
            delay = start + i * interval - time.monotonic()
            if delay > 0 and not self._stopping:
                await asyncio.sleep(delay)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(w)) for w in range(self.workers)]

    async def stop(self) -> None:
        """Stop after the notifications in flight (cancelling one mid-request would store it without a
        broadcast, which no client could be expected to see until its next reconnect)."""
        self._stopping = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def percentiles(values: Sequence[float], points: Sequence[int] = (0, 10, 50, 90, 100)) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for p in points:
        idx = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        out["min" if p == 0 else "max" if p == 100 else f"p{p}"] = round(ordered[idx], 4)
    return out


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
