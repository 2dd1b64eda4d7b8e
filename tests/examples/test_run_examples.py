"""Every example runs as a user would run it (``python examples/X.py``), against the embedded server it
starts itself, exits 0 and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# example path -> lines (substrings) its output must contain
EXPECTED: dict[str, list[str]] = {
    "examples/basics.py": ["visible: ['Ship it'] open: 1", "rolled back:", "refused:", "actions:"],
    "examples/updates_feed.py": ["#5 Release 1.5 is out", "latest: Release 1.5 is out; warnings: 1"],
    "examples/chat_room.py": [
        "here: ['Ann', 'Ben']",
        "joining: Cleo joined",
        "leaving: Cleo left",
        "typing: ['Ben']",
        "message: Ben: Hello from Ben",
    ],
    "examples/encrypted_channel.py": [
        "decrypted in the store: {'db-password': 'correct horse battery staple'}",
        "whisper refused:",
    ],
    "examples/server_rendering.py": [
        "Ann: 3 unread, 3 notifications rendered, ws initialized",
        "Ben: 1 unread",
        "hydrated: 3 notifications",
        "live: 4 notifications",
    ],
    "examples/threaded.py": ["worker thread saw 3, marked all read; unread now 0"],
    "examples/notifications": [
        "following private-tenant.acme.User.1",
        "3 notifications arrived live",
        "broadcast failed",
        "sent 5, in store 5, lost 0",
    ],
}


def run_example(path: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # examples must run from a checkout with only the installed package
    return subprocess.run(
        [sys.executable, path],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_example_is_listed() -> None:
    found = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "examples").glob("*.py")
        # The front-end examples are interactive; tests/ui drives them (Textual's pilot, Chromium).
        if p.name
        not in {"__init__.py", "typed_store.py", "textual_notifications.py", "nicegui_notifications.py"}
    }
    found |= {str(p.parent.relative_to(ROOT)) for p in (ROOT / "examples").glob("*/__main__.py")}
    assert found == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_example_runs(path: str) -> None:
    result = run_example(path)
    assert result.returncode == 0, f"{path} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    for line in EXPECTED[path]:
        assert line in result.stdout, f"{path}: {line!r} not in output:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
