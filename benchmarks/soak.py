"""Soak: one client on 200 channels at 1,000 events/s for 10 minutes, with a fault every minute.

The client process holds one ``WebSocketService`` (180 public and 20 private channels, re-authorised
on every reconnect by an in-process signer) behind the fault proxy. The events come from a separate
publisher process (signed ``batch_events`` at a steady rate), so what is measured is the client: its
resident memory (RSS), asyncio task count, sockets and channel handlers, sampled every 10 s. They must
stay flat: a leak grows with every event or every reconnect.

Faults rotate: an RST drop of the connection, a 12 s blackhole (the heartbeat, 5 s + 5 s here, must
notice it), a graceful server restart (4200) and a server kill (SIGKILL).

    python benchmarks/soak.py                       # 10 minutes, embedded server
    python benchmarks/soak.py --minutes 3 --server soketi
    python benchmarks/soak.py --minutes 1 --rate 200 --channels 50 --fault-every 15

Writes ``benchmarks/results/soak-<server>.json`` (every sample and a summary) and prints the curve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
FAULTS = ("drop", "blackhole", "restart", "kill")


# --- publisher process ------------------------------------------------------------------------------------


def publish(http_url: str, channels: int, rate: float, seconds: float) -> None:
    """Publish ``rate`` events/s round-robin over ``channels`` for ``seconds``, in batches of 10; print
    one JSON line with what was sent. Failed requests (server down) are counted, not retried."""
    import httpx

    from quvel_ws.server import sign_params

    path = "/apps/1/batch_events"
    seq = [0] * channels
    sent = failed = 0
    batch_size = 10
    interval = batch_size / rate
    started = time.monotonic()
    n = 0
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() - started < seconds:
            batch = []
            for _ in range(batch_size):
                ch = n % channels
                n += 1
                seq[ch] += 1
                batch.append(
                    {
                        "channel": f"{'private-' if ch < channels // 10 else ''}soak-{ch}",
                        "name": "Tick",
                        "data": json.dumps({"ch": ch, "seq": seq[ch]}),
                    }
                )
            body = json.dumps({"batch": batch}).encode()
            params = sign_params("POST", path, {}, key="app-key", secret="app-secret", body=body)
            try:
                r = client.post(
                    http_url + path, params=params, content=body, headers={"Content-Type": "application/json"}
                )
                ok = r.status_code == 200 and "error" not in r.text
            except httpx.HTTPError:
                ok = False
            if ok:
                sent += len(batch)
            else:
                failed += len(batch)
            delay = started + (n / rate) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -interval * 50:  # far behind (server down a while): do not burst to catch up
                started += -delay
    print(json.dumps({"sent": sent, "failed": failed, "per_channel": seq}), flush=True)


# --- client (measured) process ------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    from quvel_ws import WebSocketService
    from quvel_ws.auth import Authorizer
    from tests.faults.harness import EmbeddedServerProcess
    from tests.faults.leaks import snapshot
    from tests.faults.proxy import FaultProxy
    from tests.peers import SoketiServer

    server: Any = EmbeddedServerProcess() if args.server == "embedded" else SoketiServer()
    await asyncio.to_thread(server.start)
    proxy = await FaultProxy("127.0.0.1", server.port).start()
    signer = Authorizer("app-key", "app-secret")

    async def authorize(channel: str, socket_id: str) -> Any:
        return signer.channel(socket_id, channel)

    ws = WebSocketService(
        f"ws://127.0.0.1:{proxy.port}/app/app-key",
        authorizer=authorize,
        activity_timeout=5.0,
        pong_timeout=5.0,
        backoff_initial=0.5,
        backoff_max=5.0,
        connect_timeout=5.0,
    )
    received = [0] * args.channels
    last_seq = [0] * args.channels
    gaps = [0]
    resubscriptions = [0]

    def on_tick(payload: Any) -> None:
        ch, seq = payload["ch"], payload["seq"]
        received[ch] += 1
        if seq > last_seq[ch] + 1:
            gaps[0] += seq - last_seq[ch] - 1
        last_seq[ch] = max(last_seq[ch], seq)

    subscribed_channels: set[str] = set()

    def on_subscribed(event: Any) -> None:
        if event.channel in subscribed_channels:
            resubscriptions[0] += 1
        subscribed_channels.add(event.channel)

    for ch in range(args.channels):
        name = f"{'private-' if ch < args.channels // 10 else ''}soak-{ch}"
        channel = ws.channel(name)
        channel.listen(".Tick").subscribe(on_tick)
        channel.subscribed.subscribe(on_subscribed)

    deadline = time.monotonic() + 30
    while len(subscribed_channels) < args.channels:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(subscribed_channels)} of {args.channels} channels subscribed")
        await asyncio.sleep(0.05)

    seconds = args.minutes * 60
    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "_publish",
        server.http_url,
        str(args.channels),
        str(args.rate),
        str(seconds),
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    samples: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    started = time.monotonic()
    next_sample = started
    next_fault = started + args.fault_every
    fault_index = 0
    last_received = 0

    def sample() -> None:
        nonlocal last_received
        snap = snapshot()
        total = sum(received)
        t = time.monotonic() - started
        samples.append(
            {
                "t": round(t, 1),
                "rss_mb": round(snap.rss / 2**20, 2),
                "tasks": snap.tasks,
                "sockets": snap.sockets,
                "fds": snap.fds,
                "hubs": snap.hubs,
                "handlers": snap.handlers,
                "received": total,
                "rate": round((total - last_received) / args.sample_every, 1),
                "state": str(ws.current_state),
            }
        )
        last_received = total
        s = samples[-1]
        print(
            f"{s['t']:7.1f}s  rss {s['rss_mb']:7.2f} MB  tasks {s['tasks']:3d}  sockets {s['sockets']:3d}  "
            f"handlers {s['handlers']:4d}  received {s['received']:8d}  ({s['rate']:.0f}/s)  {s['state']}",
            flush=True,
        )

    try:
        while time.monotonic() - started < seconds:
            now = time.monotonic()
            if now >= next_sample:
                sample()
                next_sample += args.sample_every
            if args.fault_every > 0 and now >= next_fault and now - started < seconds - 15:
                kind = FAULTS[fault_index % len(FAULTS)]
                fault_index += 1
                at = round(now - started, 1)
                if kind == "drop":
                    await proxy.drop_all()
                elif kind == "blackhole":  # longer than activity + pong timeout: the heartbeat must act
                    proxy.blackhole()
                    await asyncio.sleep(12)
                    proxy.pass_through()
                elif kind in ("restart", "kill"):
                    await asyncio.to_thread(server.stop, kind == "kill")
                    await asyncio.to_thread(server.start)
                faults.append({"t": at, "fault": kind})
                print(f"{at:7.1f}s  fault: {kind}", flush=True)
                next_fault += args.fault_every
            await asyncio.sleep(min(0.2, max(0.0, min(next_sample, next_fault) - time.monotonic())))
        out, _ = await publisher.communicate()
        await asyncio.sleep(1.0)  # the last events in flight
        sample()
    finally:
        if publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        await ws.shutdown()
        await proxy.close()
        await asyncio.to_thread(server.stop, True)

    published = json.loads(out.decode().strip().splitlines()[-1])
    return {
        "meta": {
            "server": args.server,
            "minutes": args.minutes,
            "channels": args.channels,
            "rate": args.rate,
            "fault_every_s": args.fault_every,
            "sample_every_s": args.sample_every,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} cores (shared)",
        },
        "samples": samples,
        "faults": faults,
        "events": {
            "published": published["sent"],
            "publish_failed": published["failed"],
            "received": sum(received),
            "gaps_seen": gaps[0],
        },
        "resubscriptions": resubscriptions[0],
        "summary": summarize(samples),
    }


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS and task trends after a one-minute warm-up (or the first third of a short run)."""
    if not samples:
        return {}
    end = samples[-1]["t"]
    warm = min(60.0, end / 3)
    steady = [s for s in samples if s["t"] >= warm] or samples
    ts = [s["t"] / 60 for s in steady]
    rss = [s["rss_mb"] for s in steady]
    tasks = [s["tasks"] for s in steady]
    handlers = [s["handlers"] for s in steady]
    slope = _slope(ts, rss)
    return {
        "warmup_s": warm,
        "rss_mb_first": rss[0],
        "rss_mb_last": rss[-1],
        "rss_mb_min": min(rss),
        "rss_mb_max": max(rss),
        "rss_slope_mb_per_min": round(slope, 3),
        "tasks_min": min(tasks),
        "tasks_max": max(tasks),
        "tasks_first": tasks[0],
        "tasks_last": tasks[-1],
        "handlers_min": min(handlers),
        "handlers_max": max(handlers),
        "sockets_max": max(s["sockets"] for s in steady),
        "flat": bool(
            max(rss) - min(rss) < max(8.0, 0.1 * rss[0])
            and tasks[-1] <= tasks[0] + 2
            and min(handlers) == max(handlers)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_publish":
        publish(argv[1], int(argv[2]), float(argv[3]), float(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (all channels)")
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds between faults (0: none)")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--server", choices=["embedded", "soketi"], default="embedded")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = asyncio.run(soak(args))
    out = args.out or RESULTS / f"soak-{args.server}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"events": result["events"], "summary": result["summary"]}, indent=2))
    print(f"written to {out}")
    return 0 if result["summary"].get("flat") else 1


if __name__ == "__main__":
    sys.exit(main())
