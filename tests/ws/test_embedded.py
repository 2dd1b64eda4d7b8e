"""The client against the embedded server (quvel_ws.server): features Soketi does not push over the socket,
and what needs a server the test controls (TLS, the container's API client, notifications)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from quvel_store import ServiceContainer
from quvel_ws import (
    NOTIFICATION_EVENT,
    CertificateError,
    ChannelEvent,
    ClientEventError,
    ConnectionState,
    ConnectionStatus,
    EchoEvent,
    InvalidArgument,
    InvalidEventName,
    NotConnected,
    PayloadTooLarge,
    PayloadValidationError,
    PresenceHandlers,
    Subscription,
    SubscriptionError,
    TransportError,
    WebSocketService,
)
from quvel_ws.server import AppConfig, PusherServer
from tests.peers import ROOT, require
from tests.ws.conftest import AuthServer
from tests.ws.helpers import Collector, until


async def test_subscription_count_events() -> None:
    app = AppConfig(subscription_count_events=True, subscription_count_interval=0.01)
    async with PusherServer(apps=[app], port=0) as server:
        first, second = WebSocketService(server.ws_url), WebSocketService(server.ws_url)
        try:
            counts = Collector(first.channel("lobby").subscription_count)
            await counts.wait(lambda c: 1 in c)
            other = Collector(second.channel("lobby").subscribed)
            await counts.wait(lambda c: c[-1] == 2)
            late = Collector(first.channel("lobby").subscription_count)  # the latest is replayed
            assert late.items == [2]
            other.dispose()
            await counts.wait(lambda c: c[-1] == 1)
        finally:
            await first.shutdown()
            await second.shutdown()


async def test_restart_with_4200_resubscribes_and_refires_subscribed() -> None:
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url, immediate_retry_jitter=0.05)
        try:
            ch = ws.channel("news")
            subscribed = Collector(ch.subscribed)
            got = Collector(ch.listen(".Tick"))
            await subscribed.first()
            await server.restart()  # closes every client with 4200, listens again on the same port
            await subscribed.count(2)
            await server.trigger("news", "Tick", {"n": 1})
            assert await got.first() == {"n": 1}
        finally:
            await ws.shutdown()


async def test_listen_to_all_names_events_like_laravel_echo() -> None:
    async with PusherServer(apps=[AppConfig(enable_client_events=True)], port=0) as server:
        ws, other = WebSocketService(server.ws_url), WebSocketService(server.ws_url, namespace="Acme")
        try:
            everything = Collector(ws.channel("news").listen_to_all())
            custom = Collector(other.channel("news").listen_to_all())
            subscribed = Collector(ws.channel("news").subscribed)
            await subscribed.first()
            await Collector(other.channel("news").subscribed).first()
            await server.trigger("news", "App\\Events\\Chat\\Sent", {"n": 1})
            await server.trigger("news", "order.shipped", {"n": 2})
            await server.trigger("news", "Acme\\Ping", "plain")
            items = await everything.count(3)
            assert [(e.name, e.event, e.data) for e in items] == [
                ("Chat\\Sent", "App\\Events\\Chat\\Sent", {"n": 1}),
                (".order.shipped", "order.shipped", {"n": 2}),
                (".Acme\\Ping", "Acme\\Ping", "plain"),
            ]
            assert all(type(e) is EchoEvent and isinstance(e, ChannelEvent) for e in items)
            assert all(e.channel == "news" for e in items)
            names = [e.name for e in await custom.count(3)]  # the service's own namespace is stripped
            assert names == [".App\\Events\\Chat\\Sent", ".order.shipped", "Ping"]
            # Echo's names feed straight back into listen(): the same wire events arrive
            again = Collector(ws.channel("news").listen(items[0].name))
            await server.trigger("news", "App\\Events\\Chat\\Sent", {"n": 3})
            assert await again.first() == {"n": 3}
        finally:
            await ws.shutdown()
            await other.shutdown()


async def test_notifications_on_public_and_private_notification_channels(auth_server: AuthServer) -> None:
    class Notice(BaseModel):
        id: str
        type: str
        text: str

    notice = {"id": "n1", "type": "App\\Notifications\\Shipped", "text": "on its way"}
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url, auth_endpoint=auth_server.url + "/broadcasting/auth")
        try:
            alerts = ws.channel("alerts", type="public_notification")
            typed = Collector(alerts.notifications(Notice))
            raw = Collector(alerts.notifications())
            await Collector(alerts.subscribed).first()
            got: list[Any] = []
            arrived = asyncio.Event()

            def on_notice(data: Any) -> None:
                got.append(data)
                arrived.set()

            sub = await ws.subscribe("App.Models.User.1", "privateNotification", callback=on_notice)
            assert sub.channel.name == "private-App.Models.User.1"
            await Collector(sub.channel.subscribed).first()
            assert auth_server.socket_ids("private-App.Models.User.1") == [ws.socket_id]
            await server.trigger("alerts", "App\\Events\\NewMessage", {"not": "a notification"})
            await server.trigger("alerts", NOTIFICATION_EVENT, notice)
            await server.trigger("private-App.Models.User.1", NOTIFICATION_EVENT, notice)
            assert await typed.first() == Notice(**notice)
            assert raw.items == [notice]  # the ordinary event is not a notification
            await asyncio.wait_for(arrived.wait(), 10)
            assert got == [notice]
            sub.unsubscribe()
        finally:
            await ws.shutdown()


async def test_container_ws_authorises_through_the_container_api(auth_server: AuthServer) -> None:
    """The container's ``ws`` is built from settings and POSTs channel auth through ``container.api``:
    the bearer token, the session cookie and Laravel's XSRF header go with it, as in the browser."""
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        container = ServiceContainer(config={"api_url": auth_server.url, "ws_url": server.ws_url})
        try:
            container.api.set_token("t0ken")
            container.api.client.cookies.set("laravel_session", "s1", domain="127.0.0.1")
            container.api.client.cookies.set("XSRF-TOKEN", "abc%3D", domain="127.0.0.1")
            ws = container.ws
            assert ws.http_client is container.api.client
            orders = ws.channel("orders.7", "private")
            got = Collector(orders.listen(".Shipped"))
            await Collector(orders.subscribed).first()
            (record,) = auth_server.records
            assert record.path == "/broadcasting/auth"
            assert record.form == {"socket_id": ws.socket_id, "channel_name": "private-orders.7"}
            assert record.headers["authorization"] == "Bearer t0ken"
            assert "laravel_session=s1" in record.headers["cookie"]
            assert record.headers["x-xsrf-token"] == "abc="
            await server.trigger("private-orders.7", "Shipped", {"id": 7})
            assert await got.first() == {"id": 7}
        finally:
            await container.shutdown()


async def test_connection_status_follows_a_restart_and_disconnect() -> None:
    S = ConnectionStatus
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url, immediate_retry_jitter=0.05)
        try:
            statuses = Collector(ws.connection_statuses)
            assert statuses.items == [S.DISCONNECTED]  # the current one, replayed
            await ws.connect(timeout=10)
            assert ws.connection_status() is S.CONNECTED
            await server.restart()  # 4200: the client reconnects
            await statuses.wait(lambda items: items[-3:] == [S.CONNECTED, S.CONNECTING, S.CONNECTED])
            await ws.disconnect()
            await statuses.wait(lambda items: items[-1] is S.DISCONNECTED)
            assert statuses.items == [
                S.DISCONNECTED,
                S.CONNECTING,
                S.CONNECTED,
                S.CONNECTING,
                S.CONNECTED,
                S.DISCONNECTED,
            ]  # distinct: no repeats
            assert ws.connection_status() is S.DISCONNECTED
        finally:
            await ws.shutdown()


async def test_a_model_validator_raising_any_exception_is_a_payload_error() -> None:
    """pydantic wraps ValueError and AssertionError, not TypeError: that one must not escape either."""

    class Strict(BaseModel):
        n: int

        @field_validator("n")
        @classmethod
        def odd(cls, value: int) -> int:
            if value % 2 == 0:
                raise TypeError("even numbers are not welcome")
            return value

    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url)
        try:
            ch = ws.channel("numbers")
            got = Collector(ch.listen(".N", Strict))
            batches = Collector(ch.listen_batches(".N", Strict))
            errors = Collector(ch.errors)
            await Collector(ch.subscribed).first()
            await server.trigger("numbers", "N", {"n": 2})
            await server.trigger("numbers", "N", {"n": 3})
            assert await got.first() == Strict(n=3)
            await batches.wait(lambda items: Strict(n=3) in [x for batch in items for x in batch])
            invalid = await errors.count(2)  # once per subscriber that validates
            assert all(isinstance(e, PayloadValidationError) for e in invalid)
            assert all(isinstance(e.__cause__, TypeError) for e in invalid)
            assert ws.current_state is ConnectionState.CONNECTED
        finally:
            await ws.shutdown()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert and key in one PEM file)."""
    require(shutil.which("openssl") is not None, "the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    pem = folder / "server.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pem.write_text((folder / "cert.pem").read_text() + (folder / "key.pem").read_text())
    return pem


async def test_wss_verifies_the_certificate_by_default(certificate: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate)
    async with PusherServer(apps=[AppConfig()], port=0, ssl=context) as server:
        assert server.ws_url.startswith("wss://")
        untrusted = WebSocketService(server.ws_url, backoff_initial=30, backoff_max=30)
        trusted = WebSocketService(server.ws_url, ca_file=str(certificate))
        try:
            errors = Collector(untrusted.errors)
            states = Collector(untrusted.state)
            untrusted.channel("news").subscribed.subscribe()
            error = await errors.first()  # the self-signed certificate is refused: TLS is really on
            assert isinstance(error, CertificateError)
            assert isinstance(error, TransportError)
            assert "certificate" in str(error).lower()
            assert "ca_file=" in str(error)
            await states.wait(lambda items: ConnectionState.FAILED in items, within=5)  # stopped, no retry
            with pytest.raises(CertificateError):
                await untrusted.connect(timeout=5)  # an explicit connect tries again, and fails again
            assert untrusted.current_state is ConnectionState.FAILED
            assert len(errors.items) == 2  # one attempt each time: nothing retried on a timer
            got = Collector(trusted.channel("news").listen(".Tick"))
            await Collector(trusted.channel("news").subscribed).first()
            await server.trigger("news", "Tick", {"over": "tls"})
            assert await got.first() == {"over": "tls"}
        finally:
            await untrusted.shutdown()
            await trusted.shutdown()


async def test_whisper_refusals_are_typed_and_the_connection_stays(auth_server: AuthServer) -> None:
    """docs/websockets.md's promise for ``whisper`` through the service (the core has its own tests)."""
    async with PusherServer(apps=[AppConfig(enable_client_events=True)], port=0) as server:
        ws = WebSocketService(server.ws_url, auth_endpoint=auth_server.url + "/broadcasting/auth")
        other = WebSocketService(server.ws_url, auth_endpoint=auth_server.url + "/broadcasting/auth")
        try:
            room, news = ws.channel("room", "private"), ws.channel("news")
            vault = ws.channel("vault", "encrypted")
            with pytest.raises(NotConnected):
                room.whisper("typing", 1)  # nothing connected yet: whispers are never queued
            for ch in (room, news, vault):
                await Collector(ch.subscribed).first()
            heard = Collector(other.channel("room", "private").listen_for_whisper("typing"))
            await Collector(other.channel("room", "private").subscribed).first()
            refusals: list[tuple[Any, type[Exception]]] = [
                (lambda: news.whisper("typing", 1), ClientEventError),  # public
                (lambda: vault.whisper("typing", 1), ClientEventError),  # encrypted
                (lambda: ws.channel("elsewhere", "private").whisper("typing", 1), ClientEventError),
                (lambda: room.whisper("typing", {1, 2}), InvalidArgument),
                (lambda: room.whisper("typing", "x" * 20_000), PayloadTooLarge),
                (lambda: room.whisper("t" * 300, 1), InvalidEventName),
            ]
            for call, expected in refusals:
                with pytest.raises(expected):
                    call()
            room.whisper("typing", {"still": "fine"})
            assert await heard.first() == {"still": "fine"}
            await ws.disconnect()
            with pytest.raises(NotConnected):
                room.whisper("typing", 1)
        finally:
            await ws.shutdown()
            await other.shutdown()


async def subscribed_once(sub: Subscription) -> None:
    """Wait until ``sub``'s channel is subscribed without holding the channel afterwards."""
    probe = Collector(sub.channel.subscribed)
    await probe.first()
    probe.dispose()


async def test_seed_subscribe_api_handlers_and_both_ways_to_unsubscribe(auth_server: AuthServer) -> None:
    """QuVel Kit's ``subscribe(channel_name, type, event, callback, presence_handlers)``: here/joining/
    leaving reach their handlers, ``ws.unsubscribe(sub)`` and ``sub.unsubscribe()`` release the
    channel on the server only when the last holder goes, and subscribing again never doubles a call."""
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        endpoint = auth_server.url + "/broadcasting/auth"
        ws, bob = WebSocketService(server.ws_url, auth_endpoint=endpoint), None
        try:
            here: list[list[str]] = []
            joined: list[str] = []
            left: list[str] = []
            messages: list[Any] = []
            arrived = asyncio.Event()

            def on_message(data: Any) -> None:
                messages.append(data)
                arrived.set()

            handlers = PresenceHandlers(
                on_here=lambda members: here.append([m.id for m in members]),
                on_joining=lambda m: joined.append(m.id),
                on_leaving=lambda m: left.append(m.id),
            )
            sub = await ws.subscribe(
                channel_name="presence-room.7",
                type="presence",
                event="NewMessage",
                callback=on_message,
                presence_handlers=handlers,
            )
            extra = await ws.subscribe("room.7", "presence")  # a second holder of the same channel
            await subscribed_once(sub)
            assert here == [["42"]]
            auth_server.user_id = "43"
            bob = WebSocketService(server.ws_url, auth_endpoint=endpoint)
            bob_sub = await bob.subscribe("presence-room.7", "presence")
            await subscribed_once(bob_sub)
            await until(lambda: joined == ["43"])
            bob_sub.unsubscribe()
            await until(lambda: left == ["43"])

            await server.trigger("presence-room.7", "App\\Events\\NewMessage", {"n": 1})
            await asyncio.wait_for(arrived.wait(), 10)
            ws.unsubscribe(sub)
            assert not sub.active
            sub.unsubscribe()  # idempotent
            assert "presence-room.7" in server.channels()  # `extra` still holds it
            extra.unsubscribe()
            await until(lambda: "presence-room.7" not in server.channels())

            arrived.clear()
            again = await ws.subscribe("presence-room.7", "presence", "NewMessage", on_message)
            await subscribed_once(again)
            await server.trigger("presence-room.7", "App\\Events\\NewMessage", {"n": 2})
            await asyncio.wait_for(arrived.wait(), 10)
            await server.trigger("presence-room.7", "App\\Events\\NewMessage", {"n": 3})
            await until(lambda: len(messages) >= 3)
            assert messages == [{"n": 1}, {"n": 2}, {"n": 3}]  # once each: nothing left over
            assert here == [["42"]]  # the old handlers are gone with their subscription
        finally:
            await ws.shutdown()
            if bob is not None:
                await bob.shutdown()


async def test_listen_to_all_skips_pusher_events_as_echo_does() -> None:
    """A cache channel's ``pusher:cache_miss`` reaches ``listen_raw`` but not ``listen_to_all``, which
    like laravel-echo's ``listenToAll`` leaves out every ``pusher:`` event."""
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url)
        try:
            everything = Collector(ws.channel("cache-prices").listen_to_all())
            miss = Collector(ws.channel("cache-prices").listen_raw("pusher:cache_miss"))
            assert await miss.first() is None
            await server.trigger("cache-prices", "Price", {"p": 1})
            items = await everything.first()
            assert (items.event, items.name, items.data) == ("Price", ".Price", {"p": 1})
            assert len(everything.items) == 1
        finally:
            await ws.shutdown()


async def test_echo_style_listen_callback_is_refused_at_the_call() -> None:
    """Issue 10 case 5: Echo's ``channel.listen(event, callback)`` took the callback as a model; nothing
    failed at the call and the callback never ran. Now the call itself says what to write instead."""
    ws = WebSocketService("ws://127.0.0.1:1/app/k")
    try:
        channel = ws.channel("updates")

        def on_update(payload: Any) -> None:
            raise AssertionError("never called")

        with pytest.raises(TypeError, match=r"listen\(event\)\.subscribe\(callback\)") as info:
            channel.listen("NewUpdate", on_update)
        assert isinstance(info.value, InvalidArgument)
        assert ws._hubs.hubs == {}  # nothing subscribed
        channel.listen("NewUpdate", list[int])  # a generic alias is a model, still taken
    finally:
        await ws.shutdown()


async def test_a_subscription_is_a_context_manager_and_a_disposable() -> None:
    """Issue 10 case 4: ``Subscription`` ends with ``with``/``async with`` and as a reactivex Disposable."""
    from reactivex.disposable import CompositeDisposable

    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url)
        try:
            with await ws.subscribe("news") as sub:
                await until(lambda: "news" in server.channels())
            assert not sub.active
            await until(lambda: "news" not in server.channels())
            async with await ws.subscribe("sport") as other:
                await until(lambda: "sport" in server.channels())
            assert not other.active
            await until(lambda: "sport" not in server.channels())
            group = CompositeDisposable(await ws.subscribe("weather"))
            await until(lambda: "weather" in server.channels())
            group.dispose()
            await until(lambda: "weather" not in server.channels())
        finally:
            await ws.shutdown()


async def test_listen_stops_on_an_untrusted_certificate_and_names_the_options(certificate: Path) -> None:
    """``quvel listen`` against a self-signed wss:// server: exits 1 within seconds (no retry loop),
    saying what is wrong and what to pass; with ``--cafile`` it connects."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate)
    async with PusherServer(apps=[AppConfig()], port=0, ssl=context) as server:

        async def listen(*extra: str) -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "quvel", "listen", server.ws_url, "--channel", "news", *extra,
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip

        proc = await listen()
        _, err = await asyncio.wait_for(proc.communicate(), 20)  # generous: the CLI starts in ~1 s
        message = err.decode()
        assert proc.returncode == 1
        assert "certificate" in message
        assert "--cafile" in message
        assert "--insecure" in message
        proc = await listen("--cafile", str(certificate))
        try:
            assert proc.stderr is not None
            line = await asyncio.wait_for(proc.stderr.readline(), 20)
            while b"subscribed to news" not in line:
                assert line, "quvel listen --cafile exited before subscribing"
                line = await asyncio.wait_for(proc.stderr.readline(), 20)
        finally:
            proc.kill()
            await proc.wait()


async def test_join_and_private_subscribe_at_once_so_whisper_works_after_subscribed(
    auth_server: AuthServer,
) -> None:
    """Issue 10 case 5: Echo's ``join()``/``private()``/``encryptedPrivate()`` subscribe when called, so
    ``ws.join("room").whisper(...)`` works once ``subscribed`` fired, with no listener of our own;
    ``leave()`` lets the channel go."""
    async with PusherServer(apps=[AppConfig(enable_client_events=True)], port=0) as server:
        endpoint = auth_server.url + "/broadcasting/auth"
        ws = WebSocketService(server.ws_url, auth_endpoint=endpoint)
        other = WebSocketService(server.ws_url, auth_endpoint=endpoint)
        try:
            heard = Collector(other.channel("room", "presence").listen_for_whisper("typing"))
            await Collector(other.channel("room", "presence").subscribed).first()
            room = ws.join("room")
            secret = ws.private("secret")
            vault = ws.encrypted_private("vault")
            await until(lambda: {"private-secret", "private-encrypted-vault"} <= set(server.channels()))
            subscribed = Collector(room.subscribed)
            await subscribed.first()
            subscribed.dispose()  # our only listener goes: join() still holds the channel
            room.whisper("typing", {"who": "me"})
            assert await heard.first() == {"who": "me"}
            for ch in (room, secret, vault):
                ch.leave()
            await until(lambda: "private-secret" not in server.channels())
            await until(lambda: "private-encrypted-vault" not in server.channels())
        finally:
            await ws.shutdown()
            await other.shutdown()


async def test_sub_ready_waits_for_the_servers_confirmation(auth_server: AuthServer) -> None:
    """``await ws.subscribe(...)`` returns at once; ``await sub.ready`` returns the confirmation, or raises
    the refusal (a 403 from the auth endpoint is not retried on a timer) or NotConnected once left."""
    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url, auth_endpoint=auth_server.url + "/broadcasting/auth")
        try:
            sub = await ws.subscribe("news")
            assert not sub.channel.is_subscribed  # returned before the server answered
            confirmed = await sub.ready
            assert confirmed.channel == "news"
            assert sub.channel.is_subscribed
            assert await sub.ready == confirmed  # again: the current confirmation at once
            auth_server.fail["private-vault"] = 403
            refused = await ws.subscribe("vault", "private")
            with pytest.raises(SubscriptionError) as info:
                await asyncio.wait_for(refused.ready, 10)
            assert info.value.status == 403
            sub.unsubscribe()
            with pytest.raises(NotConnected):
                await sub.ready
        finally:
            await ws.shutdown()


async def test_the_owner_hook_adopts_what_is_opened_while_it_names_an_owner() -> None:
    """``ws.owner`` (the host application's hook, which quvel_store's container sets) gets every handle,
    channel subscription and eager join opened while it returns an owner; ending the owner leaves."""
    from reactivex.disposable import CompositeDisposable

    async with PusherServer(apps=[AppConfig()], port=0) as server:
        ws = WebSocketService(server.ws_url)
        current: list[CompositeDisposable] = []
        ws.owner = lambda: current[-1] if current else None
        try:
            group = CompositeDisposable()
            current.append(group)
            sub = await ws.subscribe("a", event=".E", callback=lambda _: None)
            ws.channel("b").listen(".E").subscribe(on_next=lambda _: None)
            assert len(group) == 2  # one handle (its parts are its own), one channel subscription
            current.clear()
            kept = await ws.subscribe("c")
            await until(lambda: {"a", "b", "c"} <= set(server.channels()))
            group.dispose()
            assert not sub.active
            await until(lambda: not {"a", "b"} & set(server.channels()))
            assert "c" in server.channels()
            assert kept.active
        finally:
            await ws.shutdown()
