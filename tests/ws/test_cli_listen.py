"""``quvel listen`` as a user runs it: a subprocess tailing a Soketi channel through a restart."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import pytest

from tests.peers import ROOT, SoketiServer
from tests.ws.conftest import AuthServer, sdk_for
from tests.ws.helpers import in_thread

pytestmark = [pytest.mark.peers, pytest.mark.slow]


async def wait_line(stream: asyncio.StreamReader, needle: str, within: float = 30.0) -> str:
    async def read() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise EOFError(f"stream ended before {needle!r}")
            if needle in line:
                return line

    return await asyncio.wait_for(read(), within)


async def test_listen_json_count_stats_through_a_restart(soketi_factory: Callable[..., SoketiServer]) -> None:
    server = await in_thread(soketi_factory().start)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quvel",
        "listen",
        server.ws_url,
        "--channel",
        "news",
        "--count",
        "3",
        "--json",
        "--stats",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        await wait_line(proc.stderr, "# subscribed to news")
        sdk = sdk_for(server)
        await in_thread(sdk.trigger, "news", "A", {"x": 1})
        await in_thread(server.restart, True)
        await wait_line(proc.stderr, "# subscribed to news")
        await in_thread(sdk.trigger, "news", "B", "plain text")
        await in_thread(sdk.trigger, "news", "C", [1, 2])
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines[:3] == [
        {"channel": "news", "event": "A", "data": {"x": 1}},
        {"channel": "news", "event": "B", "data": "plain text"},
        {"channel": "news", "event": "C", "data": [1, 2]},
    ]
    stats = lines[-1]
    assert stats["received"] == 3
    assert stats["seconds"] > 0
    assert stats["events_per_s"] == pytest.approx(3 / stats["seconds"], rel=0.01)
    assert proc.returncode == 0


async def test_listen_event_filter_quiet_and_bad_arguments(soketi: SoketiServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quvel",
        "listen",
        soketi.ws_url,
        "--channel",
        "filtered",
        "--event",
        "Wanted",
        "--count",
        "1",
        "--quiet",
        "--stats",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        sdk = sdk_for(soketi)

        async def occupied() -> bool:
            return bool((await in_thread(sdk.channel_info, "filtered"))["occupied"])

        while not await occupied():  # noqa: ASYNC110 - polling Soketi's HTTP API
            await asyncio.sleep(0.05)
        await in_thread(sdk.trigger, "filtered", "Other", {})
        await in_thread(sdk.trigger, "filtered", "App\\Events\\Wanted", {"n": 1})
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert err == b""
    (only,) = out.decode().splitlines()
    assert json.loads(only)["received"] == 1
    bad = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quvel",
        "listen",
        "http://nope/app/k",
        "--channel",
        "x",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await bad.communicate()
    assert bad.returncode == 2
    assert b"ws:// or wss://" in err


async def test_listen_private_channel_with_auth_header(soketi: SoketiServer, auth_server: AuthServer) -> None:
    auth_server.required_header = ("Authorization", "Bearer cli-token")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quvel",
        "listen",
        soketi.ws_url,
        "--channel",
        "orders.9",
        "--type",
        "private",
        "--auth-endpoint",
        auth_server.url + "/broadcasting/auth",
        "--header",
        "Authorization: Bearer cli-token",
        "--count",
        "1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        await wait_line(proc.stderr, "# subscribed to private-orders.9")
        await in_thread(sdk_for(soketi).trigger, "private-orders.9", "Shipped", {"id": 9})
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert out.decode().strip() == 'private-orders.9 Shipped {"id": 9}'
    assert auth_server.records[0].headers["authorization"] == "Bearer cli-token"
