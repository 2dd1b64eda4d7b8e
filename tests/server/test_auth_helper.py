"""``quvel_ws.auth`` agrees with the official SDK, and its endpoint behaves like Laravel's."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import nacl.secret
import pusher
import pytest
from pusher.crypto import generate_shared_secret

from quvel_ws.auth import AuthEndpoint, Authorizer, AuthRequest, encrypt_event, shared_secret
from quvel_ws.errors import InvalidArgument, InvalidChannelName

MASTER = bytes(range(32))
MASTER_B64 = base64.b64encode(MASTER).decode()
SDK = pusher.Pusher(app_id="1", key="app-key", secret="app-secret", encryption_master_key_base64=MASTER_B64)
AUTH = Authorizer("app-key", "app-secret", master_key=MASTER_B64)


def test_private_auth_matches_the_sdk() -> None:
    assert AUTH.private("123.456", "private-orders") == SDK.authenticate("private-orders", "123.456")


def test_encrypted_auth_matches_the_sdk() -> None:
    ours = AUTH.private("1.2", "private-encrypted-vault")
    theirs = SDK.authenticate("private-encrypted-vault", "1.2")
    assert ours["auth"] == theirs["auth"]
    assert ours["shared_secret"] == theirs["shared_secret"].decode()
    assert shared_secret("private-encrypted-vault", MASTER) == generate_shared_secret(
        b"private-encrypted-vault", MASTER
    )


def test_presence_auth_signs_its_channel_data() -> None:
    result = AUTH.presence("1.2", "presence-room", 42, {"name": "Ann"})
    assert json.loads(result["channel_data"]) == {"user_id": 42, "user_info": {"name": "Ann"}}
    # the SDK signs the same string the same way
    sig = SDK.authenticate("presence-room", "1.2", json.loads(result["channel_data"]))
    assert json.loads(sig["channel_data"]) == json.loads(result["channel_data"])
    expected = Authorizer("app-key", "app-secret")._sign(f"1.2:presence-room:{result['channel_data']}")
    assert result["auth"] == expected


def test_user_auth_matches_the_sdk() -> None:
    ours = AUTH.user("1.2", {"id": "7", "user_info": {"name": "Ann"}})
    theirs = SDK.authenticate_user("1.2", json.loads(ours["user_data"]))
    assert json.loads(theirs["user_data"]) == json.loads(ours["user_data"])
    resigned = Authorizer("app-key", "app-secret")._sign(f"1.2::user::{ours['user_data']}")
    assert ours["auth"] == resigned


def test_encrypt_event_round_trips() -> None:
    data = json.loads(encrypt_event("private-encrypted-vault", {"n": 1}, MASTER))
    box = nacl.secret.SecretBox(shared_secret("private-encrypted-vault", MASTER))
    plain = box.decrypt(base64.b64decode(data["ciphertext"]), base64.b64decode(data["nonce"]))
    assert json.loads(plain) == {"n": 1}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: AUTH.private("abc", "private-a"), InvalidArgument),
        (lambda: AUTH.private("1.2", "bad name"), InvalidChannelName),
        (lambda: AUTH.private("1.2", "public"), InvalidChannelName),
        (lambda: AUTH.presence("1.2", "presence-a", ""), InvalidArgument),
        (lambda: AUTH.user("1.2", {"name": "no id"}), InvalidArgument),
        (lambda: Authorizer("k", "s").private("1.2", "private-encrypted-a"), InvalidArgument),
        (lambda: Authorizer("k", "s", master_key=b"short"), InvalidArgument),
        (lambda: shared_secret("private-a", MASTER), InvalidChannelName),
    ],
)
def test_bad_input_is_a_typed_error(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


@pytest.fixture
async def endpoint() -> AsyncIterator[AuthEndpoint]:
    def can_join(user: object, channel: str) -> bool | dict[str, str]:
        if channel == "private-admin":
            return False
        if channel.startswith("presence-"):
            return {"display": "custom"}
        return True

    ep = AuthEndpoint(
        "app-key", "app-secret", master_key=MASTER, users={"t1": {"id": 1, "name": "Ann"}}, can_join=can_join
    )
    async with ep:
        yield ep


async def test_endpoint_routes(endpoint: AuthEndpoint) -> None:
    bearer = {"Authorization": "Bearer t1"}
    async with httpx.AsyncClient() as client:
        ok = await client.post(
            endpoint.url, data={"socket_id": "1.2", "channel_name": "private-a"}, headers=bearer
        )
        assert ok.status_code == 200
        assert ok.json() == AUTH.private("1.2", "private-a")
        presence = await client.post(
            endpoint.url, data={"socket_id": "1.2", "channel_name": "presence-r"}, headers=bearer
        )
        assert json.loads(presence.json()["channel_data"]) == {
            "user_id": 1,
            "user_info": {"display": "custom"},
        }
        denied = await client.post(endpoint.url, data={"socket_id": "1.2", "channel_name": "private-admin"})
        assert denied.status_code == 403
        guest = await client.post(endpoint.url, data={"socket_id": "1.2", "channel_name": "presence-r"})
        assert guest.status_code == 403
        malformed = await client.post(endpoint.url, data={"channel_name": "private-a"})
        assert malformed.status_code == 400
        user = await client.post(endpoint.user_auth_url, data={"socket_id": "1.2"}, headers=bearer)
        assert json.loads(user.json()["user_data"]) == {"id": "1", "name": "Ann"}
        encrypted = await client.post(
            endpoint.url, data={"socket_id": "1.2", "channel_name": "private-encrypted-v"}, headers=bearer
        )
        assert "shared_secret" in encrypted.json()
        preflight = await client.options(endpoint.url)
        assert preflight.status_code == 204
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert [r[2] for r in endpoint.requests] == [200, 200, 403, 403, 400, 200, 200]


async def test_endpoint_resolver_errors_are_500s() -> None:
    def broken(req: AuthRequest) -> None:
        raise RuntimeError("boom")

    async with AuthEndpoint("app-key", "app-secret", users=broken) as ep, httpx.AsyncClient() as client:
        resp = await client.post(ep.url, data={"socket_id": "1.2", "channel_name": "private-a"})
        assert resp.status_code == 500
        again = await client.post(ep.url, data={"socket_id": "1.2", "channel_name": "private-a"})
        assert again.status_code == 500  # still serving


# --- Laravel's Broadcast::auth, case by case ---------------------------------------------------------
# PusherBroadcaster::auth: an empty channel_name, or a guarded channel (private-*, presence-*, which
# includes private-encrypted-*) without an authenticated user, is an AccessDeniedHttpException (403)
# before any channel callback runs; BroadcastController::authenticateUser answers 403 to guests too.

GUARDED = ["private-orders", "presence-room", "private-encrypted-vault"]


@pytest.mark.parametrize("channel", GUARDED)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dDE6"}, {"Authorization": ""}]
)
async def test_guests_are_refused_every_guarded_channel(channel: str, headers: dict[str, str]) -> None:
    allowed: list[object] = []
    ep = AuthEndpoint(
        "app-key",
        "app-secret",
        master_key=MASTER,
        users={"t1": {"id": 1}},
        can_join=lambda user, ch: allowed.append(user) or True,
    )
    async with ep, httpx.AsyncClient() as client:
        resp = await client.post(ep.url, data={"socket_id": "1.2", "channel_name": channel}, headers=headers)
    assert resp.status_code == 403
    assert "auth" not in resp.json()
    assert "shared_secret" not in resp.json()
    assert allowed == []  # as in Laravel, the channel callback never runs for a guest


@pytest.mark.parametrize("channel", GUARDED)
async def test_without_users_everyone_is_a_guest(channel: str) -> None:
    async with AuthEndpoint("app-key", "app-secret", master_key=MASTER) as ep, httpx.AsyncClient() as client:
        resp = await client.post(ep.url, data={"socket_id": "1.2", "channel_name": channel})
        user = await client.post(ep.user_auth_url, data={"socket_id": "1.2"})
    assert resp.status_code == 403
    assert user.status_code == 403


@pytest.mark.parametrize("channel", GUARDED)
async def test_a_signed_in_user_is_signed_for_every_guarded_kind(channel: str) -> None:
    ep = AuthEndpoint("app-key", "app-secret", master_key=MASTER, users={"t1": {"id": 1}})
    async with ep, httpx.AsyncClient() as client:
        resp = await client.post(
            ep.url, data={"socket_id": "1.2", "channel_name": channel}, headers={"Authorization": "Bearer t1"}
        )
    assert resp.status_code == 200
    assert resp.json()["auth"].startswith("app-key:")


async def test_empty_channel_name_is_403_as_in_laravel() -> None:
    ep = AuthEndpoint("app-key", "app-secret", users={"t1": {"id": 1}})
    async with ep, httpx.AsyncClient() as client:
        resp = await client.post(
            ep.url, data={"socket_id": "1.2", "channel_name": ""}, headers={"Authorization": "Bearer t1"}
        )
    assert resp.status_code == 403


async def test_guest_opt_in_is_limited_to_its_patterns() -> None:
    seen: list[object] = []

    def can_join(user: object, channel: str) -> bool:
        seen.append((user, channel))
        return channel != "private-board.closed"

    ep = AuthEndpoint(
        "app-key", "app-secret", master_key=MASTER, guest_channels=["private-board.*"], can_join=can_join
    )
    async with ep, httpx.AsyncClient() as client:

        async def status(channel: str) -> int:
            resp = await client.post(ep.url, data={"socket_id": "1.2", "channel_name": channel})
            return resp.status_code

        assert await status("private-board.1") == 200
        assert await status("private-board.closed") == 403  # can_join still decides, with user None
        assert await status("private-orders") == 403
        assert await status("private-encrypted-board.1") == 403  # the pattern names the full channel
    assert (None, "private-board.1") in seen


@pytest.mark.parametrize("pattern", ["presence-room.*", "news", "*"])
def test_guest_patterns_must_name_private_channels(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        AuthEndpoint("app-key", "app-secret", guest_channels=[pattern])


def test_auth_request_repr_hides_the_bearer_token() -> None:
    req = AuthRequest("/broadcasting/auth", {"socket_id": "1.2"}, {"authorization": "Bearer s3cret-token"})
    assert "s3cret-token" not in repr(req)
