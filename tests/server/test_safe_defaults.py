"""Safe defaults of the server and ``quvel serve``: no silent well-known secret, user-authentication
switches, redacted logs and reprs, rate-limited repeats, bounded webhooks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quvel_ws import RedactSecrets
from quvel_ws.auth import Authorizer
from quvel_ws.errors import InvalidArgument
from quvel_ws.server import AppConfig, Limits, PusherServer, is_loopback
from tests.peers import read_json_line
from tests.server.conftest import Raw


def serve(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUVEL_APP")}
    return subprocess.run(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**clean, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--host", "0.0.0.0"), {}),
        (("--host", "0.0.0.0", "--app-key", "prod-key"), {}),
        (("--host", "::"), {}),
        (("--host", "0.0.0.0"), {"QUVEL_APP_KEY": "prod-key"}),  # a key without its secret
        (("--host", "0.0.0.0", "--app-secret", "app-secret"), {}),  # the default, said out loud
    ],
)
def test_serve_refuses_the_default_secret_beyond_loopback(args: tuple[str, ...], env: dict[str, str]) -> None:
    result = serve(*args, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "default secret" in result.stderr
    assert "--app-secret" in result.stderr  # says how to set one
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_apps_file_entry_without_a_secret(tmp_path: Path) -> None:
    apps = tmp_path / "apps.json"
    apps.write_text('[{"id": "1", "key": "k1", "secret": "s1"}, {"id": "2", "key": "k2"}]')
    result = serve("--host", "0.0.0.0", "--apps-file", str(apps))
    assert result.returncode == 2
    assert "app '2'" in result.stderr


def test_serve_warns_once_on_loopback_with_the_default_secret() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("QUVEL_APP")},
    )
    try:
        read_json_line(proc, timeout=20)  # it runs (the demo and tests keep working)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err.count("WARNING") == 1
    assert "default secret 'app-secret'" in err


def test_library_refuses_the_default_secret_beyond_loopback() -> None:
    with pytest.raises(InvalidArgument, match="default secret"):
        PusherServer(host="0.0.0.0")
    PusherServer(host="0.0.0.0", apps=[AppConfig(secret="s3cret-of-my-own")])  # explicit: fine
    PusherServer(host="localhost")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.2", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_secrets_stay_out_of_reprs() -> None:
    app = AppConfig(secret="s3cret-value")
    assert "s3cret-value" not in repr(app)
    assert "s3cret-value" not in repr(Authorizer("k", "s3cret-value").__dict__.keys())


def test_redaction_filter_covers_httpx_request_lines(caplog: pytest.LogCaptureFixture) -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        (
            "POST",
            "http://127.0.0.1:6001/apps/1/events?auth_key=k&auth_signature=9f86d081884c7d65&body_md5=x",
            "HTTP/1.1",
            200,
            "OK",
        ),
        None,
    )
    RedactSecrets().filter(record)
    text = record.getMessage()
    assert "9f86d081884c7d65" not in text
    assert "auth_signature=[redacted]" in text
    for secret_text, hidden in [
        ("Authorization: Bearer tok-123", "tok-123"),
        ('{"auth": "app-key:' + "ab" * 32 + '"}', "ab" * 32),
        ("AppConfig(secret='zz-top')", "zz-top"),
        ('{"shared_secret": "c2VjcmV0"}', "c2VjcmV0"),
    ]:
        rec = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (secret_text,), None)
        RedactSecrets().filter(rec)
        assert hidden not in rec.getMessage()


def test_trigger_verbose_log_does_not_print_the_signature() -> None:
    with PusherServer(apps=[AppConfig(secret="s")]).start_in_thread() as server:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "quvel",
                "-v",
                "trigger",
                "--url",
                server.http_url,
                "--secret",
                "s",
                "news",
                "E",
                "{}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "auth_signature=[redacted]" in result.stderr  # httpx's INFO line, redacted
    assert "auth_signature=" not in result.stderr.replace("auth_signature=[redacted]", "")


async def test_user_authentication_can_be_switched_off() -> None:
    app = AppConfig(secret="s", user_authentication=False)
    async with PusherServer(apps=[app]) as server:
        raw = await Raw.connect(server.ws_url)
        signed = Authorizer(app.key, app.secret).user(raw.socket_id, {"id": "1"})
        await raw.send("pusher:signin", signed)
        error = await raw.expect("pusher:error")
        assert error["data"]["code"] == 4200
        assert "not enabled" in error["data"]["message"]
        await raw.send("pusher:ping")
        await raw.expect("pusher:pong")  # still connected
    with pytest.raises(InvalidArgument):
        AppConfig(user_authentication=False, user_authentication_timeout=5)


async def test_serve_user_authentication_flags() -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - a real process, read with timeouts
        [
            sys.executable,
            "-m",
            "quvel",
            "serve",
            "--port",
            "0",
            "--app-secret",
            "s",
            "--no-user-authentication",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = read_json_line(proc, timeout=20)
        raw = await Raw.connect(info["ws"])
        await raw.send("pusher:signin", Authorizer("app-key", "s").user(raw.socket_id, {"id": "1"}))
        assert (await raw.expect("pusher:error"))["data"]["code"] == 4200
        await raw.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    timed = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "quvel",
            "serve",
            "--port",
            "0",
            "--app-secret",
            "s",
            "--user-authentication-timeout",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = read_json_line(timed, timeout=20)
        raw = await Raw.connect(info["ws"])
        assert await raw.closed(within=6) == 4009  # never signed in
    finally:
        timed.terminate()
        timed.communicate(timeout=10)
    both = serve("--no-user-authentication", "--user-authentication-timeout", "3")
    assert both.returncode == 2
    assert "user_authentication_timeout needs user_authentication" in both.stderr


async def test_channel_limit_per_connection_is_a_pusher_style_error() -> None:
    async with PusherServer(apps=[AppConfig(max_channels_per_connection=3)]) as server:
        raw = await Raw.connect(server.ws_url)
        for i in range(3):
            await raw.subscribe(f"c{i}")
        await raw.send("pusher:subscribe", {"channel": "c3"})
        error = await raw.expect("pusher:subscription_error")
        assert error["channel"] == "c3"
        assert error["data"]["type"] == "LimitReached"
        assert error["data"]["status"] == 4100
        assert "at most 3 channels" in error["data"]["error"]
        await raw.subscribe("c0")  # a repeated subscribe is not a new channel
        await raw.send("pusher:unsubscribe", {"channel": "c1"})
        await raw.subscribe("c3")  # room again


async def test_limit_messages_state_the_exact_limit() -> None:
    app = AppConfig(secret="s", enable_client_events=True, max_payload_bytes=100)
    async with PusherServer(apps=[app]) as server:
        raw = await Raw.connect(server.ws_url)
        await raw.subscribe(
            "private-x", **Authorizer(app.key, app.secret).private(raw.socket_id, "private-x")
        )
        await raw.ws.send('{"event":"client-e","channel":"private-x","data":"' + "x" * 98 + '"}')  # 100 bytes
        assert await raw.barrier() == []  # accepted: the limit is inclusive
        await raw.ws.send('{"event":"client-e","channel":"private-x","data":"' + "x" * 99 + '"}')
        error = await raw.expect("pusher:error")
        assert error["data"]["message"] == "The event data must be at most 100 bytes (got 101)."
    with pytest.raises(InvalidArgument, match="at most 100 bytes"):
        async with PusherServer(apps=[app]) as server:
            await server.trigger("news", "E", "x" * 101)


def test_limits_are_validated() -> None:
    for name in ("head_timeout", "min_body_rate", "max_pending_connections", "max_pending_webhooks"):
        with pytest.raises(InvalidArgument, match=name):
            Limits(**{name: 0})
