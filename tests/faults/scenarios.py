"""The fault scenarios of issue 6, sized by their arguments: CI runs them short (``tests/faults``),
``benchmarks/reliability.py`` runs them long. Each returns one row of ``docs/reliability.md``'s table
(plus details) and asserts nothing itself: the tests decide what must hold.

Every scenario runs against a server in its own process (the embedded server via ``quvel serve``, or
Soketi) behind the fault proxy, with the simulated Laravel back end as auth endpoint and API.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import httpx

from quvel_ws import AuthorizationError, ConnectionState, TransportError
from tests.faults.harness import FAST_CLIENT, Publisher, Stack, percentiles
from tests.faults.leaks import growth, snapshot
from tests.peers import APP_ID, APP_KEY, APP_SECRET
from tests.security.raw import signed_query

Row = dict[str, Any]


def make_row(scenario: str, stack: Stack, load: str, faults: str, **extra: Any) -> Row:
    return {
        "scenario": scenario,
        "server": stack.kind,
        "load": load,
        "faults": faults,
        **stack.tally(),
        **extra,
    }


async def server_channels(stack: Stack) -> dict[str, int]:
    """``GET /apps/1/channels`` on the server (signed): occupied channels and subscription counts."""
    path = f"/apps/{APP_ID}/channels"
    query = signed_query(
        "GET", path, b"", key=APP_KEY, secret=APP_SECRET, extra={"info": "subscription_count"}
    )
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{stack.server.http_url}{path}?{query}")
    response.raise_for_status()
    channels = response.json()["channels"]
    return {name: int(info.get("subscription_count", 0)) for name, info in channels.items()}


# --- server killed and restarted ----------------------------------------------------------------------------


async def kill_restart(
    kind: str,
    *,
    clients: int = 3,
    rate: float = 50,
    kills: int = 1,
    down_for: float = 0.5,
    settle: float = 0.5,
    library_defaults: bool = False,
) -> Row:
    """SIGKILL the server (no close frames) ``kills`` times while events flow; every client must come
    back, resubscribe and reload what it missed. ``library_defaults``: clients use the library's own
    reconnect policy (backoff 1 s doubling to a 5 s cap), not the harness's fast one."""
    options: dict[str, Any] = {}
    if library_defaults:
        from quvel_ws.protocol import ProtocolConfig

        defaults = ProtocolConfig(url="ws://x/app/k")
        options = {name: getattr(defaults, name) for name in FAST_CLIENT}
    async with Stack(kind, users=clients) as stack:
        for user in stack.users:
            await stack.watch(user, **options)
        await stack.all_subscribed(1, 15)
        publisher = Publisher(stack, rate)
        publisher.start()
        recoveries = []
        for k in range(kills):
            await asyncio.sleep(settle)
            up = await stack.restart_server(hard=True, down_for=down_for)
            back = await stack.all_subscribed(k + 2, 30)
            recoveries.append(back - up)
        await asyncio.sleep(settle)
        await publisher.stop()
        await stack.converge(15)
        return make_row(
            "server killed (SIGKILL) and restarted",
            stack,
            f"{clients} clients, {rate:g} ev/s",
            f"{kills} kill(s), down {down_for:g} s"
            + (", default reconnect policy" if library_defaults else ""),
            recovery_s=percentiles(recoveries, (50, 100)),
        )


# --- blackhole: silence without a close -------------------------------------------------------------------


async def blackhole(
    kind: str,
    *,
    activity_timeout: float = 1.0,
    pong_timeout: float = 1.0,
    hold: float | None = None,
    rate: float = 20,
) -> Row:
    """The network goes silent (no FIN, no RST). The heartbeat must notice within activity_timeout +
    pong_timeout, and the client must be back once the network heals."""
    async with Stack(kind, users=1) as stack:
        options = {
            "activity_timeout": activity_timeout,
            "pong_timeout": pong_timeout,
            "connect_timeout": 1.0,
            "handshake_timeout": 1.0,
        }
        watcher = await stack.watch(stack.users[0], **options)
        states: list[tuple[float, ConnectionState]] = []
        watcher.ws.state.subscribe(lambda s: states.append((time.monotonic(), s)))
        await stack.all_subscribed(1, 15)
        publisher = Publisher(stack, rate)
        publisher.start()
        await asyncio.sleep(0.3)
        assert stack.ws_proxy is not None
        started = time.monotonic()
        stack.ws_proxy.blackhole()
        limit = activity_timeout + pong_timeout

        async def noticed() -> float:
            while True:
                for at, state in states:
                    if at >= started and state is not ConnectionState.CONNECTED:
                        return at - started
                await asyncio.sleep(0.02)

        detection = await asyncio.wait_for(noticed(), limit + 10)
        await asyncio.sleep(hold if hold is not None else 0.5)
        healed = time.monotonic()
        stack.ws_proxy.pass_through()
        back = await stack.all_subscribed(2, 30)
        await asyncio.sleep(0.3)
        await publisher.stop()
        await stack.converge(15)
        return make_row(
            "blackhole (silence, no close)",
            stack,
            f"1 client, {rate:g} ev/s",
            f"blackhole; activity {activity_timeout:g} s + pong {pong_timeout:g} s",
            recovery_s=back - healed,
            detection_s=round(detection, 3),
            detection_limit_s=limit,
        )


# --- connection refused for a while ---------------------------------------------------------------------


async def refused(
    kind: str,
    *,
    clients: int = 5,
    seconds: float = 3.0,
    backoff_initial: float = 0.1,
    backoff_max: float = 1.0,
) -> Row:
    """Every connection attempt is refused for ``seconds``: clients back off with jitter (counted at
    the proxy) instead of looping, and come back once connections are accepted again."""
    async with Stack(kind, users=clients) as stack:
        for user in stack.users:
            await stack.watch(user, backoff_initial=backoff_initial, backoff_max=backoff_max)
        await stack.all_subscribed(1, 15)
        proxy = stack.ws_proxy
        assert proxy is not None
        proxy.refuse(reset=True)
        window_start = asyncio.get_running_loop().time()
        await proxy.drop_all()
        await asyncio.sleep(seconds)
        attempts = [t - window_start for t in proxy.stats.accepted_at if t >= window_start]
        healed = time.monotonic()
        proxy.pass_through()
        back = await stack.all_subscribed(2, 30)
        per_client = len(attempts) / clients
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        return make_row(
            "connection refused for a while",
            stack,
            f"{clients} clients",
            f"all connects reset for {seconds:g} s",
            recovery_s=back - healed,
            attempts=len(attempts),
            attempts_per_client=round(per_client, 1),
            attempt_gaps=percentiles(gaps),
        )


# --- no thundering herd ----------------------------------------------------------------------------------


async def herd(
    kind: str, *, clients: int = 50, down_for: float = 0.0, hard: bool = False, backoff_max: float = 4.0
) -> Row:
    """``clients`` services on one channel; the server restarts. Reconnection times after the server is
    back are spread by the jitter, not a spike: report their distribution and the busiest 100 ms."""
    async with Stack(kind, users=1) as stack:
        options = {"backoff_initial": 1.0, "backoff_max": backoff_max, "immediate_retry_jitter": 1.0}
        services = []
        subscribed: list[list[float]] = []
        for _ in range(clients):
            ws, api = stack.service(None, **options)
            times: list[float] = []

            def record(_: object, t: list[float] = times) -> None:
                t.append(time.monotonic())

            ws.channel("herd").subscribed.subscribe(record)
            services.append((ws, api))
            subscribed.append(times)
        try:
            await until(lambda: all(subscribed), 60)
            proxy = stack.ws_proxy
            assert proxy is not None
            first_round = len(proxy.stats.connected_at)
            up = await stack.restart_server(hard=hard, down_for=down_for)
            await until(lambda: all(len(t) >= 2 for t in subscribed), 120)
            connects = [t - up for t in proxy.stats.connected_at[first_round:] if t >= up - 0.001]
            resubscribed = [t[1] - up for t in subscribed]
            peak = max(sum(1 for c in resubscribed if w <= c < w + 0.1) for w in resubscribed)
        finally:
            for ws, api in services:
                await ws.shutdown()
                await api.aclose()
        row = make_row(
            "reconnect spread after a restart (thundering herd)",
            stack,
            f"{clients} clients",
            f"server {'killed' if hard else 'stopped (4200)'} and restarted",
            recovery_s=percentiles(resubscribed, (50, 95, 100)),
        )
        row.update(
            events_sent=None,
            events_received=None,
            events_recovered=None,
            events_lost=None,
            resubscribed_after_s=percentiles(resubscribed),
            connects_after_up=len(connects),
            peak_100ms=peak,
            peak_100ms_share=round(peak / clients, 3),
        )
        return row


async def until(predicate: Any, within: float) -> None:
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 - conditions span several objects; polled every 20 ms
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), within)


# --- the auth endpoint goes down and comes back ------------------------------------------------------------


async def auth_down(
    kind: str, *, clients: int = 2, down_for: float = 2.0, rate: float = 20, recover_within: float = 15.0
) -> Row:
    """The app (auth endpoint and API) is unreachable while the socket reconnects: re-authorisation
    fails. Once the app is back, the private subscriptions must recover on their own."""
    async with Stack(kind, users=clients) as stack:
        watchers = [await stack.watch(user) for user in stack.users]
        errors: list[Exception] = []
        for w in watchers:
            w.ws.errors.subscribe(errors.append)
        await stack.all_subscribed(1, 15)
        publisher = Publisher(stack, rate)
        publisher.start()
        assert stack.auth_proxy is not None
        assert stack.ws_proxy is not None
        stack.auth_proxy.refuse()
        await stack.auth_proxy.drop_all()  # kept-alive HTTP connections die with the app too
        await stack.ws_proxy.drop_all()
        await until(lambda: sum(isinstance(e, AuthorizationError) for e in errors) >= clients, 15)
        await asyncio.sleep(down_for)
        healed = time.monotonic()
        stack.auth_proxy.pass_through()
        try:
            back = await stack.all_subscribed(2, recover_within)
            recovery: float | None = back - healed
        except TimeoutError:
            recovery = None
        await publisher.stop()
        if recovery is not None:
            await stack.converge(15)
        return make_row(
            "auth endpoint down, then back",
            stack,
            f"{clients} clients, {rate:g} ev/s",
            f"auth/API refused {down_for:g} s during a reconnect",
            recovery_s=recovery,
            auth_errors=sum(isinstance(e, AuthorizationError) for e in errors),
        )


# --- network flaps and leaks -------------------------------------------------------------------------


async def flaps(kind: str, *, count: int = 100, seed: int = 1) -> Row:
    """``count`` network drops in a row (half right after resubscribing, half at random moments: during
    the handshake, during auth), then a check that nothing leaked: asyncio tasks, sockets, RxPY
    observers, threads in the client process, and connections and subscriptions on the server."""
    rng = random.Random(seed)
    async with Stack(kind, users=1) as stack:
        assert stack.backend is not None
        assert stack.ws_proxy is not None
        user = stack.users[0]
        # Reconnect quickly: this scenario is about what survives many cycles, not about backoff.
        watcher = await stack.watch(user, backoff_initial=0.02, backoff_max=0.1, immediate_retry_jitter=0.02)
        ws = watcher.ws
        presence_subs: list[float] = []
        public_subs: list[float] = []
        ws.join("room.1").subscribed.subscribe(lambda _: presence_subs.append(time.monotonic()))
        ws.channel("news").subscribed.subscribe(lambda _: public_subs.append(time.monotonic()))

        def steady(n: int) -> bool:
            return len(watcher.subscribed_at) >= n and len(presence_subs) >= n and len(public_subs) >= n

        await until(lambda: steady(1), 15)
        # One warm-up flap so lazily created things (HTTP keep-alive pool...) exist before counting.
        await stack.ws_proxy.drop_all()
        await until(lambda: steady(2), 15)
        await stack.backend.notify(user.id, "App\\Notifications\\Tick", {"n": 0})  # warms the HTTP pool
        await stack.converge(15)
        await _settle(watcher)
        before = snapshot()
        publisher = Publisher(stack, 20)
        publisher.start()
        started = time.monotonic()
        n = 0
        for i in range(count):
            n = len(watcher.subscribed_at)
            await stack.ws_proxy.drop_all()
            if i % 2 == 0:  # wait for the full recovery, then drop again
                await until(lambda n=n: len(watcher.subscribed_at) > n, 30)
            else:  # drop again soon: mid-handshake, mid-auth or just subscribed
                await asyncio.sleep(rng.uniform(0, 0.05))
        healed = time.monotonic()
        target = n + 1  # one resubscription after the last drop (it may have happened already)
        await until(
            lambda: (
                steady(1)
                and len(watcher.subscribed_at) >= target
                and ws.current_state is ConnectionState.CONNECTED
            ),
            30,
        )
        recovery = time.monotonic() - healed
        await publisher.stop()
        await stack.converge(15)
        await _settle(watcher)
        after = snapshot()
        server_side = await server_channels(stack)
        row = make_row(
            f"{count} network flaps in a row",
            stack,
            "1 client, 3 channels, 20 ev/s",
            f"{count} RST drops in {time.monotonic() - started:.1f} s",
            recovery_s=recovery,
        )
        row.update(
            leaks=growth(before, after),
            before=before.as_dict(),
            after=after.as_dict(),
            server_channels=server_side,
            open_connections=stack.ws_proxy.open_connections,
        )
        return row


async def _settle(watcher: Any) -> None:
    """Let reloads and close handshakes finish so counts are taken in a quiet moment."""
    for _ in range(50):
        if not watcher._tasks:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)


# --- nothing lost -------------------------------------------------------------------------------------


async def nothing_lost(
    kind: str,
    *,
    rate: float = 500,
    disconnects: int = 20,
    duration: float = 4.0,
    clients: int = 3,
    seed: int = 2,
) -> Row:
    """The notification recipe (the real ``NotificationStore`` in a store app) under ``rate`` events/s
    with ``disconnects`` random drops: every notification the back end stored ends up in the store of
    its user, live or through the reload on re-subscription."""
    rng = random.Random(seed)
    async with Stack(kind, users=clients) as stack:
        for user in stack.users:
            await stack.watch_recipe(user)
        await stack.all_subscribed(1, 15)
        assert stack.ws_proxy is not None
        publisher = Publisher(stack, rate, workers=max(1, int(rate // 50)))
        started = time.monotonic()
        publisher.start()
        moments = sorted(rng.uniform(0.1, duration - 0.2) for _ in range(disconnects))
        for moment in moments:
            await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
            await stack.ws_proxy.drop_all()
        await asyncio.sleep(max(0.0, started + duration - time.monotonic()))
        await publisher.stop()
        elapsed = time.monotonic() - started
        healed = time.monotonic()
        await stack.converge(30)
        converged = time.monotonic() - healed
        return make_row(
            "nothing lost (notification recipe)",
            stack,
            f"{clients} users, {publisher.sent / elapsed:.0f} ev/s for {elapsed:.1f} s",
            f"{disconnects} random RST drops",
            recovery_s=converged,
            target_rate=rate,
            achieved_rate=round(publisher.sent / elapsed, 1),
        )


async def latency(
    kind: str,
    *,
    ms: float = 300,
    seconds: float = 4.0,
    activity_timeout: float = 1.0,
    pong_timeout: float = 1.0,
    rate: float = 20,
) -> Row:
    """A slow network (``ms`` each way, round trip below the pong timeout): the heartbeat must not
    mistake latency for a dead link, and every event still arrives live."""
    async with Stack(kind, users=1) as stack:
        assert stack.ws_proxy is not None
        watcher = await stack.watch(
            stack.users[0], activity_timeout=activity_timeout, pong_timeout=pong_timeout
        )
        await stack.all_subscribed(1, 15)
        stack.ws_proxy.delay(ms)
        connections = stack.ws_proxy.stats.connections
        sent_up = stack.ws_proxy.stats.bytes_up
        publisher = Publisher(stack, rate)
        publisher.start()
        await asyncio.sleep(seconds)
        await publisher.stop()
        await stack.converge(15)
        stack.ws_proxy.pass_through()
        return make_row(
            "high latency",
            stack,
            f"1 client, {rate:g} ev/s",
            f"{ms:g} ms each way for {seconds:g} s; activity {activity_timeout:g} s + pong "
            f"{pong_timeout:g} s",
            recovery_s=0.0,
            reconnects=stack.ws_proxy.stats.connections - connections,
            client_bytes_sent=stack.ws_proxy.stats.bytes_up - sent_up,
            resubscriptions=len(watcher.subscribed_at) - 1,
        )


async def cut_frames(kind: str, *, cuts: int = 5, rate: float = 100) -> Row:
    """The link dies in the middle of a frame (half of a chunk forwarded, then RST), ``cuts`` times or
    more (a reconnect made while the cut is armed is cut too):
    the partial frame must end the connection cleanly (no parse error surfaced as an event, no crash)
    and the reload brings back what was cut."""
    async with Stack(kind, users=1) as stack:
        assert stack.ws_proxy is not None
        watcher = await stack.watch(stack.users[0])
        errors: list[Exception] = []
        watcher.ws.errors.subscribe(errors.append)
        await stack.all_subscribed(1, 15)
        publisher = Publisher(stack, rate)
        publisher.start()
        recoveries = []
        for _ in range(cuts):
            await asyncio.sleep(0.2)
            done, subscriptions = stack.ws_proxy.stats.cuts, len(watcher.subscribed_at)
            stack.ws_proxy.cut("down")
            await until(lambda d=done: stack.ws_proxy is not None and stack.ws_proxy.stats.cuts > d, 10)
            stack.ws_proxy.pass_through()  # a reconnect fast enough may have been cut too: counted
            healed = time.monotonic()
            await until(lambda n=subscriptions: len(watcher.subscribed_at) > n, 15)
            recoveries.append(watcher.subscribed_at[-1] - healed)
        await asyncio.sleep(0.2)
        await publisher.stop()
        await stack.converge(15)
        protocol_errors = [e for e in errors if type(e).__name__ in {"ProtocolError", "CallbackError"}]
        return make_row(
            "connection cut mid-frame",
            stack,
            f"1 client, {rate:g} ev/s",
            f"{cuts} cuts (half a chunk, then RST)",
            recovery_s=percentiles(recoveries, (50, 100)),
            protocol_errors=len(protocol_errors),
            cuts=stack.ws_proxy.stats.cuts,
        )


async def connect_refused_hard(kind: str, *, seconds: float = 2.0) -> Row:
    """A closed port (real ``ECONNREFUSED``) for ``seconds``: failed attempts are reported as typed
    transport errors, not a crash, and the client is back when the port opens."""
    async with Stack(kind, users=1) as stack:
        watcher = await stack.watch(stack.users[0], backoff_initial=0.1, backoff_max=1.0)
        transport_errors: list[Exception] = []
        watcher.ws.errors.subscribe(
            lambda e: transport_errors.append(e) if isinstance(e, TransportError) else None
        )
        await stack.all_subscribed(1, 15)
        assert stack.ws_proxy is not None
        stack.ws_proxy.refuse()
        await stack.ws_proxy.drop_all()
        await asyncio.sleep(seconds)
        healed = time.monotonic()
        stack.ws_proxy.pass_through()
        back = await stack.all_subscribed(2, 30)
        return make_row(
            "port closed (ECONNREFUSED) for a while",
            stack,
            "1 client",
            f"closed {seconds:g} s",
            recovery_s=back - healed,
            transport_errors=len(transport_errors),
        )
