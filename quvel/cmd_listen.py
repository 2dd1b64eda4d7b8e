"""``quvel listen``: tail a channel on any Pusher-protocol server (like wscat, for Pusher).

One line per event (``--json``: one JSON object with channel, event and data). It reconnects,
re-authorises and resubscribes through server restarts; ``--count`` exits after N events and ``--stats``
prints, last, one JSON line with ``received``, ``seconds`` and ``events_per_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, TextIO

from quvel import flags as opt

CHANNEL_TYPES = ("public", "private", "presence", "encrypted", "publicNotification", "privateNotification")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        nargs="*",
        default=[],
        help="the server's WebSocket URL, ws(s)://HOST:PORT/app/APP_KEY; several: a cluster's nodes, "
        "tried in turn when one fails (default: built from --scheme, --host, --port and --app-key)",
    )
    opt.add(parser, opt.HOST)
    opt.add(parser, opt.PORT)
    opt.add(parser, opt.SCHEME, help="http or https (wss://)")
    opt.add(parser, opt.APP_KEY)
    opt.add(parser, opt.ENV_FILE, help="a Laravel .env: the key, host, port and scheme Echo would use")
    parser.add_argument(
        "--channel",
        required=True,
        help="channel name (the type's prefix is added if missing)",
    )
    parser.add_argument(
        "--type",
        default=None,
        metavar="TYPE",
        help=f"channel type: {', '.join(CHANNEL_TYPES)} (default: from the name's prefix)",
    )
    parser.add_argument(
        "--event",
        action="append",
        default=None,
        metavar="NAME",
        help="only this event (repeatable); matches the wire name or its laravel-echo form "
        "(NewMessage also matches App\\Events\\NewMessage) (default: every event)",
    )
    parser.add_argument(
        "--auth-endpoint",
        default=None,
        metavar="URL",
        help="channel auth endpoint for private/presence/encrypted channels "
        "(default: APP_URL + /broadcasting/auth with --env-file, else the server's origin + "
        "/broadcasting/auth, which quvel serve --dev-auth answers)",
    )
    parser.add_argument("--user-auth-endpoint", default=None, metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="header sent to the auth endpoint, e.g. 'Authorization: Bearer T' (repeatable; default: none)",
    )
    parser.add_argument(
        "--origin", default=None, help="Origin header of the WebSocket handshake (default: none)"
    )
    parser.add_argument(
        "--count", type=int, default=None, metavar="N", help="exit after N events (default: never)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per event (default: one text line)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-event lines or notes (default: off)")
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print, last, one JSON line: received, seconds, events_per_s (default: off)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate (default: off)"
    )
    parser.add_argument(
        "--cafile",
        default=None,
        metavar="PEM",
        help="trust the CA certificate(s) in this PEM file for wss:// (default: the system CAs)",
    )


def parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header needs NAME:VALUE, got {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def _url_from_settings(args: argparse.Namespace, files: dict[str, Any]) -> str:
    """``ws(s)://host:port/app/key`` from the flags, the ``--env-file`` (Echo's view: ``VITE_*``
    first), ``QUVEL_*`` variables and the defaults."""
    host = opt.resolve(args, opt.HOST, files)
    port = opt.resolve(args, opt.PORT, files)
    scheme = opt.resolve(args, opt.SCHEME, files)
    key = opt.resolve(args, opt.APP_KEY, files)
    host = f"[{host}]" if ":" in host else host
    return f"{'wss' if scheme == 'https' else 'ws'}://{host}:{port}/app/{key}"


class _Printer:
    """Formats and counts events; buffered writes so a fast stream is not slowed by the terminal."""

    def __init__(self, out: TextIO, *, as_json: bool, quiet: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.quiet = quiet
        self.received = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def event(self, channel: str, event: str, data: Any, user_id: str | None) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.received += 1
        if self.quiet:
            return
        if self.as_json:
            record: dict[str, Any] = {"channel": channel, "event": event, "data": data}
            if user_id is not None:
                record["user_id"] = user_id
            line = dumps(record)
        else:
            body = data if isinstance(data, str) else dumps(data)
            line = f"{channel} {event} {body}"
        self.out.write(line + "\n")


def dumps(value: Any) -> str:
    """JSON text of any decoded event, however deeply nested (``json.dumps`` recurses and raises
    RecursionError near 1,000 levels; a server may send more)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except RecursionError:
        return _dumps_iteratively(value)


def _dumps_iteratively(value: Any) -> str:
    parts: list[str] = []
    stack: list[Any] = [value]  # values to write, and literal strings (as 1-tuples) between them
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            parts.append(item[0])
        elif isinstance(item, dict):
            pieces: list[Any] = [("{",)]
            for i, (key, val) in enumerate(item.items()):
                pieces.append(((", " if i else "") + json.dumps(str(key), ensure_ascii=False) + ": ",))
                pieces.append(val)
            pieces.append(("}",))
            stack.extend(reversed(pieces))
        elif isinstance(item, list):
            pieces = [("[",)]
            for i, val in enumerate(item):
                if i:
                    pieces.append((", ",))
                pieces.append(val)
            pieces.append(("]",))
            stack.extend(reversed(pieces))
        else:
            parts.append(json.dumps(item, ensure_ascii=False, default=str))
    return "".join(parts)


async def run(args: argparse.Namespace) -> int:
    import logging
    import ssl

    from quvel_ws import CertificateError, WebSocketService, WsError, format_event
    from quvel_ws.protocol import ConnectionState

    if not getattr(args, "verbose", 0):
        logging.getLogger("quvel_ws").setLevel(logging.ERROR)  # errors are printed as "# error:" lines
    try:
        headers = parse_headers(args.header)
    except ValueError as exc:
        print(f"quvel listen: {exc}", file=sys.stderr)
        return 2
    if args.count is not None and args.count < 1:
        print("quvel listen: --count must be at least 1", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"auth_headers": headers or None, "origin": args.origin}
    try:
        files = opt.env_file_settings(args, for_server=False)
        url = args.url or [_url_from_settings(args, files)]
        app_url = files.get("app_url")
    except opt.UsageError as exc:
        print(f"quvel listen: {exc}", file=sys.stderr)
        return 2
    if args.auth_endpoint:
        options["auth_endpoint"] = args.auth_endpoint
    elif app_url:  # Laravel answers /broadcasting/auth at APP_URL, not on the Reverb/Pusher host
        options["auth_endpoint"] = f"{app_url}/broadcasting/auth"
        options["user_auth_endpoint"] = f"{app_url}/broadcasting/user-auth"
    if args.user_auth_endpoint:
        options["user_auth_endpoint"] = args.user_auth_endpoint
    if args.cafile:
        options["ca_file"] = args.cafile
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    try:
        ws = WebSocketService(url, **options)
        channel = ws.channel(args.channel, args.type)
        wanted = None
        if args.event:
            wanted = set(args.event) | {format_event(e) for e in args.event}
    except WsError as exc:
        print(f"quvel listen: {exc}", file=sys.stderr)
        return 2

    out = sys.stdout
    printer = _Printer(out, as_json=args.json, quiet=args.quiet)
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[int] = loop.create_future()
    started = time.monotonic()
    flush_pending = False

    def flush() -> None:
        nonlocal flush_pending
        flush_pending = False
        out.flush()

    def on_event(ev: Any) -> None:
        nonlocal flush_pending
        if wanted is not None and ev.event not in wanted:
            return
        printer.event(ev.channel, ev.event, ev.data, ev.user_id)
        if not flush_pending:  # one flush per burst, not per line
            flush_pending = True
            loop.call_soon(flush)
        if args.count is not None and printer.received >= args.count and not finished.done():
            finished.set_result(0)

    def note(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    def on_state(state: ConnectionState) -> None:
        note(f"# {state.value}" + (f" (socket {ws.socket_id})" if state is ConnectionState.CONNECTED else ""))
        if state in (ConnectionState.DISCONNECTED, ConnectionState.FAILED) and not finished.done():
            finished.set_result(1)

    errors_seen: dict[str, list[float]] = {}  # message -> [window start, shown, hidden]

    def on_error(error: WsError) -> None:
        if isinstance(error, CertificateError):  # not transient: the library stops, so do we
            print(
                f"quvel listen: {error}\n  use --cafile PEM to trust the server's CA, "
                "or --insecure to skip verification (testing only)",
                file=sys.stderr,
                flush=True,
            )
            return
        # The same error at most 5 times per 10 s: a hostile server must not flood the terminal.
        text, now = str(error), time.monotonic()
        seen = errors_seen.get(text)
        if seen is None or now - seen[0] >= 10:
            hidden = int(seen[2]) if seen else 0
            if seen is None and len(errors_seen) >= 256:
                errors_seen.clear()
            errors_seen[text] = [now, 1, 0]
            note(f"# error: {text}" + (f" ({hidden} similar errors not shown)" if hidden else ""))
        elif seen[1] < 5:
            seen[1] += 1
            note(f"# error: {text}")
        else:
            seen[2] += 1

    disposables = [
        ws.state.subscribe(on_state),
        ws.errors.subscribe(on_error),
        channel.subscribed.subscribe(lambda _: note(f"# subscribed to {channel.name}")),
        channel.listen_to_all().subscribe(on_event),
    ]
    code = 1
    try:
        code = await finished
    finally:
        for d in disposables:
            d.dispose()
        await ws.shutdown()
        out.flush()
        if args.stats:
            end = time.monotonic()
            if printer.received >= 2 and printer.first_at is not None and printer.last_at is not None:
                seconds = printer.last_at - printer.first_at
            else:
                seconds = end - started
            stats = {
                "received": printer.received,
                "seconds": round(seconds, 6),
                "events_per_s": round(printer.received / seconds, 3) if seconds > 0 else 0.0,
                "listening_seconds": round(end - started, 3),
            }
            print(json.dumps(stats), flush=True)
    return code
