"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.peers import RUNNING_SOKETIS, SoketiServer


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_soketi() -> Iterator[None]:
    """Fail the run if a test leaves a Soketi process behind (and kill it)."""
    yield
    leaked = sorted(RUNNING_SOKETIS)
    for pid in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    RUNNING_SOKETIS.clear()
    assert not leaked, f"Soketi processes left running by the tests (now killed): {leaked}"


@pytest.fixture(scope="session")
def soketi() -> Iterator[SoketiServer]:
    """One Soketi for the session (client events on, user authentication off). Do not stop it in a test:
    use ``soketi_factory`` for a server of your own."""
    server = SoketiServer().start()
    yield server
    server.stop()


@pytest.fixture
def soketi_factory() -> Iterator[Callable[..., SoketiServer]]:
    """Build private Soketi servers (``soketi_factory(user_authentication=True).start()``).

    All of them are stopped afterwards."""
    made: list[SoketiServer] = []

    def make(**kwargs: Any) -> SoketiServer:
        server = SoketiServer(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop(hard=True)
