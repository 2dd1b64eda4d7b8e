"""laravel-echo naming rules (the EventFormatter cases of laravel/echo's own tests) and service options."""

from __future__ import annotations

from typing import Any

import pytest

from quvel_ws import (
    ChannelType,
    ConnectionState,
    ConnectionStatus,
    InvalidArgument,
    InvalidChannelName,
    InvalidEventName,
    WebSocketService,
)
from quvel_ws.client._echo import (
    NOTIFICATION_EVENT,
    connection_status,
    echo_event_name,
    format_event,
    full_channel_name,
    leave_names,
    whisper_event,
)
from quvel_ws.client._url import build_ws_url


@pytest.mark.parametrize(
    ("event", "namespace", "expected"),
    [
        ("Users.UserCreated", "App.Events", "App\\Events\\Users\\UserCreated"),
        (".App\\Users\\UserCreated", "App.Events", "App\\Users\\UserCreated"),
        ("\\App\\Users\\UserCreated", "App.Events", "App\\Users\\UserCreated"),
        (".users.created", "App.Events", "users.created"),
        ("Users.UserCreated", None, "Users\\UserCreated"),
        ("NewMessage", "App.Events", "App\\Events\\NewMessage"),
    ],
)
def test_event_formatter(event: str, namespace: str | None, expected: str) -> None:
    assert format_event(event, namespace) == expected


@pytest.mark.parametrize(
    ("wire", "namespace", "expected"),
    [
        # laravel-echo's listenToAll: the namespace stripped, or '.' + the wire name outside it
        ("App\\Events\\NewMessage", "App.Events", "NewMessage"),
        ("App\\Events\\Chat\\Sent", "App.Events", "Chat\\Sent"),
        ("order.shipped", "App.Events", ".order.shipped"),
        ("client-typing", "App.Events", ".client-typing"),
        (NOTIFICATION_EVENT, "App.Events", "." + NOTIFICATION_EVENT),
        ("Acme\\Ping", "Acme", "Ping"),
        # where Echo slips (no separator check; the bare namespace) we keep the name whole
        ("App\\EventsLog", "App.Events", ".App\\EventsLog"),
        ("App\\Events\\", "App.Events", ".App\\Events\\"),
        ("App\\Events\\NewMessage", None, ".App\\Events\\NewMessage"),
    ],
)
def test_echo_event_name_is_listen_to_alls_name_and_round_trips(
    wire: str, namespace: str | None, expected: str
) -> None:
    name = echo_event_name(wire, namespace)
    assert name == expected
    assert format_event(name, namespace) == wire


@pytest.mark.parametrize("bad", ["", ".", "x" * 250])
def test_bad_event_names(bad: str) -> None:
    with pytest.raises(InvalidEventName):
        format_event(bad)


def test_notification_and_whisper_names() -> None:
    assert NOTIFICATION_EVENT == "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated"
    assert whisper_event("typing") == "client-typing"
    assert whisper_event("client-typing") == "client-typing"


@pytest.mark.parametrize(
    ("name", "type", "full", "kind"),
    [
        ("news", "public", "news", ChannelType.PUBLIC),
        ("orders.1", "private", "private-orders.1", ChannelType.PRIVATE),
        ("private-orders.1", "private", "private-orders.1", ChannelType.PRIVATE),
        ("room.7", "presence", "presence-room.7", ChannelType.PRESENCE),
        ("presence-room.7", "presence", "presence-room.7", ChannelType.PRESENCE),
        ("vault", "encrypted", "private-encrypted-vault", ChannelType.ENCRYPTED),
        (
            "App.Models.User.1",
            "privateNotification",
            "private-App.Models.User.1",
            ChannelType.PRIVATE_NOTIFICATION,
        ),
        (
            "App.Models.User.1",
            "private_notification",
            "private-App.Models.User.1",
            ChannelType.PRIVATE_NOTIFICATION,
        ),
        ("alerts", "public_notification", "alerts", ChannelType.PUBLIC_NOTIFICATION),
        ("presence-room", None, "presence-room", ChannelType.PRESENCE),
        ("private-encrypted-v", None, "private-encrypted-v", ChannelType.ENCRYPTED),
    ],
)
def test_channel_prefixes(name: str, type: str | None, full: str, kind: ChannelType) -> None:
    assert full_channel_name(name, type) == (full, kind)


@pytest.mark.parametrize(
    ("name", "type"),
    [
        ("presence-room", "private"),
        ("private-x", "public"),
        ("bad name", None),
        ("", "public"),
        ("x" * 201, None),
        ("#server-to-user-1", None),  # reserved for the server, as pusher-js refuses it
    ],
)
def test_contradictory_or_invalid_channel_names(name: str, type: str | None) -> None:
    with pytest.raises(InvalidChannelName):
        full_channel_name(name, type)


def test_unknown_type_and_leave_variants() -> None:
    with pytest.raises(InvalidArgument, match="unknown channel type"):
        ChannelType.parse("secret")
    assert leave_names("room") == ("room", "private-room", "private-encrypted-room", "presence-room")


def test_url_validation_and_options() -> None:
    assert (
        build_ws_url("ws://h:6001/app/key")
        == "ws://h:6001/app/key?protocol=7&client=python-quvel&version="
        + build_ws_url("ws://h/app/k").split("=")[-1]
    )
    for bad in ("http://h/app/k", "ws://h/nope", "ws:///app/k", "ws://h:99999/app/k"):
        with pytest.raises(InvalidArgument):
            WebSocketService(bad, server_rendering=True)
    with pytest.raises(InvalidArgument, match="unknown option"):
        WebSocketService("ws://h/app/k", server_rendering=True, activty_timeout=3)
    with pytest.raises(InvalidArgument):
        WebSocketService("ws://h/app/k", server_rendering=True, pong_timeout=-1)
    ws = WebSocketService.from_settings(
        {"key": "k", "host": "example.com", "scheme": "https"}, server_rendering=True
    )
    assert ws.url.startswith("wss://example.com:443/app/k?")


def test_connection_status_maps_states_like_echos_pusher_connector() -> None:
    assert {state: connection_status(state) for state in ConnectionState} == {
        ConnectionState.INITIALIZED: ConnectionStatus.DISCONNECTED,
        ConnectionState.CONNECTING: ConnectionStatus.CONNECTING,
        ConnectionState.CONNECTED: ConnectionStatus.CONNECTED,
        ConnectionState.UNAVAILABLE: ConnectionStatus.FAILED,
        ConnectionState.FAILED: ConnectionStatus.FAILED,
        ConnectionState.DISCONNECTED: ConnectionStatus.DISCONNECTED,
    }
    ws = WebSocketService("ws://127.0.0.1:1/app/k", server_rendering=True)
    assert ws.connection_status() == "disconnected"


async def test_bad_arguments_are_typed_errors() -> None:
    """Every public entry point refuses a wrong argument with a typed error (never a TypeError,
    AttributeError or pydantic's schema error), and nothing was subscribed by the failed call."""
    ws = WebSocketService("ws://127.0.0.1:1/app/k")
    try:
        ch: Any = ws.channel("private-x", "private")  # Any: the calls below break the type hints on purpose
        loose: Any = ws
        service: Any = WebSocketService
        cases: dict[str, tuple[Any, type[Exception]]] = {
            "listen model=123": (lambda: ch.listen("E", 123), InvalidArgument),
            "listen model='Order'": (lambda: ch.listen("E", "Order"), InvalidArgument),
            "listen_raw(5)": (lambda: ch.listen_raw(5), InvalidEventName),
            "listen_raw('')": (lambda: ch.listen_raw(""), InvalidEventName),
            "listen_raw(too long)": (lambda: ch.listen_raw("e" * 201), InvalidEventName),
            "leave(None)": (lambda: loose.leave(None), InvalidChannelName),
            "leave_channel(5)": (lambda: loose.leave_channel(5), InvalidChannelName),
            "namespace=5": (lambda: service("ws://h/app/k", namespace=5), InvalidArgument),
            "max_message_bytes=-1": (
                lambda: service("ws://h/app/k", max_message_bytes=-1),
                InvalidArgument,
            ),
        }
        for label, (call, expected) in cases.items():
            with pytest.raises(expected):
                call()
            assert ws._hubs.hubs == {}, label
        with pytest.raises(InvalidChannelName):
            await loose.subscribe(5, "private")
        with pytest.raises(InvalidChannelName):
            await loose.subscribe(None)
        assert ws._hubs.hubs == {}
    finally:
        await ws.shutdown()
