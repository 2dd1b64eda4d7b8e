"""``quvel demo``: the main job, run as a user runs it, and its views."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from quvel.demo._view import DemoSnapshot, DemoSummary, LiveView, NotificationLine, PlainView, render

ROOT = Path(__file__).resolve().parents[2]


def quvel(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quvel", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_demo_runs_restarts_the_server_and_loses_nothing() -> None:
    result = quvel("demo", "--duration", "5", "--no-tty")
    out = result.stdout
    assert result.returncode == 0, f"exit {result.returncode}\n{out}\n{result.stderr}"
    # It started everything, watched the connection, and restarted the server once, midway.
    assert "embedded Pusher server on ws://127.0.0.1:" in out
    assert "simulated Laravel back end on http://127.0.0.1:" in out
    assert "connection: connected" in out
    assert out.count("restarting the server") == 1
    assert "server is back" in out
    # Live events of every kind reached the viewer.
    for kind in ("notification: ", "message from ", "joined: Cleo", "left: Cleo", "whisper: Ben typing"):
        assert kind in out, f"no {kind!r} line\n{out}"
    assert re.search(r"status: connected, server up, unread \d+/\d+", out)
    # The summary says what was sent, what the store holds, and that nothing was lost.
    match = re.search(r"notifications: sent (\d+), in store (\d+), lost (\d+)", out)
    assert match, out
    sent, held, lost = map(int, match.groups())
    assert sent >= 4
    assert held == sent
    assert lost == 0
    assert re.search(r"server restarted: yes; reconnections: [1-9]", out)
    # The app's API was down (503) when the clients resubscribed; every store's reload was retried, so
    # no chat message was lost either.
    assert "the app's API answers 503 until the clients are back" in out
    assert re.search(r"room:lobby: store 'room:lobby': reload attempt 1 failed .*503", out), out
    assert re.search(r"API down after the restart: [1-9]\d* requests? refused \(503\)", out), out
    chat = re.search(r"chat messages: said (\d+), in store (\d+), lost (\d+)", out)
    assert chat, out
    said, held, lost = map(int, chat.groups())
    assert said >= 1
    assert held == said
    assert lost == 0
    assert "summary: OK" in out
    assert re.search(r"events received: \d+ \(", out)
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_ends_the_run_early_and_still_prints_the_summary() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "demo", "--duration", "60", "--no-tty"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:  # wait for the live part, not for a fixed time
            seen.append(line)
            if "notification: " in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + out
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "stopping early (Ctrl-C)" in out
    assert "summary: OK" in out
    assert "lost 0" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ("--duration", "0"),
        ("--duration", "-3"),
        ("--duration", "nan"),
        ("--duration", "inf"),
        ("--interval", "nan"),
    ],
)
def test_demo_rejects_bad_arguments(args: tuple[str, str]) -> None:
    result = quvel("demo", *args, "--no-tty")
    assert result.returncode == 2
    assert "--duration and --interval must be positive" in result.stderr
    assert result.stdout == ""  # refused before anything started


def _snapshot() -> DemoSnapshot:
    return DemoSnapshot(
        elapsed=2.5,
        duration=5,
        connection="connected",
        server="up",
        user="Ann",
        room="lobby",
        notifications=(
            NotificationLine("Invoice paid", "Invoice #1 was paid.", False),
            NotificationLine("Deploy", "Release 4 is live.", True),
        ),
        unread=1,
        total=2,
        sent=2,
        members=("Ann", "Ben"),
        activity=("Cleo joined", "Cleo left"),
        typing=("Ben",),
        messages=("Ben: hi",),
        reconnections=1,
        events={"notifications": 2, "messages": 1},
        log=("2.0s connection: connected",),
    )


def _summary(**changes: object) -> DemoSummary:
    values: dict[str, object] = dict(
        duration=5.0,
        sent=3,
        in_store=3,
        lost=(),
        unread=2,
        reconnections=1,
        restarted=True,
        members=("Ann", "Ben"),
        messages=4,
        events={"notifications": 2},
        broadcast_failures=1,
        failures=(),
    )
    values.update(changes)
    return DemoSummary(**values)  # type: ignore[arg-type]


def test_live_view_renders_every_part() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
    console.print(render(_snapshot()))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for part in (
        "quvel demo",
        "connected",
        "Notifications · unread 1 · in store 2 · sent 2",
        "Invoice paid",
        "presence-room.lobby",
        "here: Ann, Ben",
        "Cleo joined · Cleo left",
        "Ben: hi",
        "Ben typing...",
        "notifications 2",
        "reconnections 1",
    ):
        assert part in text, f"{part!r} missing from\n{text}"


def test_live_view_prints_the_summary_panel() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
    view = LiveView(console)
    view.start()
    view.update(_snapshot())
    view.stop()
    view.summary(_summary())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "summary: OK" in text
    assert "sent 3, in store 3, lost 0" in text


def test_plain_view_prints_events_and_throttled_status_lines() -> None:
    out = io.StringIO()
    view = PlainView(out, status_every=1.0)
    view.start()
    view.event(_snapshot(), "connection: connected")
    view.update(_snapshot())
    view.update(_snapshot())  # same second: no second status line
    view.summary(_summary())
    lines = out.getvalue().splitlines()
    assert lines[1] == "[  2.50s] connection: connected"
    assert sum("status:" in line for line in lines) == 1
    assert "summary: OK after 5.0s" in lines


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({}, True),
        ({"lost": ("abc Invoice",), "in_store": 2}, False),
        ({"failures": ("store error: boom",)}, False),
        ({"reconnections": 0}, False),  # restarted but never came back
        ({"restarted": False, "reconnections": 0}, True),
        ({"sent": 0, "in_store": 0}, False),  # nothing happened is not a success
        ({"messages_said": 5, "messages": 4, "messages_lost": ("7 Ben: hi",)}, False),
    ],
)
def test_summary_verdict(changes: dict[str, object], ok: bool) -> None:
    summary = _summary(**changes)
    assert summary.ok is ok
    assert summary.lines()[0].startswith("summary: OK" if ok else "summary: FAILED")


def _run_in_a_terminal(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run ``quvel`` with a pseudo-terminal as its stdout (as a user at a terminal does) and return its
    exit code and everything it drew."""
    import pty
    import select
    import time

    controller, terminal = pty.openpty()
    env = dict(os.environ, COLUMNS="110", LINES="40", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    assert "Traceback" not in err, err
    return code, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_demo_at_a_terminal_draws_the_live_view_and_exits_0() -> None:
    code, drawn = _run_in_a_terminal("demo", "--duration", "5")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    assert code == 0, plain[-3000:]
    assert "\x1b[" in drawn  # rich drew with escape codes: the live view, not the plain lines
    assert "[  0." not in plain  # ...and not PlainView's timestamped lines
    for part in ("quvel demo", "Notifications · unread", "presence-room.lobby", "summary: OK"):
        assert part in plain, f"{part!r} not drawn:\n{plain[-3000:]}"
    assert re.search(r"sent \d+, in store \d+, lost 0", plain), plain[-3000:]


def test_summary_says_why_a_run_failed_and_counts_in_good_english() -> None:
    assert "failure: the client had not reconnected" in "\n".join(_summary(reconnections=0).lines())
    assert "failure: no notification was sent" in "\n".join(_summary(sent=0, in_store=0).lines())
    assert not any(line.startswith("failure:") for line in _summary().lines())
    one = _summary(broadcast_failures=1).lines()[1]
    assert one.endswith("lost 0 (1 broadcast failed while the server was down, caught up by reload)")
    assert "(2 broadcasts failed" in _summary(broadcast_failures=2).lines()[1]
    assert _summary(broadcast_failures=0).lines()[1] == "notifications: sent 3, in store 3, lost 0"


@pytest.mark.slow
def test_a_short_quiet_run_waits_for_the_reconnection_before_its_verdict() -> None:
    # The restart comes at 1 s and nothing is missed, so only the reconnection is left to wait for; a run
    # that ended mid-reconnection used to report FAILED with no reason.
    result = quvel("demo", "--duration", "2", "--interval", "5", "--no-tty")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert re.search(r"server restarted: yes; reconnections: [1-9]", result.stdout), result.stdout
    assert "summary: OK" in result.stdout


@pytest.mark.slow
def test_read_state_survives_a_second_run_with_the_same_state_dir(tmp_path: Path) -> None:
    import json

    from quvel_store.persist import SQLiteStorage

    state_dir = tmp_path / "state"
    args = ("demo", "--duration", "3", "--interval", "0.15", "--no-restart", "--no-tty")
    first = quvel(*args, "--state-dir", str(state_dir))
    assert first.returncode == 0, f"exit {first.returncode}\n{first.stdout}\n{first.stderr}"
    assert "no saved notifications in" in first.stdout
    assert "read state: nothing restored (first run)" in first.stdout
    # What the first run left on disk: its notifications, some of them read (Ann reads one every 6 jobs).
    storage = SQLiteStorage(state_dir / "notifications.db")
    raw = storage.read("acme.notifications.1")
    storage.close()
    assert raw is not None, "the first run saved nothing"
    saved = json.loads(raw)["data"]["notifications"]
    read = {n["id"] for n in saved if n["read_at"] is not None}
    assert read, f"the first run read nothing, so there is nothing to prove\n{first.stdout}"
    assert f"saved {len(saved)} ({len(read)} read) to {state_dir}" in first.stdout

    second = quvel(*args, "--state-dir", str(state_dir))
    out = second.stdout
    assert second.returncode == 0, f"exit {second.returncode}\n{out}\n{second.stderr}"
    assert f"restored {len(saved)} notifications from the last run ({len(read)} read)" in out
    assert f"read state: restored {len(saved)} from the last run, {len(read)} read (all still read)" in out
    # ...and on disk: every notification read in the first run is still read after the second.
    storage = SQLiteStorage(state_dir / "notifications.db")
    raw = storage.read("acme.notifications.1")
    storage.close()
    assert raw is not None
    after = {n["id"]: n["read_at"] for n in json.loads(raw)["data"]["notifications"]}
    assert read <= set(after)
    assert all(after[i] is not None for i in read)
    assert "summary: OK" in out
