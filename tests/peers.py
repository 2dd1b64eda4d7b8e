"""Real peers for the tests: Soketi and Node (pusher-js, laravel-echo, the Node ``pusher`` SDK).

``scripts/test.sh`` installs them into ``peers/node_modules``. Locally, a test that needs a missing peer
is skipped with the command that installs it; with ``CI=true`` it fails instead, so CI never silently
skips the interop suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / "peers"
NODE_MODULES = PEERS_DIR / "node_modules"
SOKETI_BIN = NODE_MODULES / ".bin" / "soketi"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

APP_ID = "1"
APP_KEY = "app-key"
APP_SECRET = "app-secret"


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(condition: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when a peer is missing."""
    if condition:
        return
    message = f"{what} is not installed: run scripts/test.sh (or `npm install --prefix peers`)"
    if IN_CI:
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def node_available() -> bool:
    return shutil.which("node") is not None


def require_node_package(name: str) -> None:
    require(node_available(), "node")
    require((NODE_MODULES / name / "package.json").exists(), f"the npm package {name}")


def require_soketi() -> None:
    require(node_available(), "node")
    require(SOKETI_BIN.exists(), "Soketi (@soketi/soketi)")


def wait_http_ok(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:  # connection refused while starting
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s (last error: {last})")


# Soketi processes started and not yet stopped; tests/conftest.py checks it is empty at the end of a
# session, so a fixture that forgets to stop its server fails the run instead of leaking a process.
RUNNING_SOKETIS: set[int] = set()


def stop_process_group(proc: subprocess.Popen[Any] | None, hard: bool = False) -> None:
    """End a server started with ``start_new_session=True`` and its children: SIGTERM (a graceful
    shutdown) or SIGKILL (a crash), escalating to SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class SoketiServer:
    """A Soketi process on a loopback port; can be stopped and started again on the same port."""

    port: int = field(default_factory=free_port)
    app_id: str = APP_ID
    key: str = APP_KEY
    secret: str = APP_SECRET
    client_messages: bool = True
    user_authentication: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/app/{self.key}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SOKETI_DEFAULT_APP_ID": self.app_id,
                "SOKETI_DEFAULT_APP_KEY": self.key,
                "SOKETI_DEFAULT_APP_SECRET": self.secret,
                "SOKETI_HOST": "127.0.0.1",
                "SOKETI_PORT": str(self.port),
                "SOKETI_METRICS_ENABLED": "false",
                "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true" if self.client_messages else "false",
                "SOKETI_DEFAULT_APP_USER_AUTHENTICATION": "true" if self.user_authentication else "false",
                "SOKETI_DEBUG": "0",
                "NODE_NO_WARNINGS": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 20.0) -> SoketiServer:
        require_soketi()
        if self.proc is not None and self.proc.poll() is None:
            return self
        import tempfile

        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="soketi-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [str(SOKETI_BIN), "start"],
            cwd=PEERS_DIR,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        RUNNING_SOKETIS.add(self.proc.pid)
        try:
            wait_http_ok(f"{self.http_url}/", timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, hard: bool = False) -> None:
        """Stop the server. ``hard=True`` kills it (no close frames); otherwise SIGTERM, on which Soketi
        closes its clients with 4200."""
        proc, self.proc = self.proc, None
        if proc is not None:
            RUNNING_SOKETIS.discard(proc.pid)
        stop_process_group(proc, hard=hard)

    def restart(self, hard: bool = True, down_for: float = 0.0) -> None:
        self.stop(hard=hard)
        if down_for:
            time.sleep(down_for)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


@contextlib.contextmanager
def soketi_server(**kwargs: Any) -> Iterator[SoketiServer]:
    server = SoketiServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def run_node(
    script: str | Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a Node script with ``peers/node_modules`` on its module path; stdout is returned as text."""
    require(node_available(), "node")
    full_env = dict(os.environ)
    full_env["NODE_PATH"] = str(NODE_MODULES)
    full_env["NODE_NO_WARNINGS"] = "1"
    if env:
        full_env.update(env)
    return subprocess.run(
        ["node", str(script), *args],
        cwd=PEERS_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_node(script: str | Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start a long-running Node script (line-oriented JSON on stdout is the convention)."""
    require(node_available(), "node")
    full_env = dict(os.environ)
    full_env["NODE_PATH"] = str(NODE_MODULES)
    full_env["NODE_NO_WARNINGS"] = "1"
    if env:
        full_env.update(env)
    return subprocess.Popen(
        ["node", str(script), *args],
        cwd=PEERS_DIR,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )


def _line_queue(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """A queue fed by a thread reading ``proc``'s stdout line by line (``None`` at end of output).

    A reader thread rather than ``select()``: select sees the pipe, not the lines Python already buffered,
    so two lines arriving together would leave the second one unseen."""
    lines: queue.Queue[str | None] | None = getattr(proc, "_quvel_lines", None)
    if lines is None:
        assert proc.stdout is not None
        stdout = proc.stdout
        lines = queue.Queue()
        sink = lines

        def pump() -> None:
            for line in stdout:
                sink.put(line)
            sink.put(None)

        threading.Thread(target=pump, name="node-stdout", daemon=True).start()
        proc._quvel_lines = lines  # type: ignore[attr-defined]
    return lines


def read_json_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> dict[str, Any]:
    """Next JSON line from a spawned Node script's stdout (non-JSON lines are skipped)."""
    lines = _line_queue(proc)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else lines.get_nowait()
        except queue.Empty:
            raise TimeoutError(f"no JSON line from node within {timeout}s") from None
        if line is None:
            lines.put(None)  # stay at end of output for later calls
            err = proc.stderr.read() if proc.stderr else ""
            raise EOFError(f"node exited ({proc.poll()}); stderr: {err}")
        line = line.strip()
        if line.startswith("{"):
            return dict(json.loads(line))
