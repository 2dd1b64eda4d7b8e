"""The server's HTTP/1.1 reader (``quvel_ws.server._http11``) against h11, on the HTTP API path.

One request as the official SDK sends it (``POST /apps/1/events`` with its signed query and a ~170-byte
JSON body) is read and answered on a keep-alive connection, over and over, by each side in the same
run: quvel's reader (find the head's end, ``parse_head``, ``body_length``, slice the body, build the
response bytes) and h11 (``receive_data``, the Request/Data/EndOfMessage events, a headers dict as the
server needs it, the Response/Data/EndOfMessage sends, ``start_next_cycle``). Median of ``--repeat``
runs of ``--n`` requests; the ratio is h11's time over quvel's (above 1: h11 is slower).

    python benchmarks/http_head.py            # --n 20000 --repeat 7
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import h11

from quvel_ws.server._http11 import body_length, parse_head, response

BODY = json.dumps(
    {"name": "NewUpdate", "channels": ["news"], "data": json.dumps({"id": 1, "title": "x" * 100})}
).encode()


def sdk_request() -> bytes:
    md5 = hashlib.md5(BODY).hexdigest()  # the Pusher signing scheme
    query = f"auth_key=app-key&auth_timestamp={int(time.time())}&auth_version=1.0&body_md5={md5}"
    signature = hmac.new(b"app-secret", f"POST\n/apps/1/events\n{query}".encode(), hashlib.sha256).hexdigest()
    head = (
        f"POST /apps/1/events?{query}&auth_signature={signature} HTTP/1.1\r\n"
        "Host: 127.0.0.1:6001\r\nUser-Agent: pusher-http-python 3.3.4\r\nAccept-Encoding: gzip, deflate\r\n"
        "Accept: */*\r\nConnection: keep-alive\r\nX-Pusher-Library: pusher-http-python 3.3.4\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode("latin-1") + BODY


def quvel(data: bytes, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        end = data.find(b"\r\n\r\n")
        req = parse_head(data[:end])
        length = body_length(req, 1024 * 1024)
        req.body = data[end + 4 : end + 4 + length]
        assert req.path == "/apps/1/events"
        response(200, b"{}", keep_alive=req.keep_alive)
    return time.perf_counter() - started


def h11_side(data: bytes, n: int) -> float:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
    started = time.perf_counter()
    for _ in range(n):
        conn.receive_data(data)
        req = conn.next_event()
        assert isinstance(req, h11.Request)
        headers: dict[str, str] = {}
        for name, value in req.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        body = b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        path = req.target.split(b"?", 1)[0].decode("latin-1")
        assert path == "/apps/1/events"
        assert len(body) == len(BODY)
        out = b"{}"
        conn.send(
            h11.Response(
                status_code=200,
                headers=[
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(out))),
                    ("Access-Control-Allow-Origin", "*"),
                ],
            )
        )
        conn.send(h11.Data(data=out))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    data = sdk_request()
    sides: dict[str, Callable[[bytes, int], float]] = {
        "quvel _http11": quvel,
        f"h11 {version('h11')}": h11_side,
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        for name, run in sides.items():
            times[name].append(run(data, args.n) / args.n * 1e6)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"request: {len(data)} bytes, {args.n} requests x {args.repeat} runs (median us per request)")
    for name, median in medians.items():
        print(f"  {name:16} {median:7.2f} us  (min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    ours, theirs = medians.values()
    print(f"  ratio h11 / quvel: {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
