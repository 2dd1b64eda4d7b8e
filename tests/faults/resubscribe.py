"""Fault scenarios of issue 11 ("Nothing lost, proven"): faults that hit a client while it (re)subscribes.
Sized by their arguments like :mod:`tests.faults.scenarios` (CI short, ``benchmarks/reliability.py``
long); each returns one row of ``docs/reliability.md``'s table and asserts nothing itself.

They run against the embedded server, Soketi and the Reverb-like scripted server
(``tests/ws/reverb_server.py``), behind the fault proxy, with the simulated Laravel back end.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from quvel_ws import AuthorizationError, CertificateError, ConnectionState
from tests.faults.harness import Publisher, Stack, Watcher
from tests.faults.proxy import FaultProxy
from tests.faults.scenarios import Row, make_row, until
from tests.peers import APP_KEY
from tests.security.certs import make_pki

# --- the app's API fails while the clients reload --------------------------------------------------------


async def api_unavailable(
    kind: str,
    *,
    clients: int = 3,
    rate: float = 60,
    api_down: float = 3.0,
    server_down: float = 0.5,
    hang: bool = False,
    api_timeout: float = 1.0,
    settle: float = 1.0,
    sync_within: float = 30.0,
) -> Row:
    """A deploy: the server is killed (SIGKILL) and the app's API with it; the server is back after
    ``server_down`` s, the API ``api_down`` s later (until then it answers 503, or with ``hang=True`` does
    not answer, so requests time out after ``api_timeout``). The recipe's stores resubscribe, their
    reloads fail, and they must retry until the API is back: every notification in its store once."""
    async with Stack(kind, users=clients) as stack:
        assert stack.backend is not None
        backend = stack.backend
        watchers = [
            await stack.watch_recipe(user, config={"api_timeout": api_timeout}) for user in stack.users
        ]
        failures: list[Any] = []
        synced_at: dict[int, list[float]] = {w.user.id: [] for w in watchers}
        for w in watchers:
            w.store.errors.subscribe(lambda event: failures.append(event.error))
            times = synced_at[w.user.id]
            w.store.synced.statuses.subscribe(
                lambda status, t=times: t.append(time.monotonic()) if status == "synced" else None
            )
        await stack.all_subscribed(1, 15)
        await until(lambda: all(w.store.sync_status == "synced" for w in watchers), 15)
        publisher = Publisher(stack, rate, workers=max(1, int(rate // 50)))
        publisher.start()
        await asyncio.sleep(settle)
        backend.api_unavailable(3600, hang=hang)  # the app goes down with the server...
        down_at = time.monotonic()
        up = await stack.restart_server(hard=True, down_for=server_down)
        backend.api_unavailable(api_down, hang=hang)  # ...and is back api_down s after the server
        healed = up + api_down
        await stack.all_subscribed(2, 30)
        server_back = time.monotonic() - down_at
        await until(lambda: time.monotonic() >= healed, api_down + 5)
        try:
            await until(lambda: all(t and t[-1] >= healed for t in synced_at.values()), sync_within)
            synced_after: float | None = round(max(t[-1] for t in synced_at.values()) - healed, 3)
        except TimeoutError:
            synced_after = None  # some store never caught up: the row shows what it lacks
        await asyncio.sleep(settle)
        await publisher.stop()
        if synced_after is not None:
            await stack.converge(30)
        failed_reloads = sum(type(e).__name__ == "ResyncFailed" for e in failures)
        mode = f"hangs (client timeout {api_timeout:g} s)" if hang else "answers 503"
        return make_row(
            "app API down during the reload" + (" (timeouts)" if hang else " (503)"),
            stack,
            f"{clients} clients, {rate:g} ev/s",
            f"server killed, back after {server_down:g} s; API {mode} until {api_down:g} s later",
            recovery_s=synced_after,
            server_back_s=round(server_back, 3),
            failed_reloads=failed_reloads,
            api_refused=backend.stats.api_refused,
        )


# --- the auth endpoint is slow or failing while the clients resubscribe -----------------------------------


async def auth_resubscribe(
    kind: str,
    *,
    clients: int = 3,
    rate: float = 60,
    failing: bool = False,
    delay: float = 1.5,
    auth_down: float = 2.0,
    settle: float = 0.5,
    recover_within: float = 30.0,
) -> Row:
    """Every socket drops (RST) and the clients resubscribe while ``/broadcasting/auth`` is slow (each
    answer ``delay`` s late) or failing (503) for ``auth_down`` s; the app's API stays up. The private
    subscriptions must come back on their own once auth answers again, and the recipe's stores must hold
    every notification exactly once. Recovery: until every client is resubscribed, from auth being
    healthy again (failing), or from the drop (slow)."""
    async with Stack(kind, users=clients) as stack:
        assert stack.backend is not None
        assert stack.ws_proxy is not None
        backend = stack.backend
        watchers = [await stack.watch_recipe(user) for user in stack.users]
        errors: list[Exception] = []
        for w in watchers:
            w.container.ws.errors.subscribe(errors.append)
        await stack.all_subscribed(1, 15)
        publisher = Publisher(stack, rate, workers=max(1, int(rate // 50)))
        publisher.start()
        await asyncio.sleep(settle)
        backend.auth_unavailable(auth_down, status=503 if failing else 200, delay=0.0 if failing else delay)
        dropped = time.monotonic()
        # failing: measured from auth's return; slow: from the drop (the resubscribe waits for slow auth)
        healed = dropped + auth_down if failing else dropped
        await stack.ws_proxy.drop_all()
        try:
            back = await stack.all_subscribed(2, recover_within)
            recovery: float | None = round(max(0.0, back - healed), 3)
        except TimeoutError:
            recovery = None
        await asyncio.sleep(settle)
        await publisher.stop()
        if recovery is not None:
            await stack.converge(30)
        mode = "answers 503" if failing else f"answers {delay:g} s late"
        return make_row(
            "auth endpoint " + ("failing" if failing else "slow") + " during resubscribe",
            stack,
            f"{clients} clients, {rate:g} ev/s",
            f"all sockets dropped; /broadcasting/auth {mode} for {auth_down:g} s",
            recovery_s=recovery,
            auth_slowed=backend.stats.auth_refused,
            auth_errors=sum(isinstance(e, AuthorizationError) for e in errors),
        )


# --- kill -9 while presence members join --------------------------------------------------------------


async def presence_kill(
    kind: str,
    *,
    clients: int = 4,
    rate: float = 40,
    down_for: float = 0.5,
    join_gap: float = 0.05,
    consistent_within: float = 30.0,
) -> Row:
    """Half the clients are in ``presence-room.1``; the other half join one after another while the
    server is SIGKILLed in the middle of the joins. After the restart every client must see the same
    members, exactly the clients (no ghost of a dead socket, nobody missing), and every notification.
    Recovery: from the server being back until every member list is complete."""
    async with Stack(kind, users=clients) as stack:
        watchers = [await stack.watch(user) for user in stack.users]
        rosters: dict[int, list[set[str]]] = {w.user.id: [] for w in watchers}
        expected = {str(w.user.id) for w in watchers}
        first, second = watchers[: clients // 2], watchers[clients // 2 :]

        def join(w: Watcher) -> None:
            seen = rosters[w.user.id]
            w.ws.join("room.1").members.subscribe(lambda m: seen.append({member.id for member in m}))

        for w in first:
            join(w)
        await stack.all_subscribed(1, 15)
        await until(
            lambda: all(
                r and r[-1] == {str(w.user.id) for w in first} for r in (rosters[w.user.id] for w in first)
            ),
            15,
        )
        publisher = Publisher(stack, rate)
        publisher.start()
        killed = asyncio.get_running_loop().create_task(stack.restart_server(hard=True, down_for=down_for))
        for w in second:  # the joins straddle the kill: some reach the old process, some the new
            join(w)
            await asyncio.sleep(join_gap)
        up = await killed
        try:
            await until(lambda: all(r and r[-1] == expected for r in rosters.values()), consistent_within)
            recovery: float | None = round(time.monotonic() - up, 3)
        except TimeoutError:
            recovery = None
        await asyncio.sleep(0.3)
        await publisher.stop()
        await stack.converge(30)
        final = [r[-1] if r else set() for r in rosters.values()]
        return make_row(
            "server killed (SIGKILL) while presence members join",
            stack,
            f"{clients} clients ({clients - clients // 2} joining), {rate:g} ev/s",
            f"1 kill during the joins, down {down_for:g} s",
            recovery_s=recovery,
            members_consistent=all(m == expected for m in final),
            members_expected=len(expected),
            members_seen=sorted(len(m) for m in final),
        )


# --- a network blackhole while a subscribe is in flight -------------------------------------------------


async def blackhole_subscribe(
    kind: str,
    *,
    rate: float = 40,
    auth_delay: float = 0.5,
    hold: float = 2.0,
    activity_timeout: float = 1.0,
    pong_timeout: float = 1.0,
) -> Row:
    """The socket is open, the private channel's auth is on its way (answered ``auth_delay`` s late), and
    the network goes silent: the ``pusher:subscribe`` goes into a blackhole and never gets an answer.
    The client must notice the dead link, come back once the network heals, subscribe and reload; no
    notification is lost. Recovery: from the heal until subscribed."""
    async with Stack(kind, users=1) as stack:
        assert stack.backend is not None
        assert stack.ws_proxy is not None
        proxy = stack.ws_proxy
        stack.backend.auth_unavailable(3600, status=200, delay=auth_delay)
        publisher = Publisher(stack, rate)
        publisher.start()
        watcher = await stack.watch(
            stack.users[0],
            activity_timeout=activity_timeout,
            pong_timeout=pong_timeout,
            connect_timeout=1.0,
            handshake_timeout=1.0,
        )
        states: list[tuple[float, ConnectionState]] = []
        armed = [True]

        def on_state(state: ConnectionState) -> None:
            states.append((time.monotonic(), state))
            if state is ConnectionState.CONNECTED and armed[0]:
                armed[0] = False
                proxy.blackhole()  # connected, the subscribe is waiting for its auth: silence now

        watcher.ws.state.subscribe(on_state)
        await until(lambda: proxy.mode == "blackhole", 15)
        blackholed = time.monotonic()
        await until(lambda: stack.backend is not None and stack.backend.stats.auth_refused >= 1, 15)
        await asyncio.sleep(auth_delay + hold)  # the subscribe went into the blackhole
        subscribed_in_blackhole = len(watcher.subscribed_at)
        noticed = [
            t - blackholed for t, s in states if t >= blackholed and s is not ConnectionState.CONNECTED
        ]
        stack.backend.auth_unavailable(0)
        healed = time.monotonic()
        proxy.pass_through()
        back = await stack.all_subscribed(1, 30)
        await asyncio.sleep(0.5)
        await publisher.stop()
        await stack.converge(15)
        return make_row(
            "blackhole during a subscribe",
            stack,
            f"1 client, {rate:g} ev/s",
            f"silence after connect, subscribe in flight; held {auth_delay + hold:g} s; activity "
            f"{activity_timeout:g} s + pong {pong_timeout:g} s",
            recovery_s=round(back - healed, 3),
            subscribed_in_blackhole=subscribed_in_blackhole,
            detection_s=round(noticed[0], 3) if noticed else None,
            detection_limit_s=activity_timeout + pong_timeout,
        )


# --- a wrong TLS certificate --------------------------------------------------------------------------


async def tls_wrong(kind: str, *, rate: float = 40, watch_for: float = 3.0) -> Row:
    """The server sits behind TLS (a terminating proxy) with a certificate the client does not trust.
    The client must stop with a :class:`CertificateError` (state ``failed``) after one attempt, with no
    retry loop, while notifications go on being stored by the app. Then the operator fixes the trust
    (``ca_file=``): the fixed client subscribes and its reload brings every one of them. Recovery: from
    the fix until subscribed; the stop is reported as ``stopped_after_s``."""
    async with Stack(kind, users=1) as stack:
        user = stack.users[0]
        assert stack.backend is not None
        with tempfile.TemporaryDirectory() as tmp:
            pki = make_pki(Path(tmp))
            async with (
                FaultProxy("127.0.0.1", stack.server.port, ssl=pki.server_context()) as tls,
                FaultProxy(
                    "127.0.0.1", tls.port
                ) as tcp,  # counts TCP connects (TLS fails before tls sees one)
            ):
                url = f"wss://127.0.0.1:{tcp.port}/app/{APP_KEY}"
                publisher = Publisher(stack, rate)
                publisher.start()
                started = time.monotonic()
                wrong, api = stack.service(user, url=url)
                errors: list[Exception] = []
                wrong.errors.subscribe(errors.append)
                wrong.channel(stack.backend.notification_channel(user.id))
                try:
                    with contextlib.suppress(CertificateError):
                        await wrong.connect(timeout=10)
                    await until(lambda: any(isinstance(e, CertificateError) for e in errors), 10)
                    stopped = time.monotonic() - started
                    await asyncio.sleep(watch_for)  # a retry loop would show here as more connections
                    attempts = tcp.stats.accepted
                    state = wrong.current_state.value
                finally:
                    await wrong.shutdown()
                    await api.aclose()
                fixed_at = time.monotonic()
                await stack.watch(user, url=url, ca_file=str(pki.ca_cert))
                back = await stack.all_subscribed(1, 15)
                await asyncio.sleep(0.5)
                await publisher.stop()
                await stack.converge(15)
        return make_row(
            "TLS certificate not trusted",
            stack,
            f"1 client, {rate:g} ev/s",
            f"self-signed CA not in the client's trust; fixed with ca_file= after {watch_for:g} s",
            recovery_s=round(back - fixed_at, 3),
            stopped_after_s=round(stopped, 3),
            tls_attempts=attempts,
            watched_s=watch_for,
            client_state=state,
            certificate_errors=sum(isinstance(e, CertificateError) for e in errors),
        )
