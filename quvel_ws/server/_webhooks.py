"""Webhooks, signed as Pusher signs them: ``X-Pusher-Key`` and ``X-Pusher-Signature`` (hex HMAC-SHA256 of
the body with the app secret). Events raised in one loop iteration go out as one batch per app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections import deque
from typing import Any

import orjson

from quvel_ws._logs import RepeatLimiter, suppressed_note
from quvel_ws.server._app import AppConfig

logger = logging.getLogger(__name__)


def webhook_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Queues webhook events and POSTs them from one background task (never blocking the server).

    The queue is bounded (``max_pending`` events over all apps): while an endpoint hangs, the oldest
    events are dropped and counted (``dropped``, logged at most every few seconds), so a dead
    receiver costs memory in proportion to the bound, not to the time it stays dead."""

    def __init__(self, timeout: float = 5.0, max_pending: int = 10_000) -> None:
        self._pending: dict[str, tuple[AppConfig, deque[dict[str, Any]]]] = {}
        self._count = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timeout = timeout
        self.max_pending = max_pending
        self.dropped = 0
        self._log_limit = RepeatLimiter(burst=1, interval=10.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="quvel-webhooks")

    def enqueue(self, app: AppConfig, event: dict[str, Any]) -> None:
        if not app.webhooks:
            return
        self._pending.setdefault(app.id, (app, deque()))[1].append(event)
        self._count += 1
        if self._count > self.max_pending:
            self._drop_oldest()
        self._wake.set()

    def _drop_oldest(self) -> None:
        # The longest queue is the one behind a slow endpoint; drop its oldest event.
        _app, queue = max(self._pending.values(), key=lambda entry: len(entry[1]))
        queue.popleft()
        self._count -= 1
        self.dropped += 1
        suppressed = self._log_limit.check("dropped")
        if suppressed is not None:
            logger.warning(
                "webhook queue full (%d events): dropping the oldest; %d dropped so far%s",
                self.max_pending,
                self.dropped,
                suppressed_note(suppressed),
            )

    async def _run(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._send_pending(client)

    async def _send_pending(self, client: Any) -> None:
        batches, self._pending, self._count = self._pending, {}, 0
        for app, events in batches.values():
            body = orjson.dumps({"time_ms": int(time.time() * 1000), "events": list(events)})
            headers = {
                "Content-Type": "application/json",
                "X-Pusher-Key": app.key,
                "X-Pusher-Signature": webhook_signature(app.secret, body),
            }
            for url in app.webhooks:
                try:
                    resp = await client.post(url, content=body, headers=headers)
                    if resp.status_code >= 300:
                        self._warn(url, f"answered {resp.status_code}")
                except Exception as exc:
                    self._warn(url, f"failed: {exc}")

    def _warn(self, url: str, what: str) -> None:
        suppressed = self._log_limit.check(f"{url} {what}")
        if suppressed is not None:
            logger.warning("webhook %s %s%s", url, what, suppressed_note(suppressed))

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
