"""The WebSocket frame reader against raw bytes from a real server socket: fragments, splits, control
frames, protocol violations and handshake failures."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from quvel_ws import ConnectionState, TransportError, WebSocketService
from quvel_ws.client._transport import WebSocketTransport, open_websocket
from tests.ws.helpers import Collector
from tests.ws.scripted_server import ScriptedServer


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = False) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


def event(name: str, data: Any, channel: str = "raw") -> bytes:
    return orjson.dumps({"event": name, "channel": channel, "data": orjson.dumps(data).decode()})


class Recorder:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lost: list[tuple[int | None, str]] = []
        self.dropped: list[int] = []
        self.changed = asyncio.Event()

    def transport_messages(self, transport: WebSocketTransport, messages: list[bytes]) -> None:
        self.messages.extend(messages)
        self.changed.set()

    def transport_lost(self, transport: WebSocketTransport, code: int | None, reason: str) -> None:
        self.lost.append((code, reason))
        self.changed.set()

    def transport_dropped(self, transport: WebSocketTransport, size: int) -> None:
        self.dropped.append(size)
        self.changed.set()

    async def until(self, predicate: Any, within: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), within)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(handshake=False) as srv:
        yield srv


async def connected(server: ScriptedServer, **options: Any) -> tuple[WebSocketTransport, Recorder]:
    recorder = Recorder()
    transport = await open_websocket(server.url, recorder, **options)
    transport.start()
    await server.wait_for_connection()
    return transport, recorder


def write_raw(server: ScriptedServer, data: bytes) -> None:
    server.latest.ws.transport.write(data)


async def test_fragments_split_reads_and_extended_lengths(server: ScriptedServer) -> None:
    transport, rec = await connected(server)
    big = event("big", "y" * 70_000)
    medium = event("medium", "x" * 300)
    stream = (
        frame(1, b'{"event":"a"', fin=False)
        + frame(9, b"ping!")
        + frame(0, b',"data":1}')
        + frame(1, medium)
        + frame(1, big)
    )
    for i in range(0, len(stream), 7):  # dribble the bytes: every header and payload gets split
        write_raw(server, stream[i : i + 7])
        await asyncio.sleep(0)
    await rec.until(lambda: len(rec.messages) == 3)
    assert rec.messages == [b'{"event":"a","data":1}', medium, big]
    assert transport.is_open
    transport.close()


async def test_ping_frames_are_answered(server: ScriptedServer) -> None:
    transport, _ = await connected(server)
    waiter = await server.latest.ws.ping(b"are you there")  # resolves when our pong arrives
    await asyncio.wait_for(waiter, 5)
    transport.close()


async def test_close_frame_code_and_reason_reach_the_listener(server: ScriptedServer) -> None:
    _, rec = await connected(server)
    await server.close(4100, "over capacity")
    await rec.until(lambda: bool(rec.lost))
    assert rec.lost == [(4100, "over capacity")]


async def test_masked_server_frame_is_a_protocol_error(server: ScriptedServer) -> None:
    _, rec = await connected(server)
    write_raw(server, frame(1, b'{"event":"x"}', masked=True))
    await rec.until(lambda: bool(rec.lost))
    assert rec.lost[0][0] is None  # no close frame from the server: the driver treats it as 1006
    assert rec.messages == []


async def test_oversize_message_is_dropped_not_fatal(server: ScriptedServer) -> None:
    transport, rec = await connected(server, max_message_bytes=100)
    write_raw(server, frame(1, event("big", "z" * 500)) + frame(1, b'{"event":"ok"}'))
    await rec.until(lambda: bool(rec.messages))
    assert rec.dropped == [len(event("big", "z" * 500))]
    assert rec.messages == [b'{"event":"ok"}']
    assert transport.is_open
    transport.close()


async def test_frames_arriving_with_the_handshake_response_are_kept() -> None:
    async with ScriptedServer() as server:  # connection_established is written right after the 101
        ws = WebSocketService(server.url)
        await ws.connect(timeout=5)
        assert ws.current_state is ConnectionState.CONNECTED
        await ws.shutdown()


async def test_non_101_response_fails_fast() -> None:
    async def http_404(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(http_404, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransportError, match="404"):
            await open_websocket(f"ws://127.0.0.1:{port}/app/k", Recorder(), timeout=5)
    finally:
        srv.close()
        await srv.wait_closed()


async def test_unreachable_server_keeps_retrying(server: ScriptedServer) -> None:
    ws = WebSocketService(
        "ws://127.0.0.1:9/app/k", backoff_initial=0.05, backoff_max=0.1, unavailable_timeout=0.3
    )
    states = Collector(ws.state)
    errors = Collector(ws.errors)
    ws.channel("x").subscribed.subscribe(lambda _: None)
    await states.wait(lambda s: ConnectionState.UNAVAILABLE in s)
    assert all(isinstance(e, TransportError) for e in await errors.count(2))
    await ws.shutdown()


async def test_oversize_messages_are_skipped_across_reads_and_fragments(server: ScriptedServer) -> None:
    transport, rec = await connected(server, max_message_bytes=100)
    big = event("big", "z" * 500)
    stream = (
        frame(1, b'{"event":"frag","data":"', fin=False)  # small first fragment, then over the limit
        + frame(0, b"q" * 300, fin=False)
        + frame(0, b'"}')
        + frame(1, big)
        + frame(1, b'{"event":"ok"}')
    )
    for i in range(0, len(stream), 7):  # every header and payload split across reads
        write_raw(server, stream[i : i + 7])
        await asyncio.sleep(0)
    await rec.until(lambda: bool(rec.messages))
    assert rec.dropped == [len(b'{"event":"frag","data":"') + 302, len(big)]
    assert rec.messages == [b'{"event":"ok"}']
    assert transport.is_open
    transport.close()
