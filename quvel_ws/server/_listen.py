"""The server's accept loop and its admission rules for connections that have not upgraded yet.

asyncio's own accept loop (3.11) keeps calling ``accept()`` after EMFILE, logging a traceback and
scheduling a retry for each call: thousands a second while the process is out of file descriptors.
:class:`Listener` stops accepting for ``Limits.accept_pause`` instead and logs once per pause.
:class:`Admission` caps connections still speaking HTTP (a slowloris holds them open), per server and
per client address.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from ssl import SSLContext
from typing import Protocol

from quvel_ws._logs import RepeatLimiter, suppressed_note
from quvel_ws.server._app import Limits

logger = logging.getLogger(__name__)
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPTS_PER_WAKE = 100


class PendingConnection(Protocol):
    def close_pending(self, reason: str) -> None: ...


class Admission:
    """Bookkeeping of not-yet-upgraded connections: at most ``max_pending_per_address`` from one
    address (a new one past it is refused) and ``max_pending_connections`` in all (past it the
    oldest is closed: honest handshakes take milliseconds, so the oldest is the slowest attacker)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._pending: dict[PendingConnection, str] = {}  # insertion order: oldest first
        self._per_address: dict[str, int] = {}
        self.refused = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._pending)

    def admit(self, conn: PendingConnection, address: str) -> bool:
        if self._per_address.get(address, 0) >= self.limits.max_pending_per_address:
            self.refused += 1
            return False
        while len(self._pending) >= self.limits.max_pending_connections:
            oldest = next(iter(self._pending))
            self.release(oldest)
            self.evicted += 1
            oldest.close_pending("too many connections waiting for a request or a handshake")
        self._pending[conn] = address
        self._per_address[address] = self._per_address.get(address, 0) + 1
        return True

    def release(self, conn: PendingConnection) -> None:
        address = self._pending.pop(conn, None)
        if address is None:
            return
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]


class Listener:
    """Listening sockets and the accept loop, with a pause on EMFILE."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        limits: Limits,
        ssl: SSLContext | None = None,
        backlog: int = 4096,
    ) -> None:
        self._factory = factory
        self._limits = limits
        self._ssl = ssl
        self._backlog = backlog
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume: asyncio.TimerHandle | None = None
        self.pauses = 0
        self._log_limit = RepeatLimiter(burst=1, interval=30.0)

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._sockets)

    async def open(self, host: str, port: int) -> int:
        """Bind every address of ``host`` (one port for all) and start accepting; returns the port."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen: set[tuple[int, object]] = set()
        try:
            for family, type_, proto, _name, address in infos:
                if (family, address[0]) in seen:
                    continue
                seen.add((family, address[0]))
                sock = socket.socket(family, type_, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], port, *address[2:]))
                port = port or int(sock.getsockname()[1])  # later addresses share the chosen port
                sock.listen(self._backlog)
                sock.setblocking(False)
        except OSError:
            self.close()
            raise
        for sock in self._sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)
        return port

    def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause(exc)
                    return
                logger.warning("accept() failed: %s", exc)
                return
            conn.setblocking(False)
            task = loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                self._factory,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._limits.head_timeout if self._ssl else None,
            )
        except (TimeoutError, OSError) as exc:  # a failed TLS handshake, a reset
            logger.debug("connection setup failed: %s", exc)
            conn.close()

    def _pause(self, exc: OSError) -> None:
        """Out of file descriptors: stop accepting for a while (the kernel queues new clients in the
        backlog), log once, and try again."""
        if self._resume is not None:
            return
        loop = asyncio.get_running_loop()
        self.pauses += 1
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
        suppressed = self._log_limit.check("pause", loop.time())
        if suppressed is not None:
            logger.error(
                "cannot accept connections (%s): pausing accept() for %.1f s; raise the open-file limit "
                "(ulimit -n) or lower the connection limits%s",
                exc.strerror or exc,
                self._limits.accept_pause,
                suppressed_note(suppressed),
            )
        self._resume = loop.call_later(self._limits.accept_pause, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            if sock.fileno() >= 0:
                loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (accepted connections are the server's)."""
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
                sock.close()
        self._sockets.clear()

    async def wait_closed(self) -> None:
        """Wait for connections still being set up (a TLS handshake) to finish or fail."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
