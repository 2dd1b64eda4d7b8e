"""Fixtures for the demo back end: a minimal raw Pusher client (plain ``websockets``) so the back end is
tested against real servers independently of quvel_ws's own client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from quvel.demo import DemoBackend, PusherCredentials

MASTER_KEY = bytes(range(32))


class RawPusherClient:
    """Just enough of the protocol to subscribe and read events: connect, subscribe, next_event."""

    def __init__(self, ws: Any, socket_id: str) -> None:
        self.ws = ws
        self.socket_id = socket_id

    @classmethod
    async def connect(cls, url: str) -> RawPusherClient:
        ws = await websockets.connect(url + "?protocol=7&client=raw-test&version=1")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["event"] == "pusher:connection_established", frame
        return cls(ws, json.loads(frame["data"])["socket_id"])

    async def subscribe(self, channel: str, auth: dict[str, str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel}
        if auth:
            data.update({k: v for k, v in auth.items() if k != "shared_secret"})
        await self.ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
        return await self.next_event(
            lambda f: (
                f.get("channel") == channel
                and (f["event"] in {"pusher_internal:subscription_succeeded", "pusher:subscription_error"})
            )
        )

    async def next_event(self, match: Any = None, wait: float = 5.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.ws.recv())
                if frame.get("event") == "pusher:ping":
                    await self.ws.send(json.dumps({"event": "pusher:pong", "data": {}}))
                    continue
                if match is None or match(frame):
                    return dict(frame)

        return await asyncio.wait_for(read(), wait)

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def soketi_backend(soketi: Any) -> AsyncIterator[DemoBackend]:
    creds = PusherCredentials(soketi.http_url, soketi.app_id, soketi.key, soketi.secret, MASTER_KEY)
    async with DemoBackend(creds, tenant_id="acme", seed=1) as backend:
        yield backend


@pytest.fixture
async def api(soketi_backend: DemoBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=soketi_backend.url, headers={"Accept": "application/json"}
    ) as client:
        yield client
