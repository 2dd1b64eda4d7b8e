"""Fixtures for the demo back end: a minimal raw Pusher client (plain ``websockets``) so the back end is
tested against real servers independently of quvel_ws's own client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from quvel.demo import DemoBackend, PusherCredentials
from quvel_ws.server import AppConfig, PusherServer

MASTER_KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def _demo_state_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`quvel demo` saves its state in the per-user data directory by default: keep the tests' runs (the
    subprocesses inherit the environment) out of the real home directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


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


@dataclass(frozen=True)
class Target:
    """A running Pusher-protocol server: the embedded one or Soketi."""

    kind: str
    ws_url: str
    http_url: str
    app_id: str = "1"
    key: str = "app-key"
    secret: str = "app-secret"

    def credentials(self, master_key: bytes | None = MASTER_KEY) -> PusherCredentials:
        return PusherCredentials(self.http_url, self.app_id, self.key, self.secret, master_key)


@pytest.fixture(params=["embedded", pytest.param("soketi", marks=pytest.mark.peers)])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """Each test using it runs against the embedded server and against Soketi."""
    if request.param == "soketi":
        soketi = request.getfixturevalue("soketi")
        yield Target("soketi", soketi.ws_url, soketi.http_url, soketi.app_id, soketi.key, soketi.secret)
        return
    app = AppConfig(id="1", key="app-key", secret="app-secret", enable_client_events=True)
    async with PusherServer(apps=[app]) as server:
        yield Target("embedded", server.ws_url, server.http_url)


@pytest.fixture
async def backend(target: Target) -> AsyncIterator[DemoBackend]:
    async with DemoBackend(target.credentials(), tenant_id="acme", seed=1) as backend:
        yield backend


@pytest.fixture
async def api(backend: DemoBackend) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Accept": "application/json"}
    async with httpx.AsyncClient(base_url=backend.url, headers=headers) as client:
        yield client
