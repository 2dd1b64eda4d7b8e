"""pysher 1.0.8 (the most downloaded Python Pusher client, protocol 6) against ``quvel serve``.

Everything pysher can do passes: public channels; private channels signed locally (pysher's ``secret``)
or through an auth endpoint (``auth_endpoint`` + a bearer token, refused for a guest); presence signed
locally (members added and removed); client events on private and presence channels. What pysher
cannot do, checked here as pysher's failure and not the server's (docs/security.md, "pysher"):

- presence through an auth endpoint: pysher form-encodes ``user_data`` as its keys, ignores the
  ``channel_data`` the endpoint signed and sends ``json.dumps(user_data)`` instead, so the signature
  never matches (Laravel and :class:`AuthEndpoint` sign compact JSON, ``json.dumps`` puts a space
  after every ``:``). The server answers AuthError, as Pusher does. A 10-line subclass that forwards
  the endpoint's ``channel_data`` joins fine (:class:`ForwardsChannelData`).

pysher drops any channel event that arrives before its ``Channel`` object exists (``subscribe`` sends
first and creates the object after), so :class:`Recording` watches pysher's one channel-event entry
point instead of binding per channel after the fact.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Iterator
from typing import Any

import pusher
import pysher  # in the dev extra: a missing pysher is an error, never a skip
import pytest
import requests

from quvel_ws.auth import AuthEndpoint
from tests.security.abuse import serve

SECRET = "abuse-secret"  # what tests.security.abuse.serve starts with
USERS = {"token-ann": {"id": 1, "name": "Ann"}, "token-bob": {"id": 2, "name": "Bob"}}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quvel_serve() -> Iterator[dict[str, Any]]:
    with serve("--enable-client-events") as (_proc, info, _lines):
        yield info


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AuthEndpoint]:
    auth = AuthEndpoint("app-key", SECRET, users=USERS)
    with auth.start_in_thread():
        yield auth


class Recording(pysher.Pusher):  # type: ignore[misc]
    """pysher, with every channel event it receives (and would route) put in a queue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seen: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        super().__init__(*args, **kwargs)

    def _connection_handler(self, event_name: str, data: Any, channel_name: str) -> None:
        self.seen.put((channel_name, event_name, data))
        super()._connection_handler(event_name, data, channel_name)


class ForwardsChannelData(Recording):
    """The workaround for presence through an auth endpoint: send the endpoint's ``channel_data``."""

    def subscribe(self, channel_name: str, auth: str | None = None) -> Any:
        if not channel_name.startswith("presence-") or auth is not None:
            return super().subscribe(channel_name, auth)
        answer = requests.post(
            self.auth_endpoint,
            data={"socket_id": self.connection.socket_id, "channel_name": channel_name},
            headers=self.auth_endpoint_headers,
            timeout=10,
        )
        answer.raise_for_status()
        signed = answer.json()
        data = {"channel": channel_name, "auth": signed["auth"], "channel_data": signed["channel_data"]}
        self.connection.send_event("pusher:subscribe", data)
        self.channels[channel_name] = pysher.channel.Channel(channel_name, self.connection)
        return self.channels[channel_name]


# pysher's disconnect() joins its socket thread with no timeout, and under websocket-client 1.9 that
# thread sometimes stays in select() after close: the tests pass a timeout (the threads are daemons).


def connect(info: dict[str, Any], cls: type[Recording] = Recording, **options: Any) -> Recording:
    connected: queue.Queue[str] = queue.Queue()
    client = cls(
        "app-key",
        custom_host="127.0.0.1",
        port=info["port"],
        secure=False,
        log_level=logging.WARNING,
        **options,
    )
    client.connection.bind("pusher:connection_established", connected.put)
    client.connect()
    connected.get(timeout=10)
    return client


def expect(client: Recording, channel: str, event: str, within: float = 10) -> Any:
    """The data of the next ``event`` on ``channel`` (other events are passed over)."""
    deadline = time.monotonic() + within
    while True:
        got = client.seen.get(timeout=max(0.01, deadline - time.monotonic()))
        if got[:2] == (channel, event):
            return got[2]


def nothing(client: Recording, channel: str, event: str, within: float = 0.5) -> None:
    with pytest.raises(queue.Empty):
        expect(client, channel, event, within)


def sdk(info: dict[str, Any]) -> pusher.Pusher:
    return pusher.Pusher(
        app_id="1", key="app-key", secret=SECRET, host="127.0.0.1", port=info["port"], ssl=False
    )


def members(info: dict[str, Any], channel: str) -> list[str]:
    return sorted(u["id"] for u in sdk(info).users_info(channel)["users"])


def test_pysher_connects_with_protocol_6_and_receives_public_events(quvel_serve: Any) -> None:
    client = connect(quvel_serve)
    try:
        client.subscribe("news")
        expect(client, "news", "pusher_internal:subscription_succeeded")
        sdk(quvel_serve).trigger("news", "NewUpdate", {"x": 1})
        assert json.loads(expect(client, "news", "NewUpdate")) == {"x": 1}  # pysher leaves data a string
    finally:
        client.disconnect(timeout=2)


def test_pysher_private_channel_signed_locally(quvel_serve: Any) -> None:
    client = connect(quvel_serve, secret=SECRET)
    try:
        client.subscribe("private-orders")
        expect(client, "private-orders", "pusher_internal:subscription_succeeded")
        sdk(quvel_serve).trigger("private-orders", "Shipped", {"id": 7})
        assert json.loads(expect(client, "private-orders", "Shipped")) == {"id": 7}
    finally:
        client.disconnect(timeout=2)


def test_pysher_private_channel_through_the_auth_endpoint(quvel_serve: Any, endpoint: AuthEndpoint) -> None:
    client = connect(
        quvel_serve, auth_endpoint=endpoint.url, auth_endpoint_headers={"Authorization": "Bearer token-ann"}
    )
    try:
        client.subscribe("private-orders.1")
        expect(client, "private-orders.1", "pusher_internal:subscription_succeeded")
        sdk(quvel_serve).trigger("private-orders.1", "Shipped", {"id": 8})
        assert json.loads(expect(client, "private-orders.1", "Shipped")) == {"id": 8}
        assert endpoint.requests[-1] == (
            "/broadcasting/auth",
            {"channel_name": "private-orders.1", "socket_id": client.connection.socket_id},
            200,
        )
    finally:
        client.disconnect(timeout=2)


def test_pysher_guest_is_refused_by_the_auth_endpoint(quvel_serve: Any, endpoint: AuthEndpoint) -> None:
    client = connect(quvel_serve, auth_endpoint=endpoint.url)  # no bearer token: a guest
    try:
        with pytest.raises(AssertionError, match="Failed to get auth token"):  # pysher's way to say 403
            client.subscribe("private-orders.1")
        assert endpoint.requests[-1][2] == 403
    finally:
        client.disconnect(timeout=2)


def test_pysher_presence_signed_locally_sees_members_join_and_leave(quvel_serve: Any) -> None:
    ann = connect(quvel_serve, secret=SECRET, user_data={"user_id": "1", "user_info": {"name": "Ann"}})
    bob = connect(quvel_serve, secret=SECRET, user_data={"user_id": "2", "user_info": {"name": "Bob"}})
    try:
        ann.subscribe("presence-room")
        here = json.loads(expect(ann, "presence-room", "pusher_internal:subscription_succeeded"))
        assert here["presence"] == {"ids": ["1"], "hash": {"1": {"name": "Ann"}}, "count": 1}
        bob.subscribe("presence-room")
        both = json.loads(expect(bob, "presence-room", "pusher_internal:subscription_succeeded"))
        assert sorted(both["presence"]["ids"]) == ["1", "2"]
        added = expect(ann, "presence-room", "pusher_internal:member_added")
        assert json.loads(added) == {"user_id": "2", "user_info": {"name": "Bob"}}
        assert members(quvel_serve, "presence-room") == ["1", "2"]
        bob.disconnect(timeout=2)
        assert json.loads(expect(ann, "presence-room", "pusher_internal:member_removed")) == {"user_id": "2"}
    finally:
        ann.disconnect(timeout=2)
        bob.disconnect(timeout=2)


@pytest.mark.parametrize("channel", ["private-chat", "presence-chat"])
def test_pysher_client_events_reach_the_other_members(quvel_serve: Any, channel: str) -> None:
    a = connect(quvel_serve, secret=SECRET, user_data={"user_id": "1"})
    b = connect(quvel_serve, secret=SECRET, user_data={"user_id": "2"})
    try:
        chats = [client.subscribe(channel) for client in (a, b)]
        for client in (a, b):
            expect(client, channel, "pusher_internal:subscription_succeeded")
        chats[0].trigger("client-typing", {"who": "a"})
        assert expect(b, channel, "client-typing") == {"who": "a"}  # sent as an object, relayed as one
        chats[1].trigger("client-typing", {"who": "b"})
        assert expect(a, channel, "client-typing") == {"who": "b"}
        nothing(a, channel, "client-typing")  # not echoed to the sender (Pusher's rule)
    finally:
        a.disconnect(timeout=2)
        b.disconnect(timeout=2)


def test_pysher_presence_through_an_auth_endpoint_is_refused_because_pysher_resigns_nothing(
    quvel_serve: Any, endpoint: AuthEndpoint
) -> None:
    """pysher's bug, not the server's: the endpoint signed its compact channel_data, pysher sends its own."""
    client = connect(
        quvel_serve,
        auth_endpoint=endpoint.url,
        auth_endpoint_headers={"Authorization": "Bearer token-ann"},
        user_data={"user_id": 1, "user_info": {"name": "Ann"}},
    )
    try:
        client.subscribe("presence-room.pysher")
        error = expect(client, "presence-room.pysher", "pusher:subscription_error")
        assert error["type"] == "AuthError"
        _path, form, status = endpoint.requests[-1]
        assert status == 200  # the endpoint signed (for Ann, from her token) ...
        # ... while pysher form-encoded its user_data dict as its keys (user_data=user_id&user_data=user_info)
        assert form["user_data"] == "user_info"
        assert members(quvel_serve, "presence-room.pysher") == []
    finally:
        client.disconnect(timeout=2)


def test_pysher_presence_through_an_auth_endpoint_with_channel_data_forwarded(
    quvel_serve: Any, endpoint: AuthEndpoint
) -> None:
    client = connect(
        quvel_serve,
        ForwardsChannelData,
        auth_endpoint=endpoint.url,
        auth_endpoint_headers={"Authorization": "Bearer token-bob"},
    )
    try:
        client.subscribe("presence-lobby")
        here = json.loads(expect(client, "presence-lobby", "pusher_internal:subscription_succeeded"))
        assert here["presence"]["hash"] == {"2": {"id": 2, "name": "Bob"}}
        assert members(quvel_serve, "presence-lobby") == ["2"]
    finally:
        client.disconnect(timeout=2)
