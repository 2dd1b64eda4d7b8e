"""A real ``redis-server`` and real ``quvel serve --redis`` processes: the cluster the tests run against.

``redis-server`` is the Debian package (``scripts/test.sh`` installs it when missing); locally a missing
one skips these tests, under ``CI=true`` it fails them. Redis runs on a free loopback port with no
persistence, so a restart loses everything, as a crash of a cache-only Redis would.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.peers import APP_KEY, APP_SECRET, free_port, require, stop_process_group


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


@dataclass
class RedisServer:
    """``redis-server`` on a loopback port; ``restart()`` comes back on the same port, empty."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        require(redis_available(), "redis-server (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process_group(proc, hard=True)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class Node:
    """One ``quvel serve --redis`` process; ``info`` is its first stdout line (ws, http, port, node)."""

    def __init__(self, redis_url: str, *extra: str, port: int = 0) -> None:
        fd, name = tempfile.mkstemp(prefix="quvel-node-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quvel",
                "serve",
                "--port",
                str(port),
                "--redis",
                redis_url,
                "--enable-client-events",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        log.close()
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            self.kill()
            raise TimeoutError(f"quvel serve printed nothing: {self.log()}") from None
        if not line:
            raise RuntimeError(f"quvel serve exited ({self.proc.wait(5)}): {self.log()}")
        self.info: dict[str, Any] = json.loads(line)
        self.port: int = self.info["port"]
        self.host = "127.0.0.1"
        self.ws_url: str = self.info["ws"]
        self.http_url: str = self.info["http"]

    def kill(self) -> None:
        """``kill -9``: no close frames, no goodbye to Redis."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        stop_process_group(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def presence_auth(socket_id: str, channel: str, user_id: Any, info: Any = None) -> dict[str, str]:
    """The ``pusher:subscribe`` data a Laravel auth endpoint would give for a presence channel."""
    channel_data = json.dumps({"user_id": user_id, "user_info": info})
    sig = hmac.new(APP_SECRET.encode(), f"{socket_id}:{channel}:{channel_data}".encode(), hashlib.sha256)
    return {"auth": f"{APP_KEY}:{sig.hexdigest()}", "channel_data": channel_data}


def private_auth(socket_id: str, channel: str) -> dict[str, str]:
    sig = hmac.new(APP_SECRET.encode(), f"{socket_id}:{channel}".encode(), hashlib.sha256)
    return {"auth": f"{APP_KEY}:{sig.hexdigest()}"}


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


class SlowLink:
    """A TCP relay to Redis that holds back what Redis sends to a *subscriber* connection by ``delay``
    seconds (a congested link or a busy node): pub/sub messages then arrive after replies to commands
    sent later on the node's other connection. Runs its own event loop in a thread, so it serves a node
    while the test blocks on starting it."""

    def __init__(self, target_port: int, delay: float) -> None:
        import asyncio

        self.delay = delay
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise TimeoutError("the slow link did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self) -> None:
        import asyncio

        async def pipe(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, subscriber: list[bool], *, up: bool
        ) -> None:
            held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def release() -> None:
                while True:
                    due, chunk = await held.get()
                    await asyncio.sleep(max(0.0, due - self._loop.time()))
                    with contextlib.suppress(OSError):
                        writer.write(chunk)
                        await writer.drain()
                    held.task_done()

            releaser = asyncio.create_task(release())
            try:
                while chunk := await reader.read(65536):
                    if up and b"SUBSCRIBE" in chunk.upper():
                        subscriber[0] = True
                    if not up and subscriber[0]:
                        held.put_nowait((self._loop.time() + self.delay, chunk))
                        continue
                    writer.write(chunk)
                    await writer.drain()
            except OSError:
                pass
            finally:
                await held.join()
                releaser.cancel()
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            subscriber = [False]
            await asyncio.gather(
                pipe(reader, up_writer, subscriber, up=True),
                pipe(up_reader, writer, subscriber, up=False),
                return_exceptions=True,
            )

        async def main() -> None:
            self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()
            await self._server.serve_forever()

        with contextlib.suppress(BaseException):
            self._loop.run_until_complete(main())

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._thread.join(5)
