"""``quvel trigger``: publish one event through a Pusher HTTP API (quvel serve, Soketi, Reverb, Pusher).

The request is signed like the official SDKs sign it, and data for a ``private-encrypted-`` channel is
encrypted as they do (with the master key). Prints the server's JSON answer; exits non-zero with the
server's message when the event is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from quvel import flags as opt

if TYPE_CHECKING:
    import httpx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    opt.add(parser, opt.HOST, help="the HTTP API's host")
    opt.add(parser, opt.PORT, help="the HTTP API's port")
    opt.add(parser, opt.SCHEME)
    parser.add_argument(
        "--url",
        default=None,
        help="the HTTP API's base URL, instead of --scheme/--host/--port, e.g. https://ws.example.com "
        "(default: none)",
    )
    opt.add(parser, opt.APP_ID)
    opt.add(parser, opt.APP_KEY)
    opt.add(parser, opt.APP_SECRET)
    opt.add(parser, opt.MASTER_KEY)
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt the data for a private-encrypted- channel with the master key, as the official "
        "SDKs do (done anyway for such a channel when a master key is given) (default: off)",
    )
    opt.add(parser, opt.ENV_FILE)
    opt.add(parser, opt.APPS_FILE, help="JSON file of apps; the app named by --app-id, or the first")
    parser.add_argument(
        "--socket-id", default=None, help="exclude this connection (Echo's toOthers) (default: none)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the server (default %(default)s)"
    )
    parser.add_argument("channel", help="channel name, or several separated by commas")
    parser.add_argument("event", help="event name")
    parser.add_argument("data", help="event data: JSON text is sent as is, anything else as a JSON string")


def _apps_file_values(args: argparse.Namespace) -> dict[str, Any]:
    path = opt.resolve(args, opt.APPS_FILE)
    if not path:
        return {}
    from quvel_ws.errors import InvalidArgument
    from quvel_ws.server import load_apps_file

    try:
        apps = load_apps_file(path)
    except InvalidArgument as exc:
        raise opt.UsageError(str(exc)) from None
    wanted = opt.resolve(args, opt.APP_ID, default="")
    chosen = next((a for a in apps if a.id == wanted), None) if wanted else apps[0]
    if chosen is None:
        raise opt.UsageError(f"no app with id {wanted!r} in {path}")
    return {
        "app_id": chosen.id,
        "app_key": chosen.key,
        "app_secret": chosen.secret,
        "master_key": chosen.encryption_master_key_base64,
    }


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    files = {**_apps_file_values(args), **opt.env_file_settings(args, for_server=True)}
    settings = {
        s.dest: opt.resolve(args, s, files)
        for s in (opt.APP_ID, opt.APP_KEY, opt.APP_SECRET, opt.MASTER_KEY, opt.HOST, opt.PORT, opt.SCHEME)
    }
    if args.url:
        settings["url"] = args.url.rstrip("/")
    else:
        host = settings["host"]
        host = f"[{host}]" if ":" in host else host
        settings["url"] = f"{settings['scheme']}://{host}:{settings['port']}"
    return settings


def _data(args: argparse.Namespace, channels: list[str], master_key: str | None) -> str:
    from quvel_ws.protocol import is_encrypted

    try:
        json.loads(args.data)
        data: str = args.data
    except ValueError:
        data = json.dumps(args.data)
    encrypted = [ch for ch in channels if is_encrypted(ch)]
    if args.encrypt and not encrypted:
        raise opt.UsageError("--encrypt is for private-encrypted- channels; none was given")
    if not encrypted:
        return data
    if len(channels) > 1:
        raise opt.UsageError("an event to a private-encrypted- channel must go to that one channel only")
    if not master_key:
        raise opt.UsageError(
            f"{channels[0]} is encrypted: give the master key (--master-key BASE64, QUVEL_MASTER_KEY "
            "or the apps file's encryption_master_key_base64); its clients cannot read plain data"
        )
    from quvel_ws.errors import InvalidArgument
    from quvel_ws.server.auth import encrypt_event

    try:
        return encrypt_event(channels[0], data, master_key)
    except InvalidArgument as exc:
        raise opt.UsageError(f"--master-key: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import httpx

    from quvel_ws.server import sign_params

    if not args.timeout > 0:
        print(f"quvel trigger: --timeout must be positive (seconds), got {args.timeout:g}", file=sys.stderr)
        return 2
    channels = args.channel.split(",")
    try:
        settings = _settings(args)
        data = _data(args, channels, settings["master_key"])
    except opt.UsageError as exc:
        print(f"quvel trigger: {exc}", file=sys.stderr)
        return 2
    body_obj: dict[str, object] = {"name": args.event, "channels": channels, "data": data}
    if args.socket_id:
        body_obj["socket_id"] = args.socket_id
    body = json.dumps(body_obj).encode()
    path = f"/apps/{settings['app_id']}/events"
    params = sign_params("POST", path, {}, key=settings["app_key"], secret=settings["app_secret"], body=body)
    url = settings["url"] + path
    try:
        resp = httpx.post(
            url,
            params=params,
            content=body,
            timeout=args.timeout,
            headers={"Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        print(f"quvel trigger: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    refusal = _refusal(resp)
    if refusal is not None:
        print(f"quvel trigger: {url} refused the event ({refusal})", file=sys.stderr)
        return 1
    print(resp.text.strip())
    return 0


def _refusal(resp: httpx.Response) -> str | None:
    """Why the server refused the event, or None. Soketi 1.6 answers refusals (a wrong secret, an
    unknown app) with status 200 and ``{"error": ..., "code": 401}`` in the body, so both are checked."""
    text = resp.text.strip()
    if resp.status_code != 200:
        return f"{resp.status_code}: {text}"
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        return None
    if isinstance(answer, dict) and "error" in answer:
        return f"{answer.get('code', resp.status_code)}: {answer['error']}"
    return None
