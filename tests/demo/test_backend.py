"""The simulated Laravel back end: its HTTP API, its auth endpoint and its broadcasts, against Soketi."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from quvel.demo import DemoBackend
from quvel.demo.backend import NOTIFICATION_EVENT
from quvel_ws.server import PusherServer
from tests.demo.conftest import RawPusherClient, Target

ANN = {"Authorization": "Bearer token-ann"}
BEN = {"Authorization": "Bearer token-ben"}


async def test_notifications_api_lists_newest_first_and_marks_read(
    backend: DemoBackend, api: httpx.AsyncClient
) -> None:
    first = await backend.notify(1, "App\\Notifications\\InvoicePaid", {"title": "a"})
    second = await backend.notify(1, "App\\Notifications\\InvoicePaid", {"title": "b"})
    await backend.notify(2, "App\\Notifications\\InvoicePaid", {"title": "for ben"})

    rows = (await api.get("/api/notifications", headers=ANN)).json()["data"]
    assert [r["id"] for r in rows] == [second.id, first.id]
    assert rows[0]["data"] == {"title": "b"}
    assert rows[0]["read_at"] is None

    read = await api.post(f"/api/notifications/{first.id}/read", headers=ANN)
    assert read.status_code == 200
    assert read.json()["data"]["read_at"] is not None
    # Ben cannot read Ann's notification: 404 as with a scoped route-model binding.
    assert (await api.post(f"/api/notifications/{second.id}/read", headers=BEN)).status_code == 404

    assert (await api.post("/api/notifications/read-all", headers=ANN)).json()["updated"] == 1
    unread = (await api.get("/api/notifications", params={"unread": "1"}, headers=ANN)).json()["data"]
    assert unread == []


async def test_requests_without_a_user_are_refused(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/notifications")).status_code == 401
    assert (await api.get("/api/notifications", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await api.get("/nowhere", headers=ANN)).status_code == 404
    assert (await api.delete("/api/notifications", headers=ANN)).status_code == 405


async def test_session_login_needs_the_xsrf_cookie_echoed(api: httpx.AsyncClient) -> None:
    assert (
        await api.post("/login", json={"email": "ann@example.test", "password": "password"})
    ).status_code == 419
    await api.get("/sanctum/csrf-cookie")
    xsrf = api.cookies["XSRF-TOKEN"]
    assert (
        await api.post("/login", json={"email": "ann@example.test", "password": "password"})
    ).status_code == 419
    bad = await api.post(
        "/login", json={"email": "ann@example.test", "password": "x"}, headers={"X-XSRF-TOKEN": xsrf}
    )
    assert bad.status_code == 422
    assert "email" in bad.json()["errors"]
    ok = await api.post(
        "/login", json={"email": "ann@example.test", "password": "password"}, headers={"X-XSRF-TOKEN": xsrf}
    )
    assert ok.json()["data"] == {"id": 1, "name": "Ann"}
    assert (await api.get("/api/user")).json()["data"]["email"] == "ann@example.test"
    # A state-changing request on the session without the header is a CSRF mismatch.
    assert (await api.post("/api/notifications/read-all")).status_code == 419
    assert (await api.post("/api/notifications/read-all", headers={"X-XSRF-TOKEN": xsrf})).status_code == 200


async def test_malformed_requests_get_clear_errors(backend: DemoBackend, api: httpx.AsyncClient) -> None:
    bad_json = await api.post("/api/rooms/1/messages", content=b"{", headers=ANN)
    assert bad_json.status_code == 400
    empty = await api.post("/api/rooms/1/messages", json={"text": "  "}, headers=ANN)
    assert empty.status_code == 422
    assert empty.json()["errors"]["text"]
    assert (await api.post("/broadcasting/auth", data={}, headers=ANN)).status_code == 422
    # The server keeps serving after bad requests.
    assert (await api.get("/api/notifications", headers=ANN)).status_code == 200


async def _auth(
    api: httpx.AsyncClient, socket_id: str, channel: str, headers: dict[str, str]
) -> httpx.Response:
    return await api.post(
        "/broadcasting/auth", data={"socket_id": socket_id, "channel_name": channel}, headers=headers
    )


async def test_notification_reaches_the_users_private_channel(
    target: Target, backend: DemoBackend, api: httpx.AsyncClient
) -> None:
    client = await RawPusherClient.connect(target.ws_url)
    try:
        channel = backend.notification_channel(1)
        assert channel == "private-tenant.acme.User.1"
        # Another user's channel is refused, as routes/channels.php would.
        assert (await _auth(api, client.socket_id, channel, BEN)).status_code == 403
        assert (await _auth(api, client.socket_id, channel, {})).status_code == 403
        auth = await _auth(api, client.socket_id, channel, ANN)
        assert auth.status_code == 200
        ok = await client.subscribe(channel, auth.json())
        assert ok["event"] == "pusher_internal:subscription_succeeded"

        record = await backend.notify(1, "App\\Notifications\\InvoicePaid", {"title": "Paid", "amount": 42})
        frame = await client.next_event(lambda f: f.get("event") == NOTIFICATION_EVENT)
        assert frame["channel"] == channel
        assert json.loads(frame["data"]) == {
            "title": "Paid",
            "amount": 42,
            "id": record.id,
            "type": "App\\Notifications\\InvoicePaid",
        }
        assert record.broadcast
    finally:
        await client.close()


async def test_presence_auth_and_chat_to_others(
    target: Target, backend: DemoBackend, api: httpx.AsyncClient
) -> None:
    ann = await RawPusherClient.connect(target.ws_url)
    ben = await RawPusherClient.connect(target.ws_url)
    try:
        for client, headers in ((ann, ANN), (ben, BEN)):
            auth = (await _auth(api, client.socket_id, "presence-room.7", headers)).json()
            assert json.loads(auth["channel_data"])["user_info"]["name"] in {"Ann", "Ben"}
            ok = await client.subscribe("presence-room.7", auth)
            assert ok["event"] == "pusher_internal:subscription_succeeded"
        # Ben posts with his socket id: Ann gets it, Ben (toOthers) does not.
        posted = await api.post(
            "/api/rooms/7/messages", json={"text": "hi"}, headers={**BEN, "X-Socket-ID": ben.socket_id}
        )
        assert posted.status_code == 201
        frame = await ann.next_event(lambda f: f.get("event") == "App\\Events\\NewMessage")
        assert json.loads(frame["data"])["user"] == {"id": 2, "name": "Ben"}
        await backend.send_message("7", 1, "second")
        frame = await ben.next_event(lambda f: f.get("event") == "App\\Events\\NewMessage")
        assert json.loads(frame["data"])["text"] == "second"  # the first one was never delivered to Ben
    finally:
        await ann.close()
        await ben.close()


async def test_encrypted_channel_payload_decrypts_with_the_auth_shared_secret(
    target: Target, backend: DemoBackend, api: httpx.AsyncClient
) -> None:
    import base64

    from nacl.secret import SecretBox

    client = await RawPusherClient.connect(target.ws_url)
    try:
        auth = (await _auth(api, client.socket_id, "private-encrypted-vault", ANN)).json()
        await client.subscribe("private-encrypted-vault", auth)
        await backend.broadcast("private-encrypted-vault", "Secret", {"code": 1234})
        frame = await client.next_event(lambda f: f.get("event") == "Secret")
        sealed = json.loads(frame["data"])
        box = SecretBox(base64.b64decode(auth["shared_secret"]))
        plain = box.decrypt(base64.b64decode(sealed["ciphertext"]), base64.b64decode(sealed["nonce"]))
        assert json.loads(plain) == {"code": 1234}
    finally:
        await client.close()


async def test_broadcast_failure_keeps_the_notification_and_later_ones_go_through() -> None:
    from quvel.demo import PusherCredentials
    from quvel_ws.server import PusherServer

    async with PusherServer() as server:
        creds = PusherCredentials(server.http_url, "1", "app-key", "app-secret")
        async with DemoBackend(creds) as backend:
            await server.stop()
            lost = await backend.notify(1, "App\\Notifications\\InvoicePaid", {"title": "x"})
            assert not lost.broadcast
            assert backend.stats.broadcast_failures == 1
            await server.start()
            ok = await backend.notify(1, "App\\Notifications\\InvoicePaid", {"title": "y"})
            assert ok.broadcast
            assert backend.sent_to(1) == [lost, ok]


async def test_wrong_secret_is_refused(target: Target) -> None:
    from quvel.demo import Broadcaster, BroadcastError, PusherCredentials

    broadcaster = Broadcaster(PusherCredentials(target.http_url, target.app_id, target.key, "wrong"))
    try:
        with pytest.raises(BroadcastError, match="401"):
            await broadcaster.trigger("news", "x", {})
    finally:
        await broadcaster.aclose()


@pytest.fixture(params=["embedded", pytest.param("soketi", marks=pytest.mark.peers)])
async def signin_target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """A server with user authentication on (Soketi ignores pusher:signin unless it is enabled)."""
    if request.param == "soketi":
        soketi = request.getfixturevalue("soketi_factory")(user_authentication=True).start()
        yield Target("soketi", soketi.ws_url, soketi.http_url)
        return
    async with PusherServer() as server:
        yield Target("embedded", server.ws_url, server.http_url)


async def test_user_auth_signs_the_user_in(signin_target: Target) -> None:
    async with (
        DemoBackend(signin_target.credentials()) as backend,
        httpx.AsyncClient(base_url=backend.url) as api,
    ):
        client = await RawPusherClient.connect(signin_target.ws_url)
        try:
            denied = await api.post("/broadcasting/user-auth", data={"socket_id": client.socket_id})
            assert denied.status_code == 403
            answer = await api.post(
                "/broadcasting/user-auth", data={"socket_id": client.socket_id}, headers=ANN
            )
            assert answer.status_code == 200
            body = answer.json()
            assert json.loads(body["user_data"])["id"] == "1"
            await client.ws.send(json.dumps({"event": "pusher:signin", "data": body}))
            frame = await client.next_event(lambda f: f.get("event", "").startswith("pusher:signin"))
            assert frame["event"] == "pusher:signin_success"
        finally:
            await client.close()


async def test_malformed_socket_id_is_refused(api: httpx.AsyncClient) -> None:
    bad = await api.post(
        "/broadcasting/auth", data={"socket_id": "nope", "channel_name": "presence-room.1"}, headers=ANN
    )
    assert bad.status_code == 422
    assert "socket_id" in bad.json()["message"]
