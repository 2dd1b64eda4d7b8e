"""How Laravel serialises values the demo back end sends."""

from __future__ import annotations

from datetime import UTC, datetime


def laravel_timestamp(moment: datetime | None = None) -> str:
    """A timestamp the way Laravel serialises Carbon dates: ``2026-01-02T03:04:05.000000Z``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
