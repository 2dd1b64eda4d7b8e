"""A loopback TCP fault proxy: sits between a client and a server and breaks the link on demand.

Modes, switchable at runtime while connections are open:

- ``pass_through()``: forward bytes both ways unchanged;
- ``delay(ms)``: forward with added one-way latency (order preserved);
- ``blackhole()``: silence without a close: nothing is read or forwarded either way and new connections
  are accepted but never reach the server, as when a NAT or a Wi-Fi link dies; ``pass_through()`` lets
  the held bytes flow again (TCP would retransmit them);
- ``cut(direction, keep)``: forward only the first ``keep`` bytes of the next chunk (half of it by
  default, so a WebSocket frame is cut in the middle), then reset both sides;
- ``refuse(seconds)``: stop listening, so connects fail with ``ECONNREFUSED`` (``reset=True`` keeps
  listening but resets each new connection at once, which lets a test count the attempts);
- ``start_flapping(period)``: drop every connection each ``period`` seconds.

``await drop_all()`` resets every open connection (RST, no FIN, no WebSocket close frame). ``stats``
counts connections, bytes, drops, cuts and refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import ssl as ssl_module
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

log = logging.getLogger(__name__)

Direction = Literal["up", "down", "both"]  # up: client -> server; down: server -> client

_CHUNK = 65536


class Mode(enum.StrEnum):
    PASS = "pass"
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    CUT = "cut"
    REFUSE = "refuse"


@dataclass
class ProxyStats:
    """Counters since the proxy started. ``connections`` counts client connections that reached the
    server; ``refused`` counts connections reset by ``refuse(reset=True)``; ``upstream_failures``
    counts client connections whose server connect failed (server down)."""

    accepted: int = 0
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    drops: int = 0
    cuts: int = 0
    refused: int = 0
    upstream_failures: int = 0
    #: ``loop.time()`` of every accepted client connection / every one that reached the server.
    accepted_at: list[float] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close abruptly: SO_LINGER 0 makes the kernel send RST instead of FIN."""
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Link:
    """One client connection and its server connection, with a pump task per direction."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self._last_deadline = {"up": 0.0, "down": 0.0}
        self.recorded: bytearray | None = None
        self.index = 0

    def reset(self) -> None:
        if self.closed:
            return
        self.closed = True
        _reset(self.client)
        if self.server is not None:
            _reset(self.server)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    def close_gracefully(self) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.server):
            if writer is not None:
                writer.close()

    def _record(self, data: bytes) -> None:
        limit = self.proxy.record
        if self.recorded is None:
            self.recorded = bytearray()
            self.proxy.handshakes.append(b"")
            self.index = len(self.proxy.handshakes) - 1
        if len(self.recorded) < limit:
            self.recorded += data[: limit - len(self.recorded)]
            self.proxy.handshakes[self.index] = bytes(self.recorded)

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not self.closed and not writer.transport.is_closing():
            writer.write(data)

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Literal["up", "down"]
    ) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        try:
            while True:
                await proxy._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await proxy._flowing.wait()  # a blackhole that started during the read holds this chunk
                if self.closed:
                    return
                if proxy._mode is Mode.CUT and proxy._cut_direction in (direction, "both"):
                    keep = proxy._cut_keep if proxy._cut_keep is not None else max(1, len(data) // 2)
                    self._write(writer, data[: min(keep, len(data) - 1)] if len(data) > 1 else b"")
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    proxy.stats.cuts += 1
                    self.reset()
                    return
                proxy._count(direction, len(data))
                if direction == "up" and proxy.record:
                    self._record(data)
                if proxy._delay > 0:
                    # Strictly increasing deadlines keep the chunks in order even if the delay shrinks.
                    deadline = max(loop.time() + proxy._delay, self._last_deadline[direction] + 1e-6)
                    self._last_deadline[direction] = deadline
                    loop.call_at(deadline, self._write, writer, data)
                else:
                    self._write(writer, data)
                    await writer.drain()
        except OSError:  # ConnectionResetError and friends: the other side is gone
            pass
        # EOF or error on one side: close the whole link (WebSocket closes happen in-band before EOF).
        if proxy._delay > 0 and not self.closed:
            # Let in-flight delayed chunks land before the FIN.
            await asyncio.sleep(max(0.0, self._last_deadline[direction] - loop.time()) + 0.001)
        self.close_gracefully()


class FaultProxy:
    """Loopback TCP proxy to ``target_host:target_port`` with switchable faults (see module doc)."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: ssl_module.SSLContext | None = None,
        record: int = 0,
    ) -> None:
        """``ssl``: terminate TLS on the listening side (the server behind stays plain), to put a TLS
        endpoint in front of a server that has none. ``record``: keep the first ``record`` bytes each
        client sent (its HTTP request / WebSocket handshake) in ``handshakes``."""
        self.ssl = ssl
        self.record = record
        self.handshakes: list[bytes] = []
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._mode = Mode.PASS
        self._delay = 0.0
        self._cut_direction: Direction = "down"
        self._cut_keep: int | None = None
        self._refuse_reset = False
        self._reopen: asyncio.TimerHandle | None = None
        self._flapper: asyncio.Task[None] | None = None
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.stats = ProxyStats()

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> Self:
        await self._listen()
        return self

    async def close(self) -> None:
        """Stop listening and reset every connection; waits for the pump tasks to finish."""
        self.stop_flapping()
        if self._reopen is not None:
            self._reopen.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.reset()
        tasks = [t for link in self._links for t in link.tasks] + list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._links.clear()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def mode(self) -> Mode:
        return self._mode

    def url(self, path: str = "", scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self._port}{path}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # --- modes --------------------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward everything unchanged (also ends a blackhole, a delay, a cut or a refusal)."""
        self._set_mode(Mode.PASS)
        self._delay = 0.0
        self._flowing.set()
        self._accepting_again()

    def delay(self, ms: float) -> None:
        """Add ``ms`` milliseconds of one-way latency to every chunk, both directions."""
        self._set_mode(Mode.DELAY if ms > 0 else Mode.PASS)
        self._delay = ms / 1000.0
        self._flowing.set()

    def blackhole(self) -> None:
        """Stop forwarding both ways without closing anything; new connections hang."""
        self._set_mode(Mode.BLACKHOLE)
        self._flowing.clear()

    def cut(self, direction: Direction = "down", keep: int | None = None) -> None:
        """On each connection, forward only ``keep`` bytes (default: half) of the next chunk going
        ``direction``, then reset both sides. Stays armed until another mode is chosen."""
        self._cut_direction = direction
        self._cut_keep = keep
        self._set_mode(Mode.CUT)
        self._flowing.set()

    def refuse(self, seconds: float | None = None, *, reset: bool = False) -> None:
        """Refuse new connections for ``seconds`` (``None``: until ``pass_through``). Open connections
        are left alone. ``reset=False`` closes the listening socket (real ``ECONNREFUSED``);
        ``reset=True`` accepts and resets at once, counted in ``stats.refused``."""
        self._set_mode(Mode.REFUSE)
        self._refuse_reset = reset
        self._flowing.set()
        if not reset and self._server is not None:
            self._server.close()
            self._server = None
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if seconds is not None:
            self._reopen = asyncio.get_running_loop().call_later(seconds, self.pass_through)

    async def drop_all(self) -> int:
        """Reset (RST) every open connection; returns how many were dropped."""
        links = list(self._links)
        for link in links:
            link.reset()
        self.stats.drops += len(links)
        # Give the pump tasks a chance to see the reset and unregister.
        tasks = [t for link in links for t in link.tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(links)

    def start_flapping(self, period: float, *, down: float = 0.0) -> None:
        """Every ``period`` seconds drop every connection, then refuse new ones for ``down`` seconds."""
        self.stop_flapping()

        async def flap() -> None:
            while True:
                await asyncio.sleep(period)
                await self.drop_all()
                if down > 0:
                    self.refuse(down)

        self._flapper = asyncio.get_running_loop().create_task(flap())

    def stop_flapping(self) -> None:
        if self._flapper is not None:
            self._flapper.cancel()
            self._flapper = None

    # --- waiting --------------------------------------------------------------------------------------

    async def wait_connections(self, total: int, within: float = 10.0) -> None:
        """Wait until at least ``total`` connections reached the server since the proxy started."""
        await self._wait(lambda: self.stats.connections >= total, within)

    async def wait_open(self, count: int, within: float = 10.0) -> None:
        """Wait until exactly ``count`` connections are open."""
        await self._wait(lambda: len(self._links) == count, within)

    async def wait_accepted(self, total: int, within: float = 10.0) -> None:
        """Wait until at least ``total`` client connections were accepted (reset or not)."""
        await self._wait(lambda: self.stats.accepted >= total, within)

    async def _wait(self, predicate: Callable[[], bool], within: float) -> None:
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, within)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    # --- internals ----------------------------------------------------------------------------------

    def _set_mode(self, mode: Mode) -> None:
        if mode is not self._mode:
            log.debug("fault proxy :%d %s -> %s", self._port, self._mode, mode)
        self._mode = mode
        if mode is not Mode.REFUSE:
            self._refuse_reset = False

    def _accepting_again(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._server is None:
            self._spawn(self._listen())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._track(task)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._on_client, self.host, self._port, reuse_address=True, ssl=self.ssl
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    def _count(self, direction: str, n: int) -> None:
        if direction == "up":
            self.stats.bytes_up += n
        else:
            self.stats.bytes_down += n

    def _notify(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def _on_client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._track(task)
        self.stats.accepted += 1
        self.stats.accepted_at.append(asyncio.get_running_loop().time())
        if self._mode is Mode.REFUSE:
            self.stats.refused += 1
            _reset(c_writer)
            self._notify()
            return
        link = _Link(self, c_writer)
        self._links.add(link)
        try:
            await self._flowing.wait()  # a blackhole holds new connections before they reach the server
            try:
                s_reader, s_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                self.stats.upstream_failures += 1
                link.reset()
                return
            if link.closed:
                _reset(s_writer)
                return
            link.server = s_writer
            self.stats.connections += 1
            self.stats.connected_at.append(asyncio.get_running_loop().time())
            self._notify()
            link.tasks = [
                asyncio.ensure_future(link.pump(c_reader, s_writer, "up")),
                asyncio.ensure_future(link.pump(s_reader, c_writer, "down")),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # close() cancels handlers; end quietly (asyncio's start_server callback would log a
            # cancelled handler as an error).
            pass
        finally:
            link.reset()  # no-op after a graceful close
            self._links.discard(link)
            self._notify()
