"""Fixtures for the server tests: a raw protocol-7 client and signed HTTP API calls.

The raw client is deliberately dumb (``websockets`` + ``json``): these tests check the server's wire
behaviour, so nothing of quvel's own client is involved.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from quvel_ws.server import AppConfig, PusherServer, sign_params

KEY, SECRET, APP_ID = "app-key", "app-secret", "1"


def unique(prefix: str) -> str:
    """A channel name no other test uses (Soketi is shared by the whole session)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Raw:
    """A bare Pusher protocol client: JSON in, JSON out, nothing hidden."""

    def __init__(self, ws: ClientConnection, established: dict[str, Any]) -> None:
        self.ws = ws
        self.established = established
        self.socket_id: str = established["socket_id"]

    @classmethod
    async def connect(cls, ws_url: str, query: str = "protocol=7&client=raw-test&version=1.0") -> Raw:
        ws = await websockets.connect(f"{ws_url}?{query}", max_size=None, compression=None)
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["event"] == "pusher:connection_established", first
        return cls(ws, json.loads(first["data"]))

    async def send(self, event: str, data: Any = None, channel: str | None = None, **extra: Any) -> None:
        msg: dict[str, Any] = {"event": event, "data": {} if data is None else data}
        if channel is not None:
            msg["channel"] = channel
        msg.update(extra)
        await self.ws.send(json.dumps(msg))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    async def expect(self, event: str, within: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame named ``event`` (others in between are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if msg.get("event") == event and all(msg.get(k) == v for k, v in match.items()):
                return msg

    async def barrier(self) -> list[dict[str, Any]]:
        """Everything the server queued for us before answering a ping (the server handles a socket's
        frames in order, so this is what it had sent by then)."""
        await self.send("pusher:ping")
        before: list[dict[str, Any]] = []
        while True:
            msg = await self.recv()
            if msg.get("event") == "pusher:pong":
                return before
            before.append(msg)

    async def subscribe(self, channel: str, **data: Any) -> dict[str, Any]:
        await self.send("pusher:subscribe", {"channel": channel, **data})
        while True:
            msg = await self.recv()
            if msg.get("channel") == channel and msg["event"] in (
                "pusher_internal:subscription_succeeded",
                "pusher:subscription_error",
            ):
                return msg

    async def closed(self, within: float = 5.0) -> int | None:
        """Wait for the server to close us; the close code it sent (frames before it are skipped)."""
        async with asyncio.timeout(within):
            while True:
                try:
                    await self.ws.recv()
                except websockets.ConnectionClosed:
                    return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


def data_of(msg: dict[str, Any]) -> Any:
    """``data`` decoded the way pusher-js does (a JSON string is parsed)."""
    data = msg.get("data")
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


@dataclass
class Target:
    """A server under test: the embedded one or Soketi."""

    kind: str
    ws_url: str
    http_url: str
    app_id: str = APP_ID
    key: str = KEY
    secret: str = SECRET

    async def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """A signed HTTP API request (``path`` relative to ``/apps/{id}``)."""
        full = f"/apps/{self.app_id}{path}"
        raw = b"" if body is None else json.dumps(body).encode()
        signed = sign_params(
            method,
            full,
            params or {},
            key=self.key,
            secret=secret or self.secret,
            body=raw,
            timestamp=timestamp,
        )
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.request(
                method,
                self.http_url + full,
                params=signed,
                content=raw or None,
                headers={"Content-Type": "application/json"} if raw else None,
            )

    async def trigger(self, channel: str | list[str], name: str, data: Any, **extra: Any) -> httpx.Response:
        body: dict[str, Any] = {"name": name, "data": data if isinstance(data, str) else json.dumps(data)}
        body["channels" if isinstance(channel, list) else "channel"] = channel
        body.update(extra)
        return await self.api("POST", "/events", body)


@pytest.fixture
async def embedded() -> AsyncIterator[PusherServer]:
    app = AppConfig(id=APP_ID, key=KEY, secret=SECRET, enable_client_events=True)
    async with PusherServer(apps=[app]) as server:
        yield server


@pytest.fixture(params=["embedded", pytest.param("soketi", marks=pytest.mark.peers)])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """Each conformance test runs against the embedded server and against Soketi 1.6.1."""
    if request.param == "soketi":
        soketi = request.getfixturevalue("soketi")
        yield Target("soketi", soketi.ws_url, soketi.http_url)
        return
    app = AppConfig(
        id=APP_ID, key=KEY, secret=SECRET, enable_client_events=True, max_client_events_per_second=1000
    )
    async with PusherServer(apps=[app]) as server:
        yield Target("embedded", server.ws_url, server.http_url)
