"""Webhooks, signed as Pusher signs them: ``X-Pusher-Key`` and ``X-Pusher-Signature`` (hex HMAC-SHA256 of
the body with the app secret). Events raised in one loop iteration go out as one batch per app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from typing import Any

import orjson

from quvel_ws.server._app import AppConfig

logger = logging.getLogger(__name__)


def webhook_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Queues webhook events and POSTs them from one background task (never blocking the server)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self._pending: dict[str, tuple[AppConfig, list[dict[str, Any]]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timeout = timeout

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="quvel-webhooks")

    def enqueue(self, app: AppConfig, event: dict[str, Any]) -> None:
        if not app.webhooks:
            return
        self._pending.setdefault(app.id, (app, []))[1].append(event)
        self._wake.set()

    async def _run(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._send_pending(client)

    async def _send_pending(self, client: Any) -> None:
        batches, self._pending = self._pending, {}
        for app, events in batches.values():
            body = orjson.dumps({"time_ms": int(time.time() * 1000), "events": events})
            headers = {
                "Content-Type": "application/json",
                "X-Pusher-Key": app.key,
                "X-Pusher-Signature": webhook_signature(app.secret, body),
            }
            for url in app.webhooks:
                try:
                    resp = await client.post(url, content=body, headers=headers)
                    if resp.status_code >= 300:
                        logger.warning("webhook %s answered %s", url, resp.status_code)
                except Exception as exc:
                    logger.warning("webhook %s failed: %s", url, exc)

    async def close(self) -> None:
        """Send what is queued (best effort), then stop."""
        if self._task is None:
            return
        if self._pending:
            import httpx

            with contextlib.suppress(Exception):
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    await self._send_pending(client)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
