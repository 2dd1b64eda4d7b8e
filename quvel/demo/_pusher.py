"""The back end's side of the Pusher protocol: a signed HTTP API client that publishes events, as the
official server SDKs do, so the same back end broadcasts through the embedded server, Soketi or Pusher."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from quvel_ws.auth import encrypt_event
from quvel_ws.server import sign_params

logger = logging.getLogger(__name__)


class BroadcastError(Exception):
    """An event could not be published (server down, refused signature, bad channel...)."""


@dataclass(frozen=True)
class PusherCredentials:
    """Where and as whom the back end publishes: the HTTP API base URL and the app's id, key and secret.

    ``master_key`` (32 bytes) enables ``private-encrypted-`` channels, as pusher-php's
    ``encryption_master_key_base64`` does.
    """

    http_url: str
    app_id: str
    key: str
    secret: str
    master_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.master_key is not None and len(self.master_key) != 32:
            raise ValueError(f"master_key must be 32 bytes, got {len(self.master_key)}")


class Broadcaster:
    """Publishes events to channels through a Pusher-compatible HTTP API (``POST /apps/{id}/events``)."""

    def __init__(
        self, credentials: PusherCredentials, client: httpx.AsyncClient | None = None, timeout: float = 5.0
    ) -> None:
        self.credentials = credentials
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._base = credentials.http_url.rstrip("/")
        self._prefix = urlsplit(self._base).path

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def trigger(
        self, channels: str | Sequence[str], event: str, data: Any, socket_id: str | None = None
    ) -> None:
        """Publish ``data`` (JSON-encoded) as ``event`` on ``channels``; ``socket_id`` excludes that
        connection (Laravel's ``toOthers()``). Encrypted channels are encrypted here, one per call."""
        names = [channels] if isinstance(channels, str) else list(channels)
        if not names:
            raise BroadcastError("no channel to publish to")
        payload = orjson.dumps(data).decode()
        if any(n.startswith("private-encrypted-") for n in names):
            if len(names) != 1:
                raise BroadcastError("an encrypted event goes to exactly one channel")
            if self.credentials.master_key is None:
                raise BroadcastError("encrypted channels need a master_key")
            payload = encrypt_event(names[0], payload, self.credentials.master_key)
        message: dict[str, Any] = {"name": event, "channels": names, "data": payload}
        if socket_id:
            message["socket_id"] = socket_id
        await self._post(f"/apps/{self.credentials.app_id}/events", orjson.dumps(message))

    async def _post(self, path: str, body: bytes) -> None:
        creds = self.credentials
        query = sign_params("POST", self._prefix + path, {}, key=creds.key, secret=creds.secret, body=body)
        try:
            response = await self._client.post(
                self._base + path, params=query, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise BroadcastError(f"cannot reach the Pusher HTTP API at {self._base}: {exc!r}") from exc
        if response.status_code != 200:
            raise BroadcastError(
                f"the Pusher HTTP API answered {response.status_code}: {response.text[:200]}"
            )
        # Soketi 1.6 answers a refused signature with status 200 and {"error": ..., "code": 401}.
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict) and "error" in body:
            raise BroadcastError(
                f"the Pusher HTTP API refused the event ({body.get('code')}): {body['error']}"
            )
