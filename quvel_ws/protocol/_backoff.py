"""Reconnect delays: exponential backoff with full jitter, capped.

Jitter matters because servers (Soketi, Sockudo) close every socket at once on shutdown: without it
every client would reconnect, and re-authorise every private channel, in the same instant.
"""

from __future__ import annotations

import random
from typing import Literal

RetryKind = Literal["immediate", "reconnect", "backoff"]

_MAX_EXPONENT = 32  # 2**32 * any sane initial is far above any cap; avoids huge ints


class Backoff:
    """Computes the delay of the next connection attempt; ``reset()`` once connected.

    - ``immediate`` (4200-4299, pong timeout, 4000): uniform(0, immediate_jitter) for the first retry,
      full-jitter backoff for the following ones so a server that keeps saying "now" is not hammered;
    - ``reconnect`` (1000-range closes, transport failures): uniform(0, min(cap, initial * 2**n));
    - ``backoff`` (4100-4199, 1002-1004, handshake failures): at least ``initial`` (the protocol asks
      for >= 1 s), uniform(initial, max(initial, min(cap, initial * 2**n))).
    """

    __slots__ = ("_cap", "_immediate_jitter", "_initial", "_rng", "attempt")

    def __init__(self, initial: float, cap: float, immediate_jitter: float, rng: random.Random) -> None:
        self._initial = initial
        self._cap = cap
        self._immediate_jitter = immediate_jitter
        self._rng = rng
        self.attempt = 0  # failed attempts since the last successful connection

    def reset(self) -> None:
        self.attempt = 0

    def ceiling(self, attempt: int | None = None) -> float:
        """The upper bound of the jittered delay for ``attempt`` (default: the next one)."""
        n = self.attempt if attempt is None else attempt
        return min(self._cap, self._initial * float(2 ** min(n, _MAX_EXPONENT)))

    def next_delay(self, kind: RetryKind) -> float:
        """Delay before the next attempt (seconds); counts the attempt."""
        n = self.attempt
        self.attempt = n + 1
        if kind == "immediate" and n == 0:
            return self._rng.uniform(0.0, self._immediate_jitter) if self._immediate_jitter > 0 else 0.0
        high = self.ceiling(n)
        if kind == "backoff":
            low = min(self._initial, self._cap)
            return self._rng.uniform(low, max(low, high))
        return self._rng.uniform(0.0, high)
