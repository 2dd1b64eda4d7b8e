"""A real ``quvel serve`` process for the front-end tests, and a condition wait that keeps the UI's loop
turning."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quvel.demo import PusherCredentials
from tests.peers import ROOT, stop_process_group

IMAGES = ROOT / "docs" / "images"


@dataclass(frozen=True)
class Served:
    ws_url: str
    http_url: str
    credentials: PusherCredentials


@pytest.fixture
def quvel_serve() -> Iterator[Served]:
    """``quvel serve`` on a free loopback port, client events on (the chat's typing whispers)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--enable-client-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        start_new_session=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()  # the first line says where it listens; EOF if it failed to start
        assert line.startswith("{"), f"quvel serve did not start (exit {proc.poll()}): {line!r}"
        info = json.loads(line)
        yield Served(
            info["ws"],
            info["http"],
            PusherCredentials(info["http"], info["app_id"], info["key"], "app-secret"),
        )
    finally:
        stop_process_group(proc)
        proc.stdout.close()


async def eventually(
    condition: Callable[[], bool],
    what: str,
    within: float = 15.0,
    pause: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Wait (yielding to the loop, or to ``pause()``) until ``condition()`` holds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await (pause() if pause is not None else asyncio.sleep(0.05))


def image_path(name: str) -> Path:
    IMAGES.mkdir(parents=True, exist_ok=True)
    return IMAGES / name
