"""The back end's side of the Pusher protocol: a signed HTTP API client that publishes events, as the
official server SDKs do, so the same back end broadcasts through the embedded server, Soketi or Pusher."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from nacl.secret import SecretBox

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

    def shared_secret(self, channel: str) -> bytes:
        """The per-channel key of an encrypted channel: sha256(channel name + master key)."""
        if self.master_key is None:
            raise BroadcastError("encrypted channels need a master_key")
        return hashlib.sha256(channel.encode() + self.master_key).digest()


def sign_request(
    method: str,
    path: str,
    params: dict[str, str],
    body: bytes,
    *,
    key: str,
    secret: str,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The query string of a signed Pusher HTTP API request (auth_key, auth_timestamp, auth_version,
    body_md5, auth_signature), signed as the official SDKs sign it."""
    query = dict(params)
    query.update(
        auth_key=key,
        auth_timestamp=str(int(time.time()) if timestamp is None else timestamp),
        auth_version="1.0",
        body_md5=hashlib.md5(body).hexdigest(),
    )
    canonical = "&".join(f"{k}={query[k]}" for k in sorted(query))
    to_sign = f"{method.upper()}\n{path}\n{canonical}"
    query["auth_signature"] = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return query


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
            payload = self._encrypt(names[0], payload)
        message: dict[str, Any] = {"name": event, "channels": names, "data": payload}
        if socket_id:
            message["socket_id"] = socket_id
        await self._post(f"/apps/{self.credentials.app_id}/events", orjson.dumps(message))

    def _encrypt(self, channel: str, payload: str) -> str:
        nonce = os.urandom(SecretBox.NONCE_SIZE)
        box = SecretBox(self.credentials.shared_secret(channel))
        sealed = box.encrypt(payload.encode(), nonce)
        return orjson.dumps(
            {
                "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
            }
        ).decode()

    async def _post(self, path: str, body: bytes) -> None:
        creds = self.credentials
        query = sign_request("POST", self._prefix + path, {}, body, key=creds.key, secret=creds.secret)
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


def _sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def channel_auth(
    credentials: PusherCredentials,
    socket_id: str,
    channel: str,
    user_id: str | int | None = None,
    user_info: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The ``/broadcasting/auth`` answer for ``channel``: private, encrypted (adds ``shared_secret``) or
    presence (``channel_data`` carries ``user_id`` and ``user_info``)."""
    body: dict[str, str] = {}
    to_sign = f"{socket_id}:{channel}"
    if channel.startswith("presence-"):
        if user_id is None:
            raise ValueError("a presence channel needs a user_id")
        channel_data = orjson.dumps({"user_id": user_id, "user_info": user_info or {}}).decode()
        body["channel_data"] = channel_data
        to_sign = f"{to_sign}:{channel_data}"
    if channel.startswith("private-encrypted-"):
        body["shared_secret"] = base64.b64encode(credentials.shared_secret(channel)).decode()
    body["auth"] = f"{credentials.key}:{_sign(credentials.secret, to_sign)}"
    return body


def user_auth(credentials: PusherCredentials, socket_id: str, user: dict[str, Any]) -> dict[str, str]:
    """The ``/broadcasting/user-auth`` answer (``pusher:signin``): ``user`` must carry an ``id``."""
    if "id" not in user:
        raise ValueError("user data needs an 'id'")
    user_data = orjson.dumps({**user, "id": str(user["id"])}).decode()
    signature = _sign(credentials.secret, f"{socket_id}::user::{user_data}")
    return {"auth": f"{credentials.key}:{signature}", "user_data": user_data}
