"""Issue 11's fault rows, short versions, against the embedded server, Soketi and the Reverb-like
scripted server. The long versions run from ``benchmarks/reliability.py``; numbers print with ``-s``."""

from __future__ import annotations

import json

import pytest

from tests.faults import resubscribe
from tests.peers import require_soketi

SERVERS = ["embedded", pytest.param("soketi", marks=pytest.mark.peers), "reverb"]

pytestmark = pytest.mark.slow


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "soketi":
        require_soketi()
    return str(request.param)


def show(row: dict[str, object]) -> None:
    print(json.dumps(row, default=str))


def nothing_lost_once(row: dict[str, object]) -> None:
    assert row["events_lost"] == 0
    assert row["duplicates"] == 0
    assert row["events_sent"] == row["events_received"] + row["events_recovered"]  # type: ignore[operator]


@pytest.mark.parametrize("failing", [False, True], ids=["slow", "503"])
async def test_auth_slow_or_failing_during_resubscribe(kind: str, failing: bool) -> None:
    row = await resubscribe.auth_resubscribe(
        kind, clients=3, rate=60, failing=failing, delay=1.0, auth_down=2.0
    )
    show(row)
    assert row["auth_slowed"] >= 3  # every client's re-authorisation met the slow/failing endpoint
    if failing:
        assert row["auth_errors"] >= 3  # each was reported as an AuthorizationError, then retried
    assert row["recovery_s"] is not None, "a private subscription did not come back once auth did"
    assert row["recovery_s"] <= 5.0 + 2.0  # the 5 s backoff cap plus slack
    nothing_lost_once(row)
    assert row["events_recovered"] > 0  # events were published while the clients were resubscribing


async def test_presence_members_consistent_after_a_kill_during_joins(kind: str) -> None:
    row = await resubscribe.presence_kill(kind, clients=4, rate=40, down_for=0.5)
    show(row)
    assert row["recovery_s"] is not None, f"member lists never agreed: {row['members_seen']}"
    assert row["members_consistent"], row["members_seen"]
    nothing_lost_once(row)


async def test_blackhole_during_a_subscribe(kind: str) -> None:
    row = await resubscribe.blackhole_subscribe(kind, rate=40)
    show(row)
    assert row["subscribed_in_blackhole"] == 0  # the subscribe really went into the blackhole
    assert row["detection_s"] is not None  # the dead link was noticed (heartbeat or subscribe timeout)
    assert row["detection_s"] <= row["detection_limit_s"] + 1.5  # type: ignore[operator]
    assert row["recovery_s"] < 5.0  # type: ignore[operator]
    nothing_lost_once(row)
    assert row["events_recovered"] > 0


async def test_wrong_tls_certificate_stops_without_a_retry_loop(kind: str) -> None:
    row = await resubscribe.tls_wrong(kind, rate=40, watch_for=3.0)
    show(row)
    assert row["certificate_errors"] >= 1
    assert row["client_state"] == "failed"
    assert row["tls_attempts"] == 1  # one TLS connection in 3 s: no retry loop
    assert row["stopped_after_s"] < 5.0  # type: ignore[operator]
    nothing_lost_once(row)  # once the trust is fixed, the reload brings every notification
    assert row["events_recovered"] > 0
