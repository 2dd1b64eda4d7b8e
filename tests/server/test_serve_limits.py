"""``quvel serve``'s flags for the operational limits: each one reaches the running server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from quvel import flags as opt
from quvel_ws.server import AppConfig, Limits
from tests.peers import read_json_line
from tests.server.conftest import Raw

LIMITS = (
    opt.MAX_CHANNELS_PER_CONNECTION,
    opt.MAX_PENDING_CONNECTIONS,
    opt.MAX_PENDING_PER_ADDRESS,
    opt.HEAD_TIMEOUT,
    opt.MAX_PENDING_WEBHOOKS,
)


@contextlib.contextmanager
def serve(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUVEL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--app-secret", "s", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **(env or {})},
    )
    try:
        yield read_json_line(proc, timeout=20), proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_flag_defaults_are_the_library_defaults() -> None:
    limits, app = Limits(), AppConfig()
    assert opt.MAX_CHANNELS_PER_CONNECTION.default == app.max_channels_per_connection
    for setting in (
        opt.MAX_PENDING_CONNECTIONS,
        opt.MAX_PENDING_PER_ADDRESS,
        opt.HEAD_TIMEOUT,
        opt.MAX_PENDING_WEBHOOKS,
    ):
        assert setting.default == getattr(limits, setting.dest), setting.flag


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("--head-timeout", "0"), {}, "--head-timeout: expected a positive number of seconds, got '0'"),
        (("--head-timeout", "nan"), {}, "--head-timeout: expected a positive number"),
        (("--max-pending-connections", "-1"), {}, "--max-pending-connections: expected a whole number"),
        ((), {"QUVEL_MAX_PENDING_WEBHOOKS": "lots"}, "QUVEL_MAX_PENDING_WEBHOOKS: expected a whole number"),
        ((), {"QUVEL_MAX_CHANNELS_PER_CONNECTION": "0"}, "QUVEL_MAX_CHANNELS_PER_CONNECTION: expected"),
    ],
)
def test_bad_limit_values_are_refused_by_name(args: tuple[str, ...], env: dict[str, str], said: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUVEL_")}
    result = subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**clean, **env},
    )
    assert result.returncode == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_each_limit_with_default_and_env() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    for setting in LIMITS:
        text = " ".join(result.stdout.split())  # argparse wraps lines
        entry = text.rsplit(f"{setting.flag} {setting.metavar} ", 1)[1].split(" --", 1)[0]
        assert f"(default: {setting.default}; env {setting.env})" in entry


async def test_channel_limit_flag_and_env() -> None:
    for args, env in (
        (("--max-channels-per-connection", "2"), {}),
        ((), {"QUVEL_MAX_CHANNELS_PER_CONNECTION": "2"}),
    ):
        with serve(*args, env=env) as (info, _proc):
            raw = await Raw.connect(info["ws"])
            for name in ("a", "b"):
                await raw.send("pusher:subscribe", {"channel": name})
                await raw.expect("pusher_internal:subscription_succeeded", channel=name)
            await raw.send("pusher:subscribe", {"channel": "c"})
            error = await raw.expect("pusher:subscription_error", channel="c")
            assert error["data"]["type"] == "LimitReached"
            assert error["data"]["status"] == 4100
            await raw.close()


async def _pending(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    await writer.drain()
    return reader, writer


async def closed(reader: asyncio.StreamReader) -> bool:
    """The server closed (or aborted) this connection without answering, within 5 s."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


async def test_head_timeout_and_pending_per_address_flags() -> None:
    with serve("--head-timeout", "1", env={"QUVEL_MAX_PENDING_PER_ADDRESS": "1"}) as (info, _proc):
        started = time.monotonic()
        first = await _pending(info["port"])
        second = await _pending(info["port"])
        assert await closed(second[0])  # past the per-address cap: closed
        answer = await asyncio.wait_for(first[0].read(), 10)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 0.9 < time.monotonic() - started < 5  # the 1 s deadline + slack, not the default 10 s
        for _reader, writer in (first, second):
            writer.close()


async def test_pending_connections_flag_closes_the_oldest() -> None:
    with serve("--max-pending-connections", "2") as (info, _proc):
        held = [await _pending(info["port"]) for _ in range(2)]  # held: a dropped writer closes its socket
        await asyncio.sleep(0.2)  # accepted in order
        held.append(await _pending(info["port"]))
        assert await closed(held[0][0])
        assert held[1][0].at_eof() is False  # the newer ones stay
        for _reader, writer in held:
            writer.close()


async def test_webhook_bound_flag_drops_the_oldest_and_logs_it() -> None:
    hung = socket.socket()  # listens and never accepts: every webhook POST hangs
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    try:
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/hook"
        with serve("--webhook", url, "--max-pending-webhooks", "5") as (info, proc):
            raw = await Raw.connect(info["ws"])
            for i in range(20):  # 40 channel_occupied/vacated events for a queue of 5
                await raw.send("pusher:subscribe", {"channel": f"w{i}"})
                await raw.expect("pusher_internal:subscription_succeeded", channel=f"w{i}")
                await raw.send("pusher:unsubscribe", {"channel": f"w{i}"})
            await raw.send("pusher:ping")
            await raw.expect("pusher:pong")
            await raw.close()
            proc.terminate()
            _out, err = proc.communicate(timeout=10)
        assert "webhook queue full (5 events)" in err
    finally:
        hung.close()
