"""``quvel serve``: run the embedded Pusher-compatible server (WebSocket + HTTP API on one port).

Once listening, the first stdout line is one JSON object (``ws``, ``http``, ``port``, app credentials),
so scripts and tests can read where it is; logs go to stderr. SIGTERM/SIGINT close clients with 4200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from quvel import flags as opt

if TYPE_CHECKING:
    from quvel_ws.server import AppConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    opt.add(parser, opt.HOST, help="bind address")
    opt.add(parser, opt.PORT, help="port for WebSocket and HTTP API (0: any free)")
    opt.add(parser, opt.APP_ID)
    opt.add(parser, opt.APP_KEY)
    opt.add(parser, opt.APP_SECRET)
    opt.add(parser, opt.MASTER_KEY, help="master key for --dev-auth's private-encrypted- channels (base64)")
    opt.add(
        parser,
        opt.ENV_FILE,
        help="a Laravel .env: the app id, key and secret of REVERB_* or PUSHER_*, and for Reverb the bind "
        "address REVERB_SERVER_HOST and port REVERB_SERVER_PORT (else REVERB_PORT)",
    )
    parser.add_argument(
        "--dev-auth",
        nargs="?",
        const="",
        default=None,
        metavar="APP_ID",
        help="also answer /broadcasting/auth and /broadcasting/user-auth, signing every channel for the "
        "user named by 'Authorization: Bearer <user id>' (user 1 without one) with the secret of the "
        "app the socket connected to (with APP_ID: that app only): local development only, refused "
        "unless --host is a loopback address (default: off)",
    )
    parser.add_argument(
        "--enable-client-events", action="store_true", help="allow client-* events (whispers) (default: off)"
    )
    parser.add_argument(
        "--activity-timeout",
        type=float,
        default=30,
        metavar="S",
        help="activity_timeout sent to clients; idle sockets are pinged after it (default %(default)s)",
    )
    parser.add_argument(
        "--pong-timeout",
        type=float,
        default=30,
        metavar="S",
        help="close (4201) a pinged socket silent this long (default %(default)s)",
    )
    parser.add_argument(
        "--max-payload", type=int, default=None, metavar="BYTES", help="largest event payload (default 10240)"
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST signed webhooks here (repeatable) (default: none)",
    )
    parser.add_argument(
        "--user-authentication",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept pusher:signin (default: on; Soketi's SOKETI_DEFAULT_APP_USER_AUTHENTICATION)",
    )
    parser.add_argument(
        "--user-authentication-timeout",
        type=float,
        default=None,
        metavar="S",
        help="close (4009) sockets that neither sign in nor join a private channel within S seconds "
        "(default: none)",
    )
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="scale out: nodes on one Redis form a cluster, e.g. redis://127.0.0.1:6379/0; "
        'else the apps file\'s "redis", else $QUVEL_REDIS_URL (default: none, one node)',
    )
    parser.add_argument(
        "--redis-transport",
        choices=("stream", "pubsub"),
        default="stream",
        help="how nodes relay to each other: a Redis Stream (resumes after a Redis restart, nothing "
        "lost) or pub/sub (at most once); every node of a cluster must use the same (default: stream)",
    )
    for limit in (
        opt.MAX_CHANNELS_PER_CONNECTION,
        opt.MAX_PENDING_CONNECTIONS,
        opt.MAX_PENDING_PER_ADDRESS,
        opt.HEAD_TIMEOUT,
        opt.MAX_PENDING_WEBHOOKS,
    ):
        opt.add(parser, limit)
    opt.add(
        parser,
        opt.APPS_FILE,
        help="JSON file of apps ([{id, key, secret, enable_client_events, ...}]); replaces --app-* options",
    )


def _apps(args: argparse.Namespace) -> list[AppConfig]:
    import dataclasses

    from quvel_ws.server import AppConfig, app_from_env, load_apps_file

    changes: dict[str, Any] = {}
    if args.user_authentication is not None:
        changes["user_authentication"] = args.user_authentication
    if args.user_authentication_timeout is not None:
        changes["user_authentication_timeout"] = args.user_authentication_timeout
    channels = opt.MAX_CHANNELS_PER_CONNECTION
    if args.max_channels_per_connection is not None or os.environ.get(channels.env):  # else each app's own
        changes["max_channels_per_connection"] = opt.resolve(args, channels)
    apps_file = opt.resolve(args, opt.APPS_FILE)
    if apps_file:
        return [dataclasses.replace(app, **changes) for app in load_apps_file(apps_file)]
    base = app_from_env() or AppConfig()
    # Flags, then the --env-file; QUVEL_APP_* (read by app_from_env) and the defaults come after.
    files = opt.env_file_settings(args, for_server=True)
    for setting, field in ((opt.APP_ID, "id"), (opt.APP_KEY, "key"), (opt.APP_SECRET, "secret")):
        value = getattr(args, setting.dest) or files.get(setting.dest)
        if value is not None:
            changes[field] = value
    master_key = opt.resolve(args, opt.MASTER_KEY)
    if master_key:
        changes["encryption_master_key_base64"] = master_key
    if args.enable_client_events:
        changes["enable_client_events"] = True
    if args.max_payload is not None:
        changes["max_payload_bytes"] = args.max_payload
    if args.webhook:
        changes["webhooks"] = tuple(args.webhook)
    return [dataclasses.replace(base, **changes)]


def _redis_url(args: argparse.Namespace) -> str | None:
    """``--redis``, else the apps file's ``"redis"``, else ``$QUVEL_REDIS_URL`` (the flag-file-env order
    of every other setting)."""
    from quvel_ws.server import redis_url_from_apps_file

    if args.redis:
        return str(args.redis)
    apps_file = opt.resolve(args, opt.APPS_FILE)
    from_file = redis_url_from_apps_file(apps_file) if apps_file else None
    return from_file or os.environ.get("QUVEL_REDIS_URL") or None


async def run(args: argparse.Namespace) -> int:
    from quvel_ws.errors import ClusterError, InvalidArgument
    from quvel_ws.server import (
        DEFAULT_SECRET,
        DevAuth,
        Limits,
        PusherServer,
        default_secret_apps,
        is_loopback,
    )

    try:
        apps = _apps(args)
        redis_url = _redis_url(args)
        bind = opt.server_bind_settings(args)
        host = opt.resolve(args, opt.HOST, bind)
        dev_auth = DevAuth(apps, host=host, only=args.dev_auth or None) if args.dev_auth is not None else None
        limits = Limits(
            max_pending_connections=opt.resolve(args, opt.MAX_PENDING_CONNECTIONS),
            max_pending_per_address=opt.resolve(args, opt.MAX_PENDING_PER_ADDRESS),
            head_timeout=opt.resolve(args, opt.HEAD_TIMEOUT),
            max_pending_webhooks=opt.resolve(args, opt.MAX_PENDING_WEBHOOKS),
        )
        server = PusherServer(
            apps=apps,
            limits=limits,
            host=host,
            port=opt.resolve(args, opt.PORT, bind),
            activity_timeout=args.activity_timeout,
            pong_timeout=args.pong_timeout,
            redis_url=redis_url,
            redis_transport=args.redis_transport,
            routes=dev_auth.routes if dev_auth is not None else None,
        )
        if dev_auth is not None:
            dev_auth.app_of_socket = server.app_of_socket
        await server.start()
    except (InvalidArgument, ClusterError, OSError, opt.UsageError) as exc:
        print(f"quvel serve: {exc}", file=sys.stderr)
        return 2
    if dev_auth is not None:
        signs = (
            f"for app {dev_auth.app.id!r} only"
            if dev_auth.only is not None or len(apps) == 1
            else "with the secret of the app each socket connected to"
        )
        print(
            f"quvel serve: --dev-auth: {server.http_url}/broadcasting/auth signs EVERY channel for ANY "
            f"caller (user = the bearer token, else 1), {signs}; for local development only, never in "
            "production",
            file=sys.stderr,
            flush=True,
        )
    if default_secret_apps(apps) and is_loopback(host):
        ids = ", ".join(repr(a.id) for a in default_secret_apps(apps))
        print(
            f"quvel serve: WARNING: app {ids} runs with the default secret {DEFAULT_SECRET!r}: anyone "
            "who knows it can sign private channels and publish. Fine on loopback for development; set "
            '--app-secret, QUVEL_APP_SECRET or "secret" in the apps file before binding elsewhere.',
            file=sys.stderr,
            flush=True,
        )
    info = {
        "ws": server.ws_url,
        "http": server.http_url,
        "host": host,
        "port": server.port,
        "apps": [{"id": a.id, "key": a.key, "ws": server.ws_url_for(a.key)} for a in apps],
        "app_id": apps[0].id,
        "key": apps[0].key,
    }
    if server.cluster is not None:
        info["node"] = server.cluster.node_id
    if dev_auth is not None:
        info["auth_endpoint"] = f"{server.http_url}/broadcasting/auth"
    print(json.dumps(info), flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()
    return 0
