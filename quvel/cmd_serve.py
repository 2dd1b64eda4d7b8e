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

if TYPE_CHECKING:
    from quvel_ws.server import AppConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=6001, help="port for WebSocket and HTTP API (0: any free)"
    )
    parser.add_argument("--app-id", default=None, help="app id (default 1, or $QUVEL_APP_ID)")
    parser.add_argument("--app-key", default=None, help="app key (default app-key, or $QUVEL_APP_KEY)")
    parser.add_argument(
        "--app-secret", default=None, help="app secret (default app-secret, or $QUVEL_APP_SECRET)"
    )
    parser.add_argument(
        "--enable-client-events", action="store_true", help="allow client-* events (whispers)"
    )
    parser.add_argument(
        "--activity-timeout",
        type=float,
        default=30,
        metavar="S",
        help="activity_timeout sent to clients; idle sockets are pinged after it (default 30)",
    )
    parser.add_argument(
        "--pong-timeout",
        type=float,
        default=30,
        metavar="S",
        help="close (4201) a pinged socket silent this long (default 30)",
    )
    parser.add_argument(
        "--max-payload", type=int, default=None, metavar="BYTES", help="largest event payload (default 10240)"
    )
    parser.add_argument(
        "--webhook", action="append", default=[], metavar="URL", help="POST signed webhooks here (repeatable)"
    )
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="scale out: nodes on one Redis form a cluster, e.g. redis://127.0.0.1:6379/0 ($QUVEL_REDIS_URL)",
    )
    parser.add_argument(
        "--apps-file",
        default=None,
        metavar="PATH",
        help="JSON file of apps ([{id, key, secret, enable_client_events, ...}]); replaces --app-* options",
    )


def _apps(args: argparse.Namespace) -> list[AppConfig]:
    import dataclasses

    from quvel_ws.server import AppConfig, app_from_env, load_apps_file

    apps_file = args.apps_file or os.environ.get("QUVEL_APPS_FILE")
    if apps_file:
        return list(load_apps_file(apps_file))
    base = app_from_env() or AppConfig()
    changes: dict[str, Any] = {}
    if args.app_id is not None:
        changes["id"] = args.app_id
    if args.app_key is not None:
        changes["key"] = args.app_key
    if args.app_secret is not None:
        changes["secret"] = args.app_secret
    if args.enable_client_events:
        changes["enable_client_events"] = True
    if args.max_payload is not None:
        changes["max_payload_bytes"] = args.max_payload
    if args.webhook:
        changes["webhooks"] = tuple(args.webhook)
    return [dataclasses.replace(base, **changes)]


async def run(args: argparse.Namespace) -> int:
    from quvel_ws.errors import ClusterError, InvalidArgument
    from quvel_ws.server import PusherServer

    try:
        apps = _apps(args)
        redis_url = args.redis or os.environ.get("QUVEL_REDIS_URL") or None
        server = PusherServer(
            apps=apps,
            host=args.host,
            port=args.port,
            activity_timeout=args.activity_timeout,
            pong_timeout=args.pong_timeout,
            redis_url=redis_url,
        )
        await server.start()
    except (InvalidArgument, ClusterError, OSError) as exc:
        print(f"quvel serve: {exc}", file=sys.stderr)
        return 2
    info = {
        "ws": server.ws_url,
        "http": server.http_url,
        "host": args.host,
        "port": server.port,
        "apps": [{"id": a.id, "key": a.key, "ws": server.ws_url_for(a.key)} for a in apps],
        "app_id": apps[0].id,
        "key": apps[0].key,
    }
    if server.cluster is not None:
        info["node"] = server.cluster.node_id
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
