"""Bounds that only show under pressure: the webhook queue toward a hung endpoint, accept() out of file
descriptors, and a slow consumer aborted in the middle of a fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import websockets

from quvel_ws.server import AppConfig, Limits, PusherServer
from tests.peers import read_json_line
from tests.server.conftest import Raw


@contextlib.contextmanager
def hung_endpoint() -> Iterator[str]:
    """A URL whose server listens and never accepts: every POST to it hangs until the client's timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()


async def test_webhook_queue_toward_a_hung_endpoint_keeps_the_bound() -> None:
    with hung_endpoint() as url:
        limits = Limits(max_pending_webhooks=50)
        async with PusherServer(apps=[AppConfig(webhooks=(url,))], limits=limits) as server:
            raw = await Raw.connect(server.ws_url)
            for i in range(150):  # 300 events (occupied + vacated) while the first batch hangs
                await raw.subscribe(f"w{i}")
                await raw.send("pusher:unsubscribe", {"channel": f"w{i}"})
            await raw.send("pusher:ping")
            await raw.expect("pusher:pong")
            # at most 50 wait; the rest (less the few in the hung first batch) were dropped, oldest first
            assert server.stats()["webhooks_dropped"] >= 300 - 50 - 10
            await raw.close()


def _few_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_out_of_file_descriptors_pauses_accept_and_logs_once() -> None:
    """asyncio's own accept loop logs and retries on EMFILE at once (thousands of lines a second)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUVEL_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quvel",
            "serve",
            "--port",
            "0",
            "--app-secret",
            "s",
            "--max-pending-per-address",
            "500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
        preexec_fn=_few_fds,  # noqa: PLW1509 - a resource limit for the child only, no threads involved
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    clients: list[socket.socket] = []
    try:
        info = read_json_line(proc, timeout=20)
        for _ in range(100):  # past the server's 64 descriptors: the rest wait in the backlog
            clients.append(socket.create_connection(("127.0.0.1", info["port"])))
        time.sleep(3)  # three pause intervals of 1 s
        refusals = [line for line in lines if "cannot accept connections" in line]
        assert len(refusals) == 1, lines[:5]
        assert len(lines) <= 3  # the warning about the default secret aside, nothing else
        for client in clients:
            client.close()
        clients.clear()

        async def served() -> str:
            async with websockets.connect(info["ws"], open_timeout=10) as ws:
                return str(await asyncio.wait_for(ws.recv(), 10))

        assert "pusher:connection_established" in asyncio.run(served())  # accepting again
    finally:
        for client in clients:
            client.close()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()


async def test_a_slow_consumer_aborted_mid_fanout_is_never_written_to(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After abort() the transport counts every further write and asyncio warns from the fifth on;
    connection_lost (which leaves the channels) only runs on the next loop iteration."""
    channels = [f"firehose.{i}" for i in range(20)]
    async with PusherServer(limits=Limits(max_write_buffer_bytes=64 * 1024)) as server:
        stuck = await Raw.connect(server.ws_url)
        for name in channels:
            await stuck.subscribe(name)
        stuck.ws.transport.pause_reading()  # the kernel buffers fill, then the server's
        (conn,) = server.connections
        transport = conn.transport
        assert transport is not None
        aborted = asyncio.Event()
        real_abort = transport.abort

        def observed_abort() -> None:  # observe only: the real abort runs
            aborted.set()
            real_abort()

        transport.abort = observed_abort  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(5000):
                for name in channels:  # server.trigger never yields: nothing else runs in between
                    await server.trigger(name, "Big", "x" * 8000)
                    if aborted.is_set():
                        break
                if aborted.is_set():
                    break
                await asyncio.sleep(0)
            assert aborted.is_set()
            for name in channels:  # the same iteration: the aborted socket is still subscribed
                await server.trigger(name, "After", "x")
            await asyncio.sleep(0.1)
        assert server.connection_count() == 0
        assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
