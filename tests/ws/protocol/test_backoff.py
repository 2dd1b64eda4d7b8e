"""Reconnect delays: exponential growth, full jitter, cap, reset on success."""

from __future__ import annotations

import random

import pytest

from quvel_ws.protocol import RetryScheduled
from quvel_ws.protocol._backoff import Backoff

from .harness import Harness, of_type, opens


def test_full_jitter_grows_exponentially_and_is_capped() -> None:
    b = Backoff(1.0, 30.0, 1.0, random.Random(3))
    ceilings = [b.ceiling(n) for n in range(8)]
    assert ceilings == [1, 2, 4, 8, 16, 30, 30, 30]
    samples: dict[int, list[float]] = {n: [] for n in range(8)}
    for _ in range(300):
        b.reset()
        for n in range(8):
            samples[n].append(b.next_delay("reconnect"))
    for n, values in samples.items():
        assert all(0 <= v <= ceilings[n] for v in values)
        # jitter really spreads the delays over the window
        assert max(values) - min(values) > ceilings[n] * 0.8


def test_backoff_kind_is_at_least_initial() -> None:
    b = Backoff(1.0, 30.0, 1.0, random.Random(5))
    values = [b.next_delay("backoff") for _ in range(20)]
    assert all(v >= 1.0 for v in values)
    assert all(v <= 30.0 for v in values)
    assert values[0] == 1.0  # attempt 0: exactly the minimum


def test_immediate_is_small_first_then_backs_off() -> None:
    b = Backoff(1.0, 30.0, 0.25, random.Random(9))
    assert 0 <= b.next_delay("immediate") <= 0.25
    assert 0 <= b.next_delay("immediate") <= 2.0
    assert b.attempt == 2
    b.reset()
    assert b.attempt == 0


def test_huge_attempt_counts_do_not_overflow() -> None:
    b = Backoff(1.0, 30.0, 1.0, random.Random(1))
    b.attempt = 10_000
    assert 0 <= b.next_delay("reconnect") <= 30


def test_injected_rng_makes_delays_reproducible() -> None:
    def delays(seed: int) -> list[float]:
        h = Harness(seed=seed)
        h.proto.connect(h.now)
        out = []
        for _ in range(5):
            h.proto.transport_failed(OSError("x"), h.now)
            (retry,) = of_type(h.drain(), RetryScheduled)
            out.append(retry.delay)
            h.advance(retry.delay)
        return out

    assert delays(11) == delays(11)
    assert delays(11) != delays(12)


def test_attempts_reset_once_a_connection_proved_stable() -> None:
    h = Harness(backoff_initial=1, backoff_max=64, backoff_reset_after=30, activity_timeout=1000)
    h.proto.connect(h.now)
    for _ in range(5):
        h.proto.transport_failed(OSError("x"), h.now)
        (retry,) = of_type(h.drain(), RetryScheduled)
        h.advance(retry.delay)
    h.proto.transport_opened(h.now)
    h.establish(activity_timeout=1000)
    h.advance(30)
    (retry,) = of_type(h.close(1006), RetryScheduled)
    assert retry.delay <= 1.0
    assert retry.attempt == 1


def test_a_server_that_drops_every_connection_at_once_is_backed_off_more_and_more() -> None:
    h = Harness(backoff_initial=1, backoff_max=64, backoff_reset_after=30)
    ceilings = []
    for _ in range(7):
        h.open()
        h.establish()
        (retry,) = of_type(h.close(1006), RetryScheduled)
        assert retry.attempt == 1  # OpenTransport numbering restarts with every connection...
        ceilings.append(retry.delay)
        h.advance(retry.delay)
    # ...but the delay window keeps doubling: 1, 2, 4, 8, 16, 32, 64
    assert all(d <= 2**i for i, d in enumerate(ceilings))
    assert max(ceilings[4:]) > 4  # with this seed the later windows are really used


@pytest.mark.parametrize("outage", [10.0, 60.0])
def test_default_policy_tries_at_least_every_5_s_through_an_outage(outage: float) -> None:
    """Fast recovery: with the defaults, no gap between connect attempts exceeds ``backoff_max`` (5 s),
    so a client is back within 5 s plus a connect of the server's return, however long it was gone."""
    for seed in range(20):
        h = Harness(seed=seed)
        h.connect("1.1")
        h.close(None)  # the server is killed
        attempts: list[float] = []
        while h.now < 1000.0 + outage:
            deadline = h.proto.next_deadline()
            assert deadline is not None
            if opens(h.advance(max(0.0, deadline - h.now))):
                attempts.append(h.now)
                h.proto.transport_failed(OSError("refused"), h.now)  # still down
                h.drain()
        gaps = [b - a for a, b in zip([1000.0, *attempts], attempts, strict=False)]
        assert max(gaps) <= 5.0
        assert len(attempts) < outage  # and never a tight loop: jittered, exponential up to the cap
