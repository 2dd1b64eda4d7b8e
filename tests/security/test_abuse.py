"""The abuse suite (``tests/security/abuse.py``), CI-sized, with generous bounds: liveness and memory,
never speed. ``python -m tests.security.abuse`` runs the full-size versions for docs/security.md."""

from __future__ import annotations

import pytest

from tests.security import abuse

pytestmark = pytest.mark.slow


async def test_slowloris_is_closed_within_the_deadline() -> None:
    figures = await abuse.slowloris(head_timeout=1.0)
    for phase, deadline in (("head", 1.0), ("handshake", 1.0), ("body", figures["body_deadline"])):
        # closed at the deadline (not reset by each byte), with slack for a loaded machine
        assert deadline - 0.1 <= figures[phase] <= deadline + 2.0, (phase, figures)


async def test_pending_handshakes_are_capped_and_new_clients_still_served() -> None:
    figures = await abuse.pending_handshakes(n=300, cap=100)
    assert figures["pending"] <= 100
    assert figures["evicted"] + figures["refused"] >= 200
    assert figures["honest_ms_max"] < 5000  # served at all, promptly (the figure is in docs/security.md)


async def test_one_socket_cannot_hold_unbounded_channels() -> None:
    figures = await abuse.many_channels(n=20_000)
    assert figures["accepted"] == 1000
    assert figures["refused"] == 19_000
    assert figures["rss_after_mb"] - figures["rss_before_mb"] < 30


async def test_a_hung_webhook_endpoint_costs_bounded_memory() -> None:
    figures = await abuse.hung_webhook(seconds=6)
    assert figures["webhook_events"] > 10_000  # more than the queue holds
    assert figures["drop_log_lines"] >= 1  # dropping is logged...
    assert figures["drop_log_lines"] <= 3  # ...once per 10 s, not per event
    assert figures["rss_peak_mb"] - figures["rss_before_mb"] < 50


async def test_log_volume_under_a_hostile_peer_is_bounded() -> None:
    client = await abuse.hostile_client_logs(frames=6000)
    assert client["server_log_bytes"] < 10_000
    server = await abuse.hostile_server_logs(errors=5000)
    assert server["lines"] < 50  # 5000 identical errors: a handful of lines and a count
