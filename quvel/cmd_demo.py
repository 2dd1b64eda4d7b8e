"""``quvel demo``: the whole stack on one machine. An embedded Pusher server, a simulated Laravel back end
broadcasting notifications and chat, the notification and chat stores, a live view, one server restart
midway, and a summary that says whether anything was lost (exit code 1 if so). The viewer's notifications
and their read state are saved in ``--state-dir``: the next run starts from them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds to run (default 20; Ctrl-C stops early)"
    )
    parser.add_argument(
        "--no-tty", action="store_true", help="plain lines instead of the live view (logs, CI)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.35, help="seconds between back-end jobs (default 0.35)"
    )
    parser.add_argument("--no-restart", action="store_true", help="do not restart the server midway")
    parser.add_argument("--seed", type=int, default=None, help="seed for the simulated activity")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the viewer's notifications (and their read state) are saved between runs "
        "(default: a per-user data directory, e.g. ~/.local/share/quvel/demo)",
    )


def default_state_dir() -> Path:
    """The per-user data directory for the demo's saved state (XDG on Linux, the usual places elsewhere)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "quvel" / "demo"


async def run(args: argparse.Namespace) -> int:
    from quvel.demo._run import Demo, DemoOptions
    from quvel.demo._view import DemoView, LiveView, PlainView

    if not all(math.isfinite(v) and v > 0 for v in (args.duration, args.interval)):
        # NaN passed a `<= 0` test and ran a demo with no deadline and no schedule.
        print("quvel demo: --duration and --interval must be positive numbers of seconds", file=sys.stderr)
        return 2
    if not args.verbose:
        # The restart makes the client and the back end log warnings (4200, refused connections); the
        # demo shows those events itself. -v brings the logs back.
        for name in ("quvel_ws", "quvel.demo", "quvel_store"):
            logging.getLogger(name).setLevel(logging.ERROR)
    view: DemoView = PlainView() if args.no_tty or not sys.stdout.isatty() else LiveView()
    demo = Demo(
        DemoOptions(
            duration=args.duration,
            interval=args.interval,
            restart=not args.no_restart,
            seed=args.seed,
            state_dir=args.state_dir if args.state_dir is not None else default_state_dir(),
        ),
        view,
    )
    loop = asyncio.get_running_loop()

    def on_ctrl_c() -> None:
        # The first Ctrl-C ends the run and still prints the summary; a second one interrupts.
        demo.request_stop()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' default loop
        loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
    try:
        summary = await demo.run()
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
    return 0 if summary.ok else 1
