"""A raw WebSocket server in its own process that sends one huge text frame, streamed in 1 MiB writes so
the server never holds it: the client's memory can then be measured alone.

``python -m tests.ws.big_frame_server SIZE [FRAGMENTS]`` prints its port, accepts one client, sends
``pusher:connection_established``, then a ``SIZE``-byte message (in ``FRAGMENTS`` frames), then the
global event ``after``, and waits for the client to leave."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK = b"x" * (1024 * 1024)


def header(opcode: int, length: int, fin: bool = True) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", b0, length)
    if length < 65536:
        return struct.pack("!BBH", b0, 126, length)
    return struct.pack("!BBQ", b0, 127, length)


def text(payload: bytes) -> bytes:
    return header(1, len(payload)) + payload


def stream(sock: socket.socket, length: int) -> None:
    while length > 0:
        n = min(length, len(CHUNK))
        sock.sendall(CHUNK[:n])
        length -= n


def main() -> None:
    size = int(sys.argv[1])
    fragments = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    sock, _ = listener.accept()
    request = b""
    while b"\r\n\r\n" not in request:
        request += sock.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    sock.sendall(
        text(
            b'{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1.1\\",\\"activity_timeout\\":30}"}'
        )
    )
    part = size // fragments
    for i in range(fragments):
        length = part if i < fragments - 1 else size - part * (fragments - 1)
        sock.sendall(header(1 if i == 0 else 0, length, fin=i == fragments - 1))
        stream(sock, length)
    sock.sendall(text(b'{"event":"after","data":"{\\"n\\":1}"}'))
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


if __name__ == "__main__":
    main()
