"""One flag vocabulary across ``quvel serve``, ``trigger`` and ``listen``; settings from a Laravel .env."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from quvel import flags as opt
from quvel.cli import build_parser
from quvel_ws.server import PusherServer
from tests.peers import ROOT

SHARED = {
    "serve": ["--app-id", "--app-key", "--app-secret", "--master-key", "--host", "--port", "--env-file"],
    "trigger": ["--app-id", "--app-key", "--app-secret", "--master-key", "--host", "--port", "--env-file"],
    "listen": ["--app-key", "--host", "--port", "--env-file"],
}
ENV = {
    "--app-id": "QUVEL_APP_ID",
    "--app-key": "QUVEL_APP_KEY",
    "--app-secret": "QUVEL_APP_SECRET",
    "--master-key": "QUVEL_MASTER_KEY",
    "--host": "QUVEL_HOST",
    "--port": "QUVEL_PORT",
    "--env-file": "QUVEL_ENV_FILE",
}


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]  # type: ignore[no-any-return]


@pytest.mark.parametrize("command", sorted(SHARED))
def test_every_flag_has_help_a_default_and_the_shared_ones_an_env_var(command: str) -> None:
    parser = _subparser(command)
    visible = {
        flag: action
        for action in parser._actions
        if action.help != argparse.SUPPRESS and action.option_strings
        for flag in action.option_strings
    }
    for flag in SHARED[command]:
        action = visible[flag]
        assert action.help, (command, flag)
        assert "default:" in action.help, (command, flag, action.help)
        assert f"env {ENV[flag]}" in action.help, (command, flag, action.help)
    for flag, action in visible.items():
        if flag in ("-h", "--help") or action.required:
            continue
        assert action.help, (command, flag)
        assert "default" in action.help, (command, flag, action.help)
    text = parser.format_help()
    for old in ("--key ", "--secret "):
        assert old not in text  # the old spellings parse but stay out of the help


def test_old_spellings_still_parse_as_the_new_ones() -> None:
    args = build_parser().parse_args(["trigger", "--key", "k", "--secret", "s", "news", "E", "{}"])
    assert (args.app_key, args.app_secret) == ("k", "s")


def test_precedence_flag_then_env_file_then_environment_then_default() -> None:
    args = argparse.Namespace(app_key=None)
    environ = {"QUVEL_APP_KEY": "from-env"}
    assert opt.resolve(args, opt.APP_KEY, environ={}) == "app-key"
    assert opt.resolve(args, opt.APP_KEY, environ=environ) == "from-env"
    assert opt.resolve(args, opt.APP_KEY, {"app_key": "from-file"}, environ=environ) == "from-file"
    args.app_key = "from-flag"
    assert opt.resolve(args, opt.APP_KEY, {"app_key": "from-file"}, environ=environ) == "from-flag"
    with pytest.raises(opt.UsageError, match="QUVEL_PORT"):
        opt.resolve(argparse.Namespace(port=None), opt.PORT, environ={"QUVEL_PORT": "http"})


def _quvel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quvel", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
        check=False,
    )


async def test_trigger_reads_a_reverb_env_file(tmp_path: Path) -> None:
    async with PusherServer(port=0) as server:
        dotenv = tmp_path / ".env"
        dotenv.write_text(
            "BROADCAST_CONNECTION=reverb\nREVERB_APP_ID=1\nREVERB_APP_KEY=app-key\n"
            f"REVERB_APP_SECRET=app-secret\nREVERB_HOST=127.0.0.1\nREVERB_PORT={server.port}\n"
            'REVERB_SCHEME=http\nVITE_REVERB_APP_KEY="${REVERB_APP_KEY}"\n'
        )
        ok = await asyncio.to_thread(_quvel, "trigger", "--env-file", str(dotenv), "news", "E", "{}")
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"ok": True}
        wrong = await asyncio.to_thread(
            _quvel, "trigger", "--env-file", str(dotenv), "--app-secret", "nope", "news", "E", "{}"
        )
        assert wrong.returncode == 1  # the flag beats the file
        dotenv.write_text("BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY=app-key\nREVERB_PORT=eighty\n")
        bad = await asyncio.to_thread(_quvel, "trigger", "--env-file", str(dotenv), "news", "E", "{}")
        assert bad.returncode == 2
        assert "REVERB_HOST" in bad.stderr
        assert "Traceback" not in bad.stderr


def test_listen_refuses_a_bad_env_file_naming_the_variable(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("BROADCAST_CONNECTION=log\n")
    result = _quvel("listen", "--env-file", str(dotenv), "--channel", "news")
    assert result.returncode == 2
    assert "BROADCAST_CONNECTION" in result.stderr
    assert "Traceback" not in result.stderr


def _bind(dotenv: Path, **flags: object) -> dict[str, object]:
    return opt.server_bind_settings(argparse.Namespace(env_file=str(dotenv), **flags))


def test_serve_binds_where_reverbs_server_settings_say(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    base = "BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY=k\nREVERB_HOST=ws.example.test\n"
    dotenv.write_text(base)
    assert _bind(dotenv) == {}  # REVERB_HOST is the public name, never a bind address
    dotenv.write_text(base + "REVERB_PORT=8080\n")
    assert _bind(dotenv) == {"port": 8080}  # what Echo connects to, with nothing in front
    dotenv.write_text(base + "REVERB_PORT=443\nREVERB_SERVER_HOST=127.0.0.2\nREVERB_SERVER_PORT=8081\n")
    assert _bind(dotenv) == {"host": "127.0.0.2", "port": 8081}  # config/reverb.php's servers.reverb
    args = argparse.Namespace(host=None, port="9000")
    assert opt.resolve(args, opt.PORT, _bind(dotenv)) == 9000  # the flag beats the file
    assert opt.resolve(args, opt.HOST, _bind(dotenv), environ={"QUVEL_HOST": "::1"}) == "127.0.0.2"
    dotenv.write_text(base + "REVERB_SERVER_PORT=eighty\n")
    with pytest.raises(opt.UsageError, match="REVERB_SERVER_PORT"):
        _bind(dotenv)
    dotenv.write_text("BROADCAST_CONNECTION=pusher\nPUSHER_APP_KEY=k\nPUSHER_PORT=8080\n")
    assert _bind(dotenv) == {}  # Pusher's settings say where pusher.com is, not where to listen


@pytest.mark.slow
async def test_serve_and_trigger_share_one_laravel_env_file(tmp_path: Path) -> None:
    from tests.peers import free_port, read_json_line, stop_process_group

    port = free_port()
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "BROADCAST_CONNECTION=reverb\nREVERB_APP_ID=7\nREVERB_APP_KEY=my-key\nREVERB_APP_SECRET=my-secret-0123\n"
        f"REVERB_HOST=localhost\nREVERB_PORT={port}\nREVERB_SCHEME=http\nREVERB_SERVER_HOST=127.0.0.1\n"
    )
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, read in a thread below
        [sys.executable, "-m", "quvel", "serve", "--env-file", str(dotenv)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    try:
        info = await asyncio.to_thread(read_json_line, proc, 20)
        assert (info["host"], info["port"], info["app_id"], info["key"]) == ("127.0.0.1", port, "7", "my-key")
        sent = await asyncio.to_thread(_quvel, "trigger", "--env-file", str(dotenv), "news", "E", "{}")
        assert sent.returncode == 0, sent.stderr
    finally:
        await asyncio.to_thread(stop_process_group, proc)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
