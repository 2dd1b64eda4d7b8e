"""``quvel trigger``: publish one event through a Pusher HTTP API (quvel serve, Soketi, Reverb, Pusher).

The request is signed like the official SDKs sign it. Prints the server's JSON answer; exits non-zero
with the server's message when the event is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:6001", help="HTTP API base URL (default %(default)s)"
    )
    parser.add_argument("--app-id", default="1")
    parser.add_argument("--key", default="app-key")
    parser.add_argument("--secret", default="app-secret")
    parser.add_argument("--socket-id", default=None, help="exclude this connection (Echo's toOthers)")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("channel", help="channel name, or several separated by commas")
    parser.add_argument("event", help="event name")
    parser.add_argument("data", help="event data: JSON text is sent as is, anything else as a JSON string")


def run(args: argparse.Namespace) -> int:
    import httpx

    from quvel_ws.server import sign_params

    if not args.timeout > 0:
        print(f"quvel trigger: --timeout must be positive (seconds), got {args.timeout:g}", file=sys.stderr)
        return 2
    try:
        json.loads(args.data)
        data = args.data
    except ValueError:
        data = json.dumps(args.data)
    body_obj: dict[str, object] = {"name": args.event, "channels": args.channel.split(","), "data": data}
    if args.socket_id:
        body_obj["socket_id"] = args.socket_id
    body = json.dumps(body_obj).encode()
    path = f"/apps/{args.app_id}/events"
    params = sign_params("POST", path, {}, key=args.key, secret=args.secret, body=body)
    url = args.url.rstrip("/") + path
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
