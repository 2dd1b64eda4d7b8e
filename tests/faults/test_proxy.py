"""The fault proxy itself, against a trivial echo server: every mode does what it says."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import FaultProxy, Mode


class EchoServer:
    """Echoes every byte; counts the connections it saw and how many are still open."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.seen = 0
        self.open = 0
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.seen += 1
        self.open += 1
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self.open -= 1
            writer.close()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port, reuse_address=True)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo.port) as p:
        yield p


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, within: float = 5.0
) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), within)


async def read_until_closed(reader: asyncio.StreamReader, within: float = 5.0) -> tuple[bytes, str]:
    """Everything readable until the connection ends, and how it ended ('eof' or 'reset')."""
    got = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), within):
            got += chunk
    except ConnectionResetError:
        return got, "reset"
    return got, "eof"


async def test_pass_through_forwards_both_ways_and_counts(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    assert await roundtrip(reader, writer, b"hello") == b"hello"
    assert await roundtrip(reader, writer, b"x" * 200_000) == b"x" * 200_000
    assert proxy.stats.connections == 1
    assert proxy.stats.bytes_up == proxy.stats.bytes_down == 200_005
    assert proxy.open_connections == 1
    writer.close()
    await proxy.wait_open(0)
    assert echo.seen == 1


async def test_delay_adds_latency_each_way_and_keeps_order(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer, b"warm")
    proxy.delay(60)
    assert proxy.mode is Mode.DELAY
    started = time.monotonic()
    for i in range(20):
        writer.write(f"{i:03d}".encode())
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(60), 5)
    elapsed = time.monotonic() - started
    assert got == b"".join(f"{i:03d}".encode() for i in range(20))
    assert elapsed >= 0.12  # one delay up, one down: a lower bound, not a speed claim
    proxy.pass_through()
    assert await roundtrip(reader, writer, b"after") == b"after"


async def test_drop_all_resets_both_sides(proxy: FaultProxy, echo: EchoServer) -> None:
    r1, w1 = await connect(proxy)
    r2, w2 = await connect(proxy)
    await roundtrip(r1, w1, b"a")
    await roundtrip(r2, w2, b"b")
    assert await proxy.drop_all() == 2
    for reader in (r1, r2):
        _, how = await read_until_closed(reader)
        assert how == "reset"
    await proxy.wait_open(0)
    assert proxy.stats.drops == 2
    # The server side saw its connections end too (no half-open leftovers).
    for _ in range(100):
        if echo.open == 0:
            break
        await asyncio.sleep(0.01)
    assert echo.open == 0
    # New connections work again.
    r3, w3 = await connect(proxy)
    assert await roundtrip(r3, w3, b"again") == b"again"


async def test_cut_forwards_part_of_the_next_chunk_then_resets(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer, b"whole")
    proxy.cut("down")
    writer.write(b"y" * 100)
    await writer.drain()
    got, how = await read_until_closed(reader)
    assert 0 < len(got) < 100
    assert got == b"y" * len(got)
    assert how in {"reset", "eof"}
    assert proxy.stats.cuts == 1
    proxy.pass_through()
    r2, w2 = await connect(proxy)
    assert await roundtrip(r2, w2, b"z" * 100) == b"z" * 100


async def test_cut_with_explicit_byte_count_upstream(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer, b"ok")
    proxy.cut("up", keep=3)
    writer.write(b"abcdefgh")
    await writer.drain()
    got, _ = await read_until_closed(reader)
    assert got in {b"", b"abc", b"a", b"ab"}  # the server echoes what it got before the reset, if in time
    assert proxy.stats.cuts == 1


async def test_blackhole_is_silent_without_close_and_recovers(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer, b"before")
    proxy.blackhole()
    writer.write(b"held")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(10), 0.3)
    assert not reader.at_eof()
    assert proxy.open_connections == 1
    # A new connection during the blackhole is accepted but never reaches the server.
    r2, w2 = await connect(proxy)
    w2.write(b"new")
    await w2.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r2.read(10), 0.2)
    assert proxy.stats.connections == 1
    proxy.pass_through()
    # Held bytes flow again, like a TCP retransmission after the path heals.
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
    assert await asyncio.wait_for(r2.readexactly(3), 5) == b"new"
    assert proxy.stats.connections == 2


async def test_refuse_closes_the_listener_then_reopens_on_the_same_port(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    await roundtrip(reader, writer, b"x")
    port = proxy.port
    proxy.refuse(0.3)
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    # Open connections are not touched.
    assert await roundtrip(reader, writer, b"still") == b"still"
    deadline = time.monotonic() + 5
    while True:
        try:
            r2, w2 = await connect(proxy)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "the proxy never listened again"
            await asyncio.sleep(0.05)
    assert proxy.port == port
    assert await roundtrip(r2, w2, b"back") == b"back"
    assert proxy.mode is Mode.PASS


async def test_refuse_with_reset_counts_attempts(proxy: FaultProxy) -> None:
    proxy.refuse(reset=True)
    for _ in range(3):
        reader, _w = await connect(proxy)
        _, how = await read_until_closed(reader)
        assert how in {"reset", "eof"}
    assert proxy.stats.refused == 3
    assert proxy.stats.connections == 0
    proxy.pass_through()
    r, w = await connect(proxy)
    assert await roundtrip(r, w, b"ok") == b"ok"


async def test_server_down_resets_client_and_counts_upstream_failure(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port) as proxy:
        await echo.stop()
        reader, _w = await connect(proxy)
        _, how = await read_until_closed(reader)
        assert how in {"reset", "eof"}
        assert proxy.stats.upstream_failures == 1


async def test_flapping_drops_connections_periodically(proxy: FaultProxy) -> None:
    proxy.start_flapping(0.05)
    drops = 0
    for _ in range(3):
        reader, writer = await connect(proxy)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await roundtrip(reader, writer, b"p")
        _, how = await read_until_closed(reader)
        assert how == "reset"
        drops += 1
    proxy.stop_flapping()
    assert proxy.stats.drops >= drops
    r, w = await connect(proxy)
    assert await roundtrip(r, w, b"calm") == b"calm"


async def test_close_leaves_no_tasks_behind(echo: EchoServer) -> None:
    before = len(asyncio.all_tasks())
    proxy = await FaultProxy("127.0.0.1", echo.port).start()
    conns = [await connect(proxy) for _ in range(5)]
    for reader, writer in conns:
        await roundtrip(reader, writer, b"1")
    proxy.blackhole()
    await connect(proxy)  # held by the blackhole
    await proxy.wait_accepted(6)
    await proxy.close()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before
