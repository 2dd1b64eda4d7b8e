"""A running embedded server (own thread) for the fuzz tests, plus a watch on its error log.

Hypothesis runs many examples in one test; the server is started once per module and checked after
every example: it must still serve an honest client, and it must never have logged an error (a
``logger.exception`` in the server means a handler raised: a bug, even if the socket survived).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from quvel_ws.server import AppConfig, PusherServer, ServerThread

APP = AppConfig(id="1", key="app-key", secret="app-secret", enable_client_events=True)

# CI keeps fuzzing short (seconds); QUVEL_FUZZ_EXAMPLES=2000 for a long local run.
EXAMPLES = int(os.environ.get("QUVEL_FUZZ_EXAMPLES", "60"))
settings.register_profile(
    "quvel-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class ErrorLog(logging.Handler):
    """Collects ERROR records of ``quvel_ws.server`` (and asyncio's unhandled-exception reports)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        out = [
            f"{r.name}: {r.getMessage()}" + (f"\n{r.exc_text or ''}" if r.exc_info else "")
            for r in self.records
        ]
        self.records.clear()
        return out


@pytest.fixture(scope="module")
def server_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    for name in ("quvel_ws.server", "asyncio"):
        logging.getLogger(name).addHandler(handler)
    yield handler
    for name in ("quvel_ws.server", "asyncio"):
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def fuzz_server(server_errors: ErrorLog) -> Iterator[ServerThread]:
    thread = PusherServer(apps=[APP]).start_in_thread()
    try:
        yield thread
    finally:
        thread.close()
