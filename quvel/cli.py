"""``quvel``: the command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``
(``async`` allowed); this file only wires them up, importing a module when its command runs, so
``quvel --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence

from quvel._version import __version__

# name -> (module, one-line help). Modules are imported when the parser is built; keep their top-level
# imports light (import heavy things inside ``run``). One line per command.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("quvel.cmd_serve", "run the embedded Pusher-compatible server (WebSocket + HTTP API)"),
    "trigger": ("quvel.cmd_trigger", "publish an event through a Pusher HTTP API (signed)"),
    "listen": ("quvel.cmd_listen", "tail a channel on any Pusher-protocol server (survives restarts)"),
    "timeline": ("quvel.cmd_timeline", "print or follow a store timeline exported by History.export()"),
    "demo": ("quvel.cmd_demo", "the whole stack live: server, Laravel-like back end, stores, a restart"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quvel",
        description="Typed Pinia-style stores and a Laravel Echo / Pusher real-time toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"quvel {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 0
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from quvel_ws import RedactSecrets

    for handler in logging.getLogger().handlers:  # httpx's request log prints signed URLs at INFO
        handler.addFilter(RedactSecrets())
    run = importlib.import_module(args._module).run
    try:
        result = run(args)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 130
    return int(result or 0)
