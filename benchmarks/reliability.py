"""The long versions of the fault scenarios (``tests/faults`` runs the short ones in CI).

Each scenario runs against the embedded server (``quvel serve`` in its own process) and Soketi (the
rows of ``REVERB_ROWS`` also against the Reverb-like scripted server), behind
the fault proxy, with the simulated Laravel back end; results go to
``benchmarks/results/reliability.json`` and ``scripts/reliability_table.py`` turns them into the table
of ``docs/reliability.md``.

    python benchmarks/reliability.py                      # everything, both servers (~6 minutes)
    python benchmarks/reliability.py --only herd,flaps --servers embedded
    python benchmarks/reliability.py --quick              # CI-sized, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults import resubscribe, scenarios  # noqa: E402
from tests.peers import SOKETI_BIN  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"

Scenario = Callable[..., Awaitable[dict[str, Any]]]

# name -> (function, long arguments, quick arguments)
PLAN: dict[str, tuple[Scenario, dict[str, Any], dict[str, Any]]] = {
    "kill_restart": (
        scenarios.kill_restart,
        {"clients": 20, "rate": 200, "kills": 5, "down_for": 1.0, "settle": 2.0},
        {"clients": 3, "rate": 50, "kills": 2, "down_for": 0.3},
    ),
    # Fast recovery (issue 11): one long outage, the library's default reconnect policy (cap 5 s).
    "outage_10s": (
        scenarios.kill_restart,
        {"clients": 20, "rate": 50, "kills": 1, "down_for": 10.0, "settle": 2.0, "library_defaults": True},
        {"clients": 3, "rate": 20, "kills": 1, "down_for": 3.0, "library_defaults": True},
    ),
    "outage_60s": (
        scenarios.kill_restart,
        {"clients": 20, "rate": 50, "kills": 1, "down_for": 60.0, "settle": 2.0, "library_defaults": True},
        {"clients": 3, "rate": 20, "kills": 1, "down_for": 3.0, "library_defaults": True},
    ),
    "blackhole": (
        scenarios.blackhole,
        {"activity_timeout": 5.0, "pong_timeout": 5.0, "hold": 2.0, "rate": 50},
        {"activity_timeout": 1.0, "pong_timeout": 1.0},
    ),
    "refused": (
        scenarios.refused,
        {"clients": 20, "seconds": 10.0, "backoff_initial": 1.0, "backoff_max": 5.0},
        {"clients": 5, "seconds": 3.0},
    ),
    "latency": (
        scenarios.latency,
        {"ms": 400, "seconds": 30.0, "activity_timeout": 1.0, "pong_timeout": 1.0, "rate": 0.5},
        {"ms": 300, "seconds": 5.0, "rate": 0.5},
    ),
    "cut_frames": (scenarios.cut_frames, {"cuts": 20, "rate": 200}, {"cuts": 5}),
    "closed_port": (scenarios.connect_refused_hard, {"seconds": 5.0}, {"seconds": 1.5}),
    "herd": (scenarios.herd, {"clients": 200, "backoff_max": 5.0}, {"clients": 40}),
    "auth_down": (
        scenarios.auth_down,
        {"clients": 5, "down_for": 5.0, "rate": 50, "recover_within": 60.0},
        {"clients": 2, "down_for": 1.5},
    ),
    "flaps": (scenarios.flaps, {"count": 100}, {"count": 100}),
    "nothing_lost": (
        scenarios.nothing_lost,
        {"rate": 500, "disconnects": 20, "duration": 20.0, "clients": 10},
        {"rate": 500, "disconnects": 20, "duration": 4.0},
    ),
    "api_503": (
        resubscribe.api_unavailable,
        {"clients": 10, "rate": 200, "api_down": 3.0, "server_down": 1.0, "settle": 2.0},
        {"clients": 3, "rate": 60, "api_down": 3.0},
    ),
    "api_timeout": (
        resubscribe.api_unavailable,
        {"clients": 10, "rate": 200, "api_down": 3.0, "server_down": 1.0, "settle": 2.0, "hang": True},
        {"clients": 3, "rate": 60, "api_down": 3.0, "hang": True},
    ),
    "auth_slow": (
        resubscribe.auth_resubscribe,
        {"clients": 10, "rate": 200, "delay": 1.5, "auth_down": 4.0},
        {"clients": 3, "rate": 60, "delay": 1.0, "auth_down": 2.0},
    ),
    "auth_failing": (
        resubscribe.auth_resubscribe,
        {"clients": 10, "rate": 200, "failing": True, "auth_down": 4.0},
        {"clients": 3, "rate": 60, "failing": True, "auth_down": 2.0},
    ),
    "presence_kill": (
        resubscribe.presence_kill,
        {"clients": 20, "rate": 100, "down_for": 1.0, "join_gap": 0.05},
        {"clients": 4, "rate": 40, "down_for": 0.5},
    ),
    "blackhole_subscribe": (
        resubscribe.blackhole_subscribe,
        {"rate": 100, "auth_delay": 0.5, "hold": 5.0, "activity_timeout": 2.0, "pong_timeout": 2.0},
        {"rate": 40},
    ),
    "tls_wrong": (resubscribe.tls_wrong, {"rate": 100, "watch_for": 10.0}, {"rate": 40, "watch_for": 3.0}),
}

#: Rows that also run against the Reverb-like scripted server (``tests/ws/reverb_server.py``): the
#: faults around a (re)subscription, where Reverb's answers differ from the other two servers.
REVERB_ROWS = {"auth_slow", "auth_failing", "presence_kill", "blackhole_subscribe", "tls_wrong"}


async def run(names: list[str], servers: list[str], quick: bool) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        fn, long_args, quick_args = PLAN[name]
        kwargs = quick_args if quick else long_args
        for kind in servers:
            if kind == "reverb" and name not in REVERB_ROWS:
                continue
            started = time.monotonic()
            print(f"== {name} on {kind} {kwargs}", flush=True)
            try:
                row = await fn(kind, **kwargs)
            except Exception as exc:  # a failed scenario is a result too: it goes in the table
                traceback.print_exc()
                row = {
                    "scenario": name,
                    "server": kind,
                    "load": json.dumps(kwargs),
                    "faults": "",
                    "error": f"{type(exc).__name__}: {exc}",
                    "recovery_s": None,
                }
            row["wall_s"] = round(time.monotonic() - started, 1)
            row["key"] = name
            print(json.dumps(row, default=str), flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(PLAN), help=f"comma-separated subset of {','.join(PLAN)}")
    parser.add_argument(
        "--servers",
        default="embedded,soketi,reverb",
        help="reverb (the Reverb-like scripted server) runs only the rows in REVERB_ROWS",
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-table", action="store_true", help="do not regenerate docs/reliability.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only the rows run now in an existing results file (scenario+server)",
    )
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(PLAN)
    if unknown:
        parser.error(f"unknown scenario(s): {sorted(unknown)}")
    servers = [s for s in args.servers.split(",") if s]
    if "soketi" in servers and not SOKETI_BIN.exists():
        print(
            "Soketi is not installed (scripts/test.sh installs it); running the embedded server only",
            file=sys.stderr,
        )
        servers.remove("soketi")
    rows = asyncio.run(run(names, servers, args.quick))
    if args.merge and args.out.exists():
        fresh = {(r["key"], r["server"]): r for r in rows}
        old = json.loads(args.out.read_text())["scenarios"]
        merged = [fresh.pop((r.get("key"), r.get("server")), r) for r in old]
        rows = merged + list(fresh.values())
    result = {
        "meta": {
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} cores (shared)",
            "command": "python benchmarks/reliability.py"
            + (" --quick" if args.quick else "")
            + ("" if args.only == ",".join(PLAN) or args.merge else f" --only {args.only}"),
        },
        "scenarios": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {args.out}")
    if not args.no_table:
        from scripts.reliability_table import main as table

        return table([str(args.out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
