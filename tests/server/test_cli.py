"""``quvel serve`` / ``quvel trigger`` as real processes, and app configuration sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quvel_ws.errors import InvalidArgument
from quvel_ws.server import AppConfig, app_from_env, load_apps_file
from tests.peers import SoketiServer, read_json_line
from tests.server.conftest import Raw, data_of


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    apps = tmp_path / "apps.json"
    apps.write_text(
        json.dumps(
            {
                "apps": [
                    {"id": "1", "key": "app-key", "secret": "app-secret", "enable_client_events": True},
                    {"id": "2", "key": "other-key", "secret": "other-secret"},
                ]
            }
        )
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quvel",
            "serve",
            "--port",
            "0",
            "--apps-file",
            str(apps),
            "--activity-timeout",
            "15",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def trigger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quvel", "trigger", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_serve_prints_where_then_shuts_down_gracefully_on_sigterm(serve: subprocess.Popen[str]) -> None:
    info = read_json_line(serve, timeout=20)
    assert info["ws"].startswith("ws://127.0.0.1:")
    assert info["ws"].endswith("/app/app-key")
    assert info["http"] == f"http://127.0.0.1:{info['port']}"
    raw = await Raw.connect(info["ws"])
    assert raw.established["activity_timeout"] == 15
    await raw.subscribe("news")

    ok = trigger(
        "--url",
        info["http"],
        "--app-id",
        "1",
        "--key",
        "app-key",
        "--secret",
        "app-secret",
        "news",
        "NewUpdate",
        '{"x": 1}',
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"ok": True}
    assert data_of(await raw.expect("NewUpdate")) == {"x": 1}

    bad = trigger(
        "--url", info["http"], "--app-id", "1", "--key", "app-key", "--secret", "wrong", "news", "E", "{}"
    )
    assert bad.returncode == 1
    assert "401" in bad.stderr
    assert "signature" in bad.stderr

    serve.send_signal(signal.SIGTERM)
    assert await raw.closed() == 4200
    assert serve.wait(10) == 0


def test_trigger_unreachable_server_fails_clearly() -> None:
    result = trigger("--url", "http://127.0.0.1:9", "news", "E", "{}")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


@pytest.mark.peers
def test_trigger_sees_soketis_refusals_inside_a_200(soketi: SoketiServer) -> None:
    """Soketi 1.6 refuses a wrong secret with status 200 and the error in the body."""
    ok = trigger("--url", soketi.http_url, "--secret", soketi.secret, "news", "E", "{}")
    assert ok.returncode == 0, ok.stderr
    bad = trigger("--url", soketi.http_url, "--secret", "wrong", "news", "E", "{}")
    assert bad.returncode == 1
    assert "401" in bad.stderr


def test_serve_refuses_a_bad_apps_file(tmp_path: Path) -> None:
    bad = tmp_path / "apps.json"
    bad.write_text('[{"id": "1", "key": "k", "secret": "s", "typo_option": 1}]')
    result = subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--apps-file", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "typo_option" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [("--port", "99999"), ("--port", "-1"), ("--activity-timeout", "0"), ("--pong-timeout", "-3")],
)
def test_serve_refuses_bad_options_without_a_traceback(args: tuple[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("quvel serve: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_trigger_refuses_a_bad_timeout_without_a_traceback() -> None:
    result = trigger("--timeout", "-1", "news", "E", "{}")
    assert result.returncode == 2
    assert result.stderr.startswith("quvel trigger: --timeout")


def test_app_sources(tmp_path: Path) -> None:
    assert app_from_env({}) is None
    env_app = app_from_env(
        {
            "QUVEL_APP_ID": "5",
            "QUVEL_APP_KEY": "k5",
            "QUVEL_APP_SECRET": "s5",
            "QUVEL_APP_ENABLE_CLIENT_EVENTS": "true",
        }
    )
    assert env_app == AppConfig(id="5", key="k5", secret="s5", enable_client_events=True)
    file = tmp_path / "apps.json"
    file.write_text('[{"id": 7, "key": "k7", "secret": "s7", "max_connections": 3}]')
    assert load_apps_file(file) == [AppConfig(id="7", key="k7", secret="s7", max_connections=3)]
    for text in ("{}", "[]", "not json", '[{"id": "x y", "key": "k", "secret": "s"}]'):
        file.write_text(text)
        with pytest.raises(InvalidArgument):
            load_apps_file(file)
    with pytest.raises(InvalidArgument):
        AppConfig(secret="")
    with pytest.raises(InvalidArgument):
        AppConfig(max_payload_bytes=0)
