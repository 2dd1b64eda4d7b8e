"""The HTTP authoriser against a real local auth endpoint (signed by the official pusher SDK)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from quvel_ws import AuthorizationError, HttpAuthorizer, SigninError
from quvel_ws.client._http_auth import CustomAuthorizer
from tests.peers import APP_SECRET, free_port
from tests.ws.conftest import AuthServer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def expected_signature(string: str) -> str:
    return hmac.new(APP_SECRET.encode(), string.encode(), hashlib.sha256).hexdigest()


async def test_form_post_with_params_and_per_request_headers(
    auth_server: AuthServer, client: httpx.AsyncClient
) -> None:
    tokens = iter(["t1", "t2"])
    authorizer = HttpAuthorizer(
        client,
        auth_server.url + "/broadcasting/auth",
        headers=lambda: {"Authorization": f"Bearer {next(tokens)}"},
        params={"team": "7"},
    )
    first = await authorizer.authorize_channel("private-a", "1.2")
    await authorizer.authorize_channel("private-b", "1.2")
    assert first.auth == "app-key:" + expected_signature("1.2:private-a")
    one, two = auth_server.records
    assert list(one.form) == ["socket_id", "channel_name", "team"]
    assert one.form == {"socket_id": "1.2", "channel_name": "private-a", "team": "7"}
    assert one.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (one.headers["authorization"], two.headers["authorization"]) == ("Bearer t1", "Bearer t2")


async def test_presence_and_encrypted_responses(auth_server: AuthServer, client: httpx.AsyncClient) -> None:
    authorizer = HttpAuthorizer(client, auth_server.url + "/broadcasting/auth")
    presence = await authorizer.authorize_channel("presence-room", "3.4")
    assert presence.channel_data is not None
    assert json.loads(presence.channel_data)["user_id"] == "42"
    assert presence.auth.endswith(expected_signature(f"3.4:presence-room:{presence.channel_data}"))
    encrypted = await authorizer.authorize_channel("private-encrypted-x", "3.4")
    assert encrypted.shared_secret is not None
    assert len(encrypted.shared_secret) == 32


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (403, 403),
        (500, 500),
        ("nonjson", 200),
        (("sleep", 1.0), 0),
        ({"no": "auth"}, 200),
        ({"auth": "k:s"}, 200),  # a presence channel without channel_data
    ],
)
async def test_failures_are_typed_with_status(
    auth_server: AuthServer, client: httpx.AsyncClient, failure: object, status: int
) -> None:
    auth_server.fail["presence-x"] = failure
    authorizer = HttpAuthorizer(client, auth_server.url + "/broadcasting/auth", timeout=0.3)
    with pytest.raises(AuthorizationError) as info:
        await authorizer.authorize_channel("presence-x", "1.1")
    assert info.value.status == status
    assert info.value.channel == "presence-x"


async def test_unreachable_endpoint_is_status_0(client: httpx.AsyncClient) -> None:
    authorizer = HttpAuthorizer(client, f"http://127.0.0.1:{free_port()}/broadcasting/auth")
    with pytest.raises(AuthorizationError) as info:
        await authorizer.authorize_channel("private-x", "1.1")
    assert info.value.status == 0


async def test_concurrency_is_bounded(auth_server: AuthServer, client: httpx.AsyncClient) -> None:
    for i in range(12):
        auth_server.fail[f"private-c{i}"] = ("sleep", 0.1)
    authorizer = HttpAuthorizer(client, auth_server.url + "/broadcasting/auth", max_concurrency=3)
    results = await asyncio.gather(*(authorizer.authorize_channel(f"private-c{i}", "1.1") for i in range(12)))
    assert len(results) == 12
    assert auth_server.max_in_flight == 3


async def test_batched_authorisation(auth_server: AuthServer, client: httpx.AsyncClient) -> None:
    auth_server.fail["private-denied"] = 403
    authorizer = HttpAuthorizer(client, auth_server.url + "/batch-auth", batch=True, batch_delay=0.01)
    ok, denied = await asyncio.gather(
        authorizer.authorize_channel("private-ok", "5.6"),
        authorizer.authorize_channel("private-denied", "5.6"),
        return_exceptions=True,
    )
    assert len(auth_server.records) == 1
    assert auth_server.records[0].form == {
        "socket_id": "5.6",
        "channel_name[0]": "private-ok",
        "channel_name[1]": "private-denied",
    }
    assert not isinstance(ok, BaseException)
    assert ok.auth.endswith(expected_signature("5.6:private-ok"))
    assert isinstance(denied, AuthorizationError)
    assert denied.status == 403


async def test_credentials_stay_on_the_clients_origin(auth_server: AuthServer) -> None:
    other_origin = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient(base_url=other_origin, headers={"Authorization": "Bearer app-token"}) as c:
        await HttpAuthorizer(c, auth_server.url + "/broadcasting/auth").authorize_channel("private-a", "1.1")
    async with httpx.AsyncClient(
        base_url=auth_server.url, headers={"Authorization": "Bearer app-token"}
    ) as c:
        c.cookies.set("XSRF-TOKEN", "abc%3D", domain="127.0.0.1")
        await HttpAuthorizer(c, "/broadcasting/auth").authorize_channel("private-a", "1.1")
    foreign, own = auth_server.records
    assert "authorization" not in foreign.headers
    assert own.headers["authorization"] == "Bearer app-token"
    assert own.headers["x-xsrf-token"] == "abc="


async def test_user_authentication(auth_server: AuthServer, client: httpx.AsyncClient) -> None:
    authorizer = HttpAuthorizer(client, user_endpoint=auth_server.url + "/broadcasting/user-auth")
    user = await authorizer.authenticate_user("9.9")
    assert json.loads(user.user_data)["id"] == "42"
    assert user.auth.endswith(expected_signature(f"9.9::user::{user.user_data}"))
    assert auth_server.records[0].form == {"socket_id": "9.9"}
    auth_server.required_header = ("Authorization", "Bearer yes")
    with pytest.raises(SigninError) as info:
        await authorizer.authenticate_user("9.9")
    assert info.value.status == 403


async def test_custom_authorizer_failures_are_typed() -> None:
    async def broken(channel: str, socket_id: str) -> dict[str, str]:
        raise RuntimeError("vault offline")

    with pytest.raises(AuthorizationError, match="vault offline"):
        await CustomAuthorizer(broken, None, None).authorize_channel("private-a", "1.1")


async def test_redirects_only_same_origin_307(auth_server: AuthServer, client: httpx.AsyncClient) -> None:
    authorizer = HttpAuthorizer(client, auth_server.url + "/broadcasting/auth")
    auth_server.fail["private-moved"] = ("redirect", 307, "/pusher/auth")
    moved = await authorizer.authorize_channel("private-moved", "1.1")
    assert moved.auth.endswith(expected_signature("1.1:private-moved"))
    assert [r.path for r in auth_server.records] == ["/broadcasting/auth", "/pusher/auth"]
    assert auth_server.records[1].form["channel_name"] == "private-moved"
    auth_server.fail["private-login"] = ("redirect", 302, "/login")
    with pytest.raises(AuthorizationError) as info:
        await authorizer.authorize_channel("private-login", "1.1")
    assert info.value.status == 302
    auth_server.fail["private-away"] = ("redirect", 307, f"http://localhost:{free_port()}/steal")
    with pytest.raises(AuthorizationError, match="same-origin") as info:
        await authorizer.authorize_channel("private-away", "1.1")
    assert info.value.status == 307
