"""``quvel serve --dev-auth``: Laravel's auth paths on the server's own port, for local development.

The headline scenario runs as a user types it: ``quvel serve --dev-auth``, then ``quvel listen ... --type
privateNotification`` with no other flag, then ``quvel trigger``. The answers are checked against the
official ``pusher`` SDK's signatures, and ``trigger --encrypt`` against the client's decryption.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pusher
import pusher.signature
import pytest

from quvel_ws import WebSocketService
from quvel_ws.errors import InvalidArgument
from quvel_ws.server import AppConfig, DevAuth, PusherServer
from tests.peers import ROOT, read_json_line

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
NOTIFICATION = "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated"
SOCKET_ID = "123.456"


def quvel(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quvel", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture
def dev_server() -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", "--dev-auth", "--master-key", MASTER_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        yield read_json_line(proc, timeout=20), proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.mark.slow
async def test_listen_to_a_private_notification_channel_with_no_other_flag(
    dev_server: tuple[dict[str, Any], subprocess.Popen[str]],
) -> None:
    info, _ = dev_server
    assert info["auth_endpoint"] == f"{info['http']}/broadcasting/auth"
    channel = "private-tenant.acme.User.1"
    listen = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quvel",
        "listen",
        info["ws"],
        "--channel",
        channel,
        "--type",
        "privateNotification",
        "--count",
        "1",
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert listen.stderr is not None

        async def subscribed() -> None:
            while True:
                line = (await listen.stderr.readline()).decode()  # type: ignore[union-attr]
                assert line, "quvel listen ended before subscribing"
                assert "# error" not in line, line
                if f"# subscribed to {channel}" in line:
                    return

        await asyncio.wait_for(subscribed(), 30)
        data = json.dumps({"id": "n1", "type": "App\\Notifications\\Hello", "text": "hi"})
        sent = await asyncio.to_thread(
            quvel, "trigger", "--port", str(info["port"]), channel, NOTIFICATION, data
        )
        assert sent.returncode == 0, sent.stderr
        out, _ = await asyncio.wait_for(listen.communicate(), 30)
    finally:
        if listen.returncode is None:
            listen.kill()
            await listen.wait()
    assert listen.returncode == 0
    record = json.loads(out.decode().strip())
    assert record["channel"] == channel
    assert record["data"] == {"id": "n1", "type": "App\\Notifications\\Hello", "text": "hi"}


def test_start_up_says_it_is_for_development(
    dev_server: tuple[dict[str, Any], subprocess.Popen[str]],
) -> None:
    _, proc = dev_server
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "--dev-auth" in line
    assert "local development" in line


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_dev_auth_is_refused_off_loopback(host: str) -> None:
    result = quvel("serve", "--host", host, "--port", "0", "--dev-auth")
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(InvalidArgument, match="loopback"):
        DevAuth(AppConfig(), host=host)


@pytest.fixture
async def server() -> AsyncIterator[PusherServer]:
    app = AppConfig(encryption_master_key_base64=MASTER_KEY)
    dev = DevAuth(app, host="127.0.0.1", master_key=MASTER_KEY)
    async with PusherServer(apps=[app], routes=dev.routes) as running:
        yield running


def _sdk() -> Any:
    return pusher.Pusher(
        app_id="1", key="app-key", secret="app-secret", encryption_master_key_base64=MASTER_KEY
    )


async def _post(
    server: PusherServer, path: str, form: dict[str, str], token: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        return await client.post(path, data=form, headers=headers)


async def test_answers_match_the_official_sdk(server: PusherServer) -> None:
    sdk = _sdk()
    private = await _post(server, "/broadcasting/auth", {"socket_id": SOCKET_ID, "channel_name": "private-a"})
    assert private.status_code == 200
    assert private.json() == sdk.authenticate(channel="private-a", socket_id=SOCKET_ID)

    presence = await _post(
        server, "/broadcasting/auth", {"socket_id": SOCKET_ID, "channel_name": "presence-room"}, "7"
    )
    body = presence.json()
    assert json.loads(body["channel_data"]) == {"user_id": 7, "user_info": {"name": "User 7"}}
    # the SDK would encode channel_data with other spacing: check the signature of the string sent
    signed = f"{SOCKET_ID}:presence-room:{body['channel_data']}"
    assert body["auth"] == f"app-key:{pusher.signature.sign('app-secret', signed)}"

    anonymous = await _post(
        server, "/broadcasting/auth", {"socket_id": SOCKET_ID, "channel_name": "presence-room"}
    )
    assert json.loads(anonymous.json()["channel_data"])["user_id"] == 1  # no token: user 1

    encrypted = await _post(
        server, "/broadcasting/auth", {"socket_id": SOCKET_ID, "channel_name": "private-encrypted-vault"}
    )
    reference = sdk.authenticate(channel="private-encrypted-vault", socket_id=SOCKET_ID)
    assert encrypted.json()["auth"] == reference["auth"]
    assert encrypted.json()["shared_secret"] == reference["shared_secret"].decode()

    user = await _post(server, "/broadcasting/user-auth", {"socket_id": SOCKET_ID}, "ann")
    user_data = user.json()["user_data"]
    assert json.loads(user_data) == {"id": "ann", "user_info": {"name": "User ann"}}
    signed = f"{SOCKET_ID}::user::{user_data}"  # pusher:signin's string (the SDK's, spacing aside)
    assert user.json()["auth"] == f"app-key:{pusher.signature.sign('app-secret', signed)}"


async def test_bad_requests_get_laravel_like_errors_and_the_api_still_works(server: PusherServer) -> None:
    missing = await _post(server, "/broadcasting/auth", {"channel_name": "private-a"})
    assert missing.status_code == 400
    public = await _post(server, "/broadcasting/auth", {"socket_id": SOCKET_ID, "channel_name": "news"})
    assert public.status_code == 400
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        preflight = await client.options("/broadcasting/auth")
        assert preflight.status_code == 204
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        assert (await client.get("/")).text == "OK"  # the routes sit beside the server's own paths
    assert await server.trigger("news", "E", {"x": 1}) == 0


async def test_a_client_subscribes_every_kind_through_dev_auth(server: PusherServer) -> None:
    ws = WebSocketService(server.ws_url, auth_headers={"Authorization": "Bearer 5"})
    got: dict[str, Any] = {}
    done = asyncio.Event()

    def keep(name: str) -> Any:
        def on(value: Any) -> None:
            got[name] = value
            if len(got) == 3:
                done.set()

        return on

    try:
        ws.private("orders.1").listen("Shipped").subscribe(keep("private"))
        ws.encrypted_private("vault").listen("Secret").subscribe(keep("encrypted"))
        room = ws.join("room.1")
        room.members.subscribe(lambda members: members and keep("here")(members))
        await ws.connect(timeout=5)
        for _ in range(100):
            if len(server.channels()) == 3:
                break
            await asyncio.sleep(0.02)
        await server.trigger("private-orders.1", "App\\Events\\Shipped", {"id": 1})
        payload = DevAuth(AppConfig(), host="::1", master_key=MASTER_KEY).endpoint.authorizer.encrypt(
            "private-encrypted-vault", {"s": 2}
        )
        await server.trigger("private-encrypted-vault", "App\\Events\\Secret", payload)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await ws.shutdown()
    assert got["private"] == {"id": 1}
    assert got["encrypted"] == {"s": 2}
    assert [m.info for m in got["here"]] == [{"name": "User 5"}]


@pytest.mark.slow
async def test_trigger_encrypts_for_private_encrypted_channels(
    dev_server: tuple[dict[str, Any], subprocess.Popen[str]],
) -> None:
    info, _ = dev_server
    ws = WebSocketService(info["ws"])
    received: list[Any] = []
    arrived = asyncio.Event()

    def on(value: Any) -> None:
        received.append(value)
        arrived.set()

    try:
        ws.encrypted_private("vault").listen(".Secret").subscribe(on)
        await ws.connect(timeout=5)
        await asyncio.sleep(0.3)
        port = str(info["port"])
        refused = await asyncio.to_thread(
            quvel, "trigger", "--port", port, "private-encrypted-vault", "Secret", "{}"
        )
        assert refused.returncode == 2
        assert "master key" in refused.stderr
        wrong_kind = await asyncio.to_thread(
            quvel, "trigger", "--port", port, "--encrypt", "--master-key", MASTER_KEY, "news", "E", "{}"
        )
        assert wrong_kind.returncode == 2
        assert "private-encrypted-" in wrong_kind.stderr
        bad_key = await asyncio.to_thread(
            quvel,
            "trigger",
            "--port",
            port,
            "--master-key",
            "c2hvcnQ=",
            "private-encrypted-vault",
            "Secret",
            "{}",
        )
        assert bad_key.returncode == 2
        assert "--master-key" in bad_key.stderr
        sent = await asyncio.to_thread(
            quvel,
            "trigger",
            "--port",
            port,
            "--encrypt",
            "--master-key",
            MASTER_KEY,
            "private-encrypted-vault",
            "Secret",
            '{"pin": 1234}',
        )
        assert sent.returncode == 0, sent.stderr
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        await ws.shutdown()
    assert received == [{"pin": 1234}]


TWO_APPS = [
    {"id": "1", "key": "key-one", "secret": "secret-one-0123456789"},
    {"id": "2", "key": "key-two", "secret": "secret-two-0123456789"},
]


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "quvel", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
        cwd=ROOT,
    )


async def _private_outcome(ws_url: str, channel: str) -> str:
    """Subscribe a quvel_ws client to ``private-{channel}``: ``"subscribed"`` or the error's text."""
    ws = WebSocketService(ws_url)
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def settle(value: str) -> None:
        if not outcome.done():
            outcome.set_result(value)

    try:
        ch = ws.private(channel)
        ch.subscribed.subscribe(lambda _e: settle("subscribed"))
        ch.errors.subscribe(lambda e: settle(str(e)))
        ch.listen("Anything").subscribe(lambda _v: None)
        await ws.connect(timeout=5)
        return await asyncio.wait_for(outcome, 10)
    finally:
        await ws.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("named", [None, "2"])
async def test_dev_auth_signs_for_the_app_each_socket_belongs_to(tmp_path: Any, named: str | None) -> None:
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps(TWO_APPS))
    dev_auth = ["--dev-auth"] if named is None else ["--dev-auth", named]
    proc = _serve("--apps-file", str(apps_file), *dev_auth)
    try:
        info = await asyncio.to_thread(read_json_line, proc, 20)
        urls = {app["id"]: app["ws"] for app in info["apps"]}
        one = await _private_outcome(urls["1"], "orders.1")
        two = await _private_outcome(urls["2"], "orders.2")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=10)
    assert two == "subscribed"  # signed with app 2's secret, not the first app's
    if named is None:
        assert one == "subscribed"
        assert "with the secret of the app each socket connected to" in err
    else:
        assert "403" in one, one
        assert "for app '2' only" in err


def test_dev_auth_naming_an_unknown_app_is_refused() -> None:
    result = quvel("serve", "--port", "0", "--dev-auth", "9")
    assert result.returncode == 2
    assert "--dev-auth '9': no app with that id" in result.stderr
