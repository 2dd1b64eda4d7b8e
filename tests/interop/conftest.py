"""Real peers against the embedded server: pusher-js / laravel-echo driven through ``node/peer.mjs``."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quvel_ws.auth import AuthEndpoint
from quvel_ws.server import AppConfig, PusherServer, ServerThread
from tests.peers import NODE_MODULES, PEERS_DIR, require_node_package

PEER_SCRIPT = Path(__file__).parent / "node" / "peer.mjs"
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
USERS = {
    "token-ann": {"id": 1, "name": "Ann"},
    "token-bob": {"id": 2, "name": "Bob"},
    "token-cat": {"id": 3, "name": "Cat", "watchlist": ["1", "2"]},
}


class NodePeer:
    """One pusher-js (or laravel-echo) client in a Node process: ``send`` commands, ``expect`` reports."""

    def __init__(self) -> None:
        require_node_package("pusher-js")
        require_node_package("laravel-echo")
        env = dict(os.environ, NODE_PATH=str(NODE_MODULES), NODE_NO_WARNINGS="1")
        self.proc = subprocess.Popen(
            ["node", str(PEER_SCRIPT)],
            cwd=PEERS_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.backlog: list[dict[str, Any]] = []
        # A reader thread, not select() on the pipe: select() cannot see lines already sitting in the
        # TextIOWrapper's buffer, so two lines arriving in one chunk would look like a timeout.
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.expect("ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def _next(self, within: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=within)
        except queue.Empty:
            raise TimeoutError("no report from node") from None
        if line is None:
            self._lines.put(None)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise EOFError(f"node exited ({self.proc.poll()}): {err}")
        return line

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()

    def expect(self, ev: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """The next report ``ev`` whose fields equal ``match`` (earlier non-matching reports are kept)."""

        def matches(line: dict[str, Any]) -> bool:
            return line.get("ev") == ev and all(line.get(k) == v for k, v in match.items())

        for i, line in enumerate(self.backlog):
            if matches(line):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {ev} {match} from node; seen: {self.backlog[-10:]}")
            try:
                line = self._next(remaining)
            except TimeoutError:
                raise TimeoutError(f"no {ev} {match} from node; seen: {self.backlog[-10:]}") from None
            if line.get("ev") == "command_error":
                raise AssertionError(f"node command failed: {line}")
            if matches(line):
                return line
            self.backlog.append(line)

    def seen(self, ev: str, **match: Any) -> list[dict[str, Any]]:
        """Reports already received (not consumed by ``expect``) matching ``ev``/``match``."""
        return [x for x in self.backlog if x.get("ev") == ev and all(x.get(k) == v for k, v in match.items())]

    def drain(self, quiet: float = 0.3) -> None:
        """Read everything that arrives until ``quiet`` seconds pass without a report."""
        with contextlib.suppress(TimeoutError):
            while True:
                self.backlog.append(self._next(quiet))

    def connect(
        self, port: int, *, lib: str = "pusher", key: str = "app-key", wait: bool = True, **options: Any
    ) -> None:
        self.send("connect", lib=lib, port=port, key=key, **options)
        if wait:
            self.expect("state", current="connected")

    def socket_id(self) -> str:
        self.send("socket_id")
        return str(self.expect("socket_id")["id"])

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)  # it ends at EOF; closing stdout under it would raise in the thread
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """The embedded server (client events on) in a thread, on a fresh port."""
    app = AppConfig(id="1", key="app-key", secret="app-secret", enable_client_events=True)
    with PusherServer(apps=[app]).start_in_thread() as srv:
        yield srv


@pytest.fixture
def auth_endpoint() -> Iterator[AuthEndpoint]:
    """Laravel-like auth endpoint: Bearer ``token-ann`` is user 1 (Ann), ``token-bob`` user 2 (Bob)."""
    endpoint = AuthEndpoint("app-key", "app-secret", master_key=MASTER_KEY, users=USERS)
    with endpoint.start_in_thread():
        yield endpoint


@pytest.fixture
def node_peer() -> Iterator[Callable[[], NodePeer]]:
    made: list[NodePeer] = []

    def make() -> NodePeer:
        peer = NodePeer()
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def bearer(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}
