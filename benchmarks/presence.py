"""100k presence joins with ``members`` subscribed (issue 11): how long until the client has them all,
and the longest event-loop stall meanwhile. The server is the test suite's scripted server in the same
process, so the figure includes sending; compare trees side by side in one run:

    PYTHONPATH=/path/to/tree python benchmarks/presence.py [--joins 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quvel_ws import WebSocketService  # noqa: E402
from tests.ws.helpers import Collector  # noqa: E402
from tests.ws.scripted_server import ScriptedServer  # noqa: E402


async def _me(channel: str, socket_id: str) -> dict[str, str]:
    return {"auth": "app-key:unchecked", "channel_data": '{"user_id":"me","user_info":{}}'}


async def run(joins: int) -> dict[str, Any]:
    async with ScriptedServer() as server:
        ws = WebSocketService(server.url, authorizer=_me)
        room = ws.join("hall")
        latest: list[Any] = [()]
        room.members.subscribe(lambda members: latest.__setitem__(0, members))
        await Collector(room.subscribed).first()
        frames = [
            '{"event":"pusher_internal:member_added","channel":"presence-hall","data":'
            f'"{{\\"user_id\\":{i},\\"user_info\\":{{}}}}"}}'
            for i in range(joins)
        ]
        stall, done = 0.0, False

        async def ticker() -> None:
            nonlocal stall
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                stall, last = max(stall, now - last), now

        tick = asyncio.create_task(ticker())
        cpu, start = time.process_time(), time.perf_counter()
        ws_conn = server.latest.ws
        for i in range(0, joins, 500):
            for text in frames[i : i + 500]:
                await ws_conn.send(text)
        while len(latest[0]) < joins + 1:  # noqa: ASYNC110 - a benchmark polling its own result
            await asyncio.sleep(0.005)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        done = True
        await tick
        await ws.shutdown()
        return {"joins": joins, "seconds": elapsed, "cpu_seconds": cpu, "max_stall_ms": stall * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--joins", type=int, default=100_000)
    args = parser.parse_args()
    result = asyncio.run(run(args.joins))
    print(
        f"{result['joins']:,} joins: {result['seconds']:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
        f"longest loop stall {result['max_stall_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
