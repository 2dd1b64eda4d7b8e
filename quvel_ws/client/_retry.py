"""Retrying a subscription whose authorisation failed for a passing reason."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from quvel_ws.errors import AuthorizationError, SubscriptionRefused, SubscriptionTimeout, WsError

logger = logging.getLogger(__name__)


def is_transient(error: WsError) -> bool:
    """A failure worth retrying on its own: the auth endpoint unreachable, overloaded or failing, or
    the server never answering. 401/403, bad responses and the server's refusal of the signature
    (:class:`SubscriptionRefused`) wait for a reconnect or a new subscribe."""
    if isinstance(error, SubscriptionTimeout):
        return True
    if isinstance(error, SubscriptionRefused):
        return False  # the server rejected the signature: the endpoint would give the same one again
    if isinstance(error, AuthorizationError):
        status = error.status
        return status is not None and (status in (0, 408, 425, 429) or 500 <= status < 600)
    return False


class SubscriptionRetry:
    """Capped, jittered exponential backoff per channel, until it succeeds or nobody wants it.

    ``resubscribe(name)`` runs when a timer fires; it decides whether the channel is still wanted."""

    def __init__(
        self,
        *,
        initial: float,
        ceiling: float,
        rng: random.Random | None,
        resubscribe: Callable[[str], None],
    ) -> None:
        self._initial = initial
        self._ceiling = ceiling
        self._rng = rng
        self._resubscribe = resubscribe
        self._attempts: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def schedule(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        attempt = self._attempts.get(name, 0) + 1
        self._attempts[name] = attempt
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        ceiling = min(self._ceiling, self._initial * 2 ** (attempt - 1))
        delay = (self._rng or random).uniform(ceiling / 2, ceiling)
        self._timers[name] = loop.call_later(delay, self._fire, name)
        logger.info("retrying the subscription to %s in %.2fs (attempt %d)", name, delay, attempt)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self._resubscribe(name)

    def forget(self, name: str) -> None:
        """Stop retrying ``name`` and reset its attempt count (it succeeded, or was left)."""
        self._attempts.pop(name, None)
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for name in list(self._timers):
            self.forget(name)
        self._attempts.clear()
