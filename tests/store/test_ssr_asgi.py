"""Server rendering under load, over real HTTP: a Starlette app under uvicorn renders each request with its
own light container and app, sharing one pooled connection (a transport, or a whole httpx client) to a
back end that answers per bearer token. Many users at once: every page must hold its own user's data only,
and the shared client must come out of it unmodified (no hooks, headers or cookies added)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quvel_store import Store, action, create_app
from quvel_store.container import ApiService, ServiceContainer

USERS = 20
REQUESTS = 400
CONCURRENCY = 50


class Profile(BaseModel):
    user: str = ""
    items: list[str] = []


class ProfileStore(Store[Profile]):
    id = "profile"

    @action
    async def load(self) -> None:
        data = await self.container.api.get("/api/me")
        self.patch({"user": data["user"], "items": data["items"]})


async def backend(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The API: who you are comes from the bearer token only, after a random short wait (so that
    concurrent requests interleave on the shared pool)."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"").decode()
    await asyncio.sleep(random.random() / 200)
    user = auth.removeprefix("Bearer token-") if auth.startswith("Bearer token-") else None
    status = 200 if user is not None else 401
    body = json.dumps({"user": user, "items": [f"{user}-a", f"{user}-b"]} if user else {"message": "no"})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


def make_front(api_url: str, mode: str) -> tuple[Starlette, dict[str, Any]]:
    """The server-rendering app: one shared pool for every request, one container + app per request."""
    shared: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        shared["transport"] = httpx.AsyncHTTPTransport()
        shared["client"] = httpx.AsyncClient(base_url=api_url)
        yield
        await shared["client"].aclose()
        await shared["transport"].aclose()

    async def render(request: Request) -> JSONResponse:
        token = request.headers["x-token"]
        api = (
            ApiService(api_url, transport=shared["transport"], token=token)
            if mode == "transport"
            else ApiService(client=shared["client"], token=token)
        )
        async with ServiceContainer(config={"server_rendering": True}, api=api) as container:
            app = create_app(container)
            try:
                await app.use(ProfileStore).load()
                return JSONResponse(app.snapshot())
            finally:
                app.dispose()

    return Starlette(routes=[Route("/render", render)], lifespan=lifespan), shared


@contextlib.asynccontextmanager
async def serve(asgi: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="error", lifespan="auto"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["transport", "client"])
async def test_concurrent_renders_for_many_users_carry_only_their_users_data(mode: str) -> None:
    async with serve(backend) as api_url:
        front, shared = make_front(api_url, mode)
        async with serve(front) as front_url:
            gate = asyncio.Semaphore(CONCURRENCY)
            async with httpx.AsyncClient(base_url=front_url, timeout=30) as browser:

                async def one(n: int) -> tuple[str, Any]:
                    user = f"u{n % USERS}"
                    async with gate:
                        reply = await browser.get("/render", headers={"x-token": f"token-{user}"})
                    assert reply.status_code == 200, reply.text
                    return user, reply.json()

                pages = await asyncio.gather(*(one(n) for n in range(REQUESTS)))
            wrong = [
                (user, page)
                for user, page in pages
                if page != {"profile": {"user": user, "items": [f"{user}-a", f"{user}-b"]}}
            ]
            assert wrong == [], f"{len(wrong)} of {REQUESTS} pages carried another user's data: {wrong[:3]}"
            client: httpx.AsyncClient = shared["client"]
            # the shared client is exactly as the server made it: nothing per request was added to it
            assert client.event_hooks == {"request": [], "response": []}
            assert "authorization" not in client.headers
            assert len(client.cookies.jar) == 0
