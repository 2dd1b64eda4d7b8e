"""A raw Pusher client on plain ``websockets`` and independent request signing, for attacking a server.

Security and fuzz tests must not go through quvel_ws's own client (which refuses to send bad input),
so these helpers speak the wire protocol directly and sign with ``hmac`` as the Pusher docs describe.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def channel_auth(key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """The ``auth`` field of a private/presence subscription: ``key:HMAC(secret, sid:channel[:data])``."""
    to_sign = f"{socket_id}:{channel}" if channel_data is None else f"{socket_id}:{channel}:{channel_data}"
    return f"{key}:{hmac_hex(secret, to_sign)}"


def signed_query(
    method: str,
    path: str,
    body: bytes,
    *,
    key: str,
    secret: str,
    timestamp: int | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """A signed HTTP API query string (``auth_key``, ``auth_timestamp``, ``auth_version``, ``body_md5``,
    ``auth_signature``), built independently of the server's own signing code."""
    params = dict(extra or {})
    params.update(
        auth_key=key,
        auth_timestamp=str(int(time.time()) if timestamp is None else timestamp),
        auth_version="1.0",
        body_md5=hashlib.md5(body).hexdigest(),
    )
    canonical = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["auth_signature"] = hmac_hex(secret, f"{method}\n{path}\n{canonical}")
    return urlencode(params)


class RawClient:
    """One WebSocket that speaks Pusher frames directly; collects every frame it receives."""

    def __init__(self, ws: ClientConnection, socket_id: str) -> None:
        self.ws = ws
        self.socket_id = socket_id
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, ws_url: str, query: str = "protocol=7&client=raw&version=1") -> RawClient:
        ws = await websockets.connect(f"{ws_url}?{query}" if query else ws_url, max_size=None)
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if first.get("event") != "pusher:connection_established":
            await ws.close()
            raise ConnectionError(f"no connection_established: {first}")
        return cls(ws, json.loads(first["data"])["socket_id"])

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def next(self, predicate: Any = None, within: float = 5.0) -> dict[str, Any]:
        """The next frame matching ``predicate`` (server pings are answered and skipped)."""

        async def read() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.ws.recv())
                self.frames.append(frame)
                if frame.get("event") == "pusher:ping":
                    await self.ws.send('{"event":"pusher:pong","data":{}}')
                    continue
                if predicate is None or predicate(frame):
                    return dict(frame)

        return await asyncio.wait_for(read(), within)

    async def nothing_for(self, seconds: float, predicate: Any = None) -> None:
        """Assert no frame matching ``predicate`` arrives within ``seconds``."""
        try:
            frame = await self.next(predicate, within=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame}")

    async def subscribe(self, channel: str, **extra: Any) -> dict[str, Any]:
        """Subscribe and return the answer (``subscription_succeeded`` or ``subscription_error``)."""
        await self.send({"event": "pusher:subscribe", "data": {"channel": channel, **extra}})
        answers = {"pusher_internal:subscription_succeeded", "pusher:subscription_error", "pusher:error"}
        return await self.next(lambda f: f.get("event") in answers)

    async def ping(self, within: float = 5.0) -> None:
        """Round trip a ``pusher:ping``: proves the server still serves this socket."""
        await self.send({"event": "pusher:ping", "data": {}})
        await self.next(lambda f: f.get("event") == "pusher:pong", within)

    async def close(self) -> None:
        await self.ws.close()


def succeeded(frame: dict[str, Any]) -> bool:
    return frame.get("event") == "pusher_internal:subscription_succeeded"


def refused(frame: dict[str, Any]) -> bool:
    return frame.get("event") in {"pusher:subscription_error", "pusher:error"}
