"""ApiService against a real local HTTP server: JSON, cookies, XSRF, bearer, error mapping, timeouts."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from pydantic import BaseModel

from quvel_store.container import ApiService, ServiceContainer
from quvel_store.errors import (
    ApiCsrfMismatch,
    ApiDecodeError,
    ApiError,
    ApiForbidden,
    ApiNotFound,
    ApiRateLimited,
    ApiServerError,
    ApiStatusError,
    ApiTimeout,
    ApiTransportError,
    ApiUnauthenticated,
    ApiValidationFailed,
    ConfigError,
    QuvelError,
    ServiceNotConfigured,
    ValidationFailed,
)
from tests.peers import free_port
from tests.store.container.conftest import XSRF_DECODED, LaravelLikeServer


async def test_json_in_and_out_with_laravel_headers(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        reply = await api.post("/api/echo", {"title": "hi", "tags": ["a"]})
    assert reply["method"] == "POST"
    assert reply["json"] == {"title": "hi", "tags": ["a"]}
    assert reply["headers"]["accept"] == "application/json"
    assert reply["headers"]["content-type"] == "application/json"
    assert reply["headers"]["x-requested-with"] == "XMLHttpRequest"
    assert "authorization" not in reply["headers"]


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
async def test_every_verb_returns_decoded_json(http_api: LaravelLikeServer, method: str) -> None:
    async with ApiService(http_api.url) as api:
        reply = await getattr(api, method)("/api/echo")
    assert reply["method"] == method.upper()


async def test_query_params_and_pydantic_bodies(http_api: LaravelLikeServer) -> None:
    class NewItem(BaseModel):
        title: str
        done: bool = False

    async with ApiService(http_api.url) as api:
        got = await api.get("/api/echo", params={"page": 2})
        posted = await api.post("/api/echo", NewItem(title="x"))
    assert got["query"] == {"page": "2"}
    assert posted["json"] == {"title": "x", "done": False}


async def test_rich_bodies_are_encoded_and_unencodable_ones_are_typed_errors(
    http_api: LaravelLikeServer,
) -> None:
    @dataclass
    class Stamp:
        at: datetime
        id: uuid.UUID

    stamp = Stamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), uuid.UUID(int=1))
    async with ApiService(http_api.url) as api:
        reply = await api.post("/api/echo", {"stamp": stamp, "price": Decimal("1.50")})
        with pytest.raises(ApiError, match="not JSON-serializable"):
            await api.post("/api/echo", {"x": object()})
    assert reply["json"] == {
        "stamp": {"at": "2026-01-02T03:04:05Z", "id": "00000000-0000-0000-0000-000000000001"},
        "price": "1.50",
    }
    assert len([s for s in http_api.seen if s.path == "/api/echo"]) == 1  # the bad body was never sent


async def test_redirect_loop_and_bad_urls_are_typed_errors(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(ApiError, match="TooManyRedirects"):
            await api.get("/api/loop")
        with pytest.raises(ApiError, match="invalid URL"):
            await api.get("http://[::1")


async def test_empty_and_204_bodies_are_none(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        assert await api.get("/api/empty") is None
        assert await api.csrf_cookie() is None


async def test_xsrf_cookie_round_trip(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(ApiCsrfMismatch) as before:
            await api.post("/api/xsrf-protected")
        assert before.value.status == 419
        await api.csrf_cookie()
        assert api.xsrf_token == XSRF_DECODED
        assert await api.post("/api/xsrf-protected") == {"ok": True}
        echoed = await api.get("/api/echo")
    assert echoed["headers"]["x-xsrf-token"] == XSRF_DECODED
    assert "laravel_session=sess123" in echoed["headers"]["cookie"]


async def test_raw_client_requests_carry_credentials(http_api: LaravelLikeServer) -> None:
    """What the WebSocket service does: POST channel auth through api.client directly."""
    async with ApiService(http_api.url) as api:
        await api.csrf_cookie()
        api.set_token("tok-1")
        response = await api.client.post("/api/echo", data={"socket_id": "1.2", "channel_name": "private-a"})
    headers = response.json()["headers"]
    assert headers["authorization"] == "Bearer tok-1"
    assert headers["x-xsrf-token"] == XSRF_DECODED


async def test_bearer_token_set_and_cleared(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url, token="first") as api:
        assert (await api.get("/api/echo"))["headers"]["authorization"] == "Bearer first"
        api.set_token("second")
        assert (await api.get("/api/echo"))["headers"]["authorization"] == "Bearer second"
        api.clear_token()
        assert "authorization" not in (await api.get("/api/echo"))["headers"]
        explicit = await api.get("/api/echo", headers={"Authorization": "Basic abc"})
    assert explicit["headers"]["authorization"] == "Basic abc"


def test_bad_token_in_the_constructor_is_rejected() -> None:
    with pytest.raises(ConfigError):
        ApiService("http://api.test", token="a\nb")


async def test_bad_token_is_rejected_and_old_one_kept(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url, token="good") as api:
        for bad in ("evil\r\nX-Injected: 1", "evil\rx", "", "   ", 42):
            with pytest.raises(ConfigError):
                api.set_token(bad)  # type: ignore[arg-type]
        assert api.token == "good"


async def test_credentials_never_reach_another_origin(
    http_api: LaravelLikeServer, other_origin: LaravelLikeServer
) -> None:
    async with ApiService(http_api.url, token="secret") as api:
        await api.csrf_cookie()
        await api.get(f"{other_origin.url}/api/echo")
        # A redirect from the API to another origin must drop what the API request carried.
        await api.get("/api/redirect", params={"to": f"{other_origin.url}/api/echo"})
    api_side = [s for s in http_api.seen if s.path == "/api/redirect"]
    assert api_side[0].headers["authorization"] == "Bearer secret"
    assert api_side[0].headers["x-xsrf-token"] == XSRF_DECODED
    assert len(other_origin.seen) == 2
    for seen in other_origin.seen:
        assert "authorization" not in seen.headers
        assert "x-xsrf-token" not in seen.headers


async def test_tenant_header_from_config_only_to_the_api(
    http_api: LaravelLikeServer, other_origin: LaravelLikeServer
) -> None:
    async with ServiceContainer({"api_url": http_api.url, "tenant_id": "acme"}) as container:
        mine = await container.api.get("/api/echo")
        theirs = await container.api.get(f"{other_origin.url}/api/echo")
    assert mine["headers"]["x-tenant-id"] == "acme"
    assert "x-tenant-id" not in theirs["headers"]


async def test_accept_language_follows_the_i18n_locale(http_api: LaravelLikeServer) -> None:
    async with ServiceContainer({"api_url": http_api.url, "locale": "de"}) as container:
        assert (await container.api.get("/api/echo"))["headers"]["accept-language"] == "de"
        container.i18n.set_locale("fr")
        assert (await container.api.get("/api/echo"))["headers"]["accept-language"] == "fr"
        explicit = await container.api.get("/api/echo", headers={"Accept-Language": "nl"})
    assert explicit["headers"]["accept-language"] == "nl"
    async with ApiService(http_api.url) as bare:
        assert "accept-language" not in (await bare.get("/api/echo"))["headers"]


async def test_trusted_origin_receives_credentials(
    http_api: LaravelLikeServer, other_origin: LaravelLikeServer
) -> None:
    async with ApiService(http_api.url, token="secret", trusted_origins=[other_origin.url]) as api:
        reply = await api.get(f"{other_origin.url}/api/echo")
    assert reply["headers"]["authorization"] == "Bearer secret"


async def test_422_carries_the_laravel_error_bag(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(ValidationFailed) as caught:
            await api.post("/api/users", {"email": "nope"})
        created = await api.post("/api/users", {"name": "Ada", "email": "ada@example.com"})
    error = caught.value
    assert isinstance(error, ApiValidationFailed)
    assert isinstance(error, ApiStatusError)
    assert error.status == 422
    assert error.errors == {
        "name": ["The name field is required."],
        "email": ["The email field must be a valid email address."],
    }
    assert error.first("email") == "The email field must be a valid email address."
    assert error.has("name")
    assert not error.has("password")
    assert error.message == "The name field is required. (and 1 more error)"
    assert created == {"id": 1, "name": "Ada", "email": "ada@example.com"}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, ApiUnauthenticated),
        (403, ApiForbidden),
        (404, ApiNotFound),
        (419, ApiCsrfMismatch),
        (429, ApiRateLimited),
        (409, ApiStatusError),
        (500, ApiServerError),
        (503, ApiServerError),
    ],
)
async def test_status_codes_map_to_typed_errors(
    http_api: LaravelLikeServer, status: int, error_type: type[ApiStatusError]
) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(error_type) as caught:
            await api.get(f"/api/status/{status}")
    error = caught.value
    assert type(error) is error_type
    assert isinstance(error, ApiError)
    assert isinstance(error, QuvelError)
    assert error.status == status
    assert error.body == {"message": f"status {status}"}
    assert error.method == "GET"
    assert error.url.endswith(f"/api/status/{status}")
    assert f"status {status}" in str(error)
    if isinstance(error, ApiRateLimited):
        assert error.retry_after == 7.0


async def test_server_error_message(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(ApiServerError, match="500 Internal Server Error: Server Error"):
            await api.get("/api/boom")


async def test_non_json_success_is_a_decode_error(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(ApiDecodeError, match="not JSON") as caught:
            await api.get("/api/html")
        raw = await api.send("GET", "/api/html")
    assert caught.value.status == 200
    assert "<title>SPA</title>" in caught.value.body
    assert raw.text.startswith("<!doctype html>")


async def test_timeout_from_config(http_api: LaravelLikeServer) -> None:
    container = ServiceContainer({"api_url": http_api.url, "api_timeout": 0.2}, services={})
    async with container:
        with pytest.raises(ApiTimeout) as caught:
            await container.api.get("/api/slow")
        assert isinstance(caught.value, ApiTransportError)
        assert http_api.slow_started.is_set()
        http_api.release.set()
        # The client is still usable after a timeout.
        assert (await container.api.get("/api/echo"))["method"] == "GET"


async def test_per_request_timeout(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url, timeout=30) as api:
        with pytest.raises(ApiTimeout):
            await api.get("/api/slow", timeout=0.2)
    http_api.release.set()


async def test_connection_refused_is_a_transport_error() -> None:
    async with ApiService(f"http://127.0.0.1:{free_port()}") as api:
        with pytest.raises(ApiTransportError) as caught:
            await api.get("/api/echo")
    assert not isinstance(caught.value, ApiTimeout)
    assert caught.value.url.endswith("/api/echo")


async def test_server_hanging_up_is_a_transport_error(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url) as api:
        with pytest.raises(ApiTransportError):
            await api.get("/api/hangup")
        assert (await api.get("/api/echo"))["method"] == "GET"


async def test_relative_url_without_base_url_says_how_to_configure() -> None:
    async with ApiService() as api:
        with pytest.raises(ServiceNotConfigured, match="QUVEL_API_URL"):
            await api.get("/api/echo")


async def test_own_client_is_used_and_not_closed(http_api: LaravelLikeServer) -> None:
    async with httpx.AsyncClient(base_url=http_api.url) as client:
        api = ApiService(client=client, token="t")
        assert api.client is client
        reply = await api.get("/api/echo")
        await api.shutdown()
        assert not client.is_closed
        assert reply["headers"]["authorization"] == "Bearer t"
        assert reply["headers"]["accept"] == "application/json"


async def test_rare_status_through_a_transport_mock() -> None:
    """A status the local server has no reason to send: 418 stays a plain ApiStatusError."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, text="teapot")

    async with ApiService("http://api.test", transport=httpx.MockTransport(handler)) as api:
        with pytest.raises(ApiStatusError) as caught:
            await api.get("/x")
    assert caught.value.status == 418
    assert caught.value.body == "teapot"


async def test_container_api_shares_one_client_and_closes_it(http_api: LaravelLikeServer) -> None:
    container = ServiceContainer({"api_url": http_api.url})
    async with container:
        api = container.api
        assert container.api is api
        assert container.get_service("api") is api
        await api.get("/api/echo")
    assert api.client.is_closed


async def test_concurrent_requests_share_the_client(http_api: LaravelLikeServer) -> None:
    async with ApiService(http_api.url, token="x") as api:
        replies = await asyncio.gather(*(api.get("/api/echo", params={"i": i}) for i in range(20)))
    assert sorted(int(r["query"]["i"]) for r in replies) == list(range(20))
    assert all(r["headers"]["authorization"] == "Bearer x" for r in replies)


async def test_a_shared_client_is_never_modified_and_credentials_never_reach_another_origin(
    http_api: LaravelLikeServer, other_origin: LaravelLikeServer
) -> None:
    """client= may be a server's pool serving other users at the same time: nothing is added to it."""
    async with httpx.AsyncClient() as shared:
        before = (dict(shared.headers), {k: list(v) for k, v in shared.event_hooks.items()})
        ann = ApiService(http_api.url, client=shared, token="ann", tenant_id="acme")
        ben = ApiService(http_api.url, client=shared, token="ben")
        mine, theirs = await asyncio.gather(ann.get("/api/echo"), ben.get("/api/echo"))
        await ann.get("/api/redirect", params={"to": f"{other_origin.url}/api/echo"})
        await ann.get(f"{other_origin.url}/api/echo")
        assert (dict(shared.headers), {k: list(v) for k, v in shared.event_hooks.items()}) == before
        assert ann.client is shared
    assert mine["headers"]["authorization"] == "Bearer ann"
    assert mine["headers"]["accept"] == "application/json"
    assert mine["headers"]["x-tenant-id"] == "acme"
    assert theirs["headers"]["authorization"] == "Bearer ben"
    assert "x-tenant-id" not in theirs["headers"]
    assert [s.headers["authorization"] for s in http_api.seen if s.path == "/api/redirect"] == ["Bearer ann"]
    assert len(other_origin.seen) == 2
    for seen in other_origin.seen:
        assert "authorization" not in seen.headers
        assert "x-tenant-id" not in seen.headers


async def test_http_apis_never_load_tls_and_a_given_transport_stays_open(http_api: LaravelLikeServer) -> None:
    from quvel_store.container._http import LazyTlsTransport, default_transport

    assert isinstance(default_transport(), LazyTlsTransport)  # what a service builds its client with
    lazy = LazyTlsTransport()
    async with ApiService(http_api.url, transport=lazy) as api:
        await api.get("/api/echo")
    assert not lazy.tls_ready  # http:// only: no CA bundle was loaded
    await lazy.aclose()
    async with httpx.AsyncHTTPTransport() as pooled:
        for token in ("a", "b"):
            async with ApiService(http_api.url, transport=pooled, token=token) as per_request:
                assert (await per_request.get("/api/echo"))["headers"]["authorization"] == f"Bearer {token}"
        # each request's service left the shared pool open for the next one
        async with httpx.AsyncClient(transport=pooled, base_url=http_api.url) as raw:
            assert (await raw.get("/api/echo")).status_code == 200
