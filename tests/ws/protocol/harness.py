"""A fake-clock harness around the sans-I/O core: no network, no event loop, every branch reachable."""

from __future__ import annotations

import random
from typing import Any, TypeVar

import orjson

from quvel_ws.protocol import (
    ChannelAuthData,
    CloseTransport,
    ConnectionState,
    ErrorRaised,
    OpenTransport,
    Output,
    ProtocolConfig,
    PusherProtocol,
    SendFrame,
)

URL = "ws://127.0.0.1:6001/app/app-key?protocol=7&client=python-quvel&version=0.1.0"
T = TypeVar("T")


class Harness:
    """Drives a :class:`PusherProtocol` like a driver would, with a clock the test moves."""

    def __init__(self, seed: int = 7, **config: Any) -> None:
        self.now = 1000.0
        self.config = ProtocolConfig(url=config.pop("url", URL), **config)
        self.proto = PusherProtocol(self.config, rng=random.Random(seed))
        self.log: list[Output] = []  # every output ever drained

    # --- plumbing -----------------------------------------------------------------------------------

    def drain(self) -> list[Output]:
        events = self.proto.events_to_process()
        self.log.extend(events)
        return events

    def advance(self, seconds: float) -> list[Output]:
        """Move the clock, ticking at every deadline on the way (as the driver's timer would)."""
        target = self.now + seconds
        while True:
            deadline = self.proto.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.proto.tick(self.now)
            after = self.proto.next_deadline()
            assert after is None or after > self.now, "next_deadline in the past after tick"
        self.now = target
        return self.drain()

    # --- the server side ----------------------------------------------------------------------------

    def frame(
        self,
        event: str,
        data: Any = None,
        channel: str | None = None,
        *,
        encode: bool = True,
        omit_data: bool = False,
        **extra: Any,
    ) -> list[Output]:
        """Deliver a frame; ``data`` is JSON-encoded into a string like servers do unless ``encode=False``."""
        msg: dict[str, Any] = {"event": event}
        if channel is not None:
            msg["channel"] = channel
        if not omit_data:
            msg["data"] = orjson.dumps(data).decode() if encode else data
        msg.update(extra)
        return self.raw(orjson.dumps(msg).decode())

    def raw(self, text: str | bytes) -> list[Output]:
        self.proto.receive(text, self.now)
        return self.drain()

    def open(self) -> list[Output]:
        """``connect()`` (if needed) and report the socket open; returns the outputs."""
        if self.proto.state in (ConnectionState.INITIALIZED, ConnectionState.DISCONNECTED):
            self.proto.connect(self.now)
        self.proto.transport_opened(self.now)
        return self.drain()

    def establish(self, socket_id: str = "123.456", activity_timeout: float = 120) -> list[Output]:
        return self.frame(
            "pusher:connection_established", {"socket_id": socket_id, "activity_timeout": activity_timeout}
        )

    def connect(self, socket_id: str = "123.456", activity_timeout: float = 120) -> list[Output]:
        """Full handshake: connect, open, established; returns the outputs of the last step."""
        self.open()
        return self.establish(socket_id, activity_timeout)

    def reopen(self, socket_id: str = "2.2", activity_timeout: float = 120) -> list[Output]:
        """After a drop: run the clock to the retry's ``OpenTransport``, then open and handshake."""
        for _ in range(100):
            deadline = self.proto.next_deadline()
            assert deadline is not None, "no retry scheduled"
            if opens(self.advance(max(0.0, deadline - self.now))):
                break
        else:
            raise AssertionError("no OpenTransport")
        self.proto.transport_opened(self.now)
        self.drain()
        return self.establish(socket_id, activity_timeout)

    def close(self, code: int | None, reason: str = "") -> list[Output]:
        self.proto.transport_closed(code, reason, self.now)
        return self.drain()

    def authorize(
        self,
        channel: str,
        auth: str = "app-key:sig",
        channel_data: str | None = None,
        shared_secret: bytes | None = None,
        socket_id: str | None = None,
    ) -> list[Output]:
        sid = socket_id if socket_id is not None else self.proto.socket_id
        assert sid is not None
        auth_data = ChannelAuthData(auth, channel_data, shared_secret)
        self.proto.channel_authorized(channel, sid, auth_data, self.now)
        return self.drain()

    def succeed(self, channel: str, data: Any = None) -> list[Output]:
        if data is None:
            return self.frame("pusher_internal:subscription_succeeded", channel=channel, omit_data=True)
        return self.frame("pusher_internal:subscription_succeeded", data, channel)


# --- output helpers ---------------------------------------------------------------------------------


def of_type(events: list[Output], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def sent(events: list[Output]) -> list[dict[str, Any]]:
    """The frames in ``SendFrame`` outputs, decoded."""
    return [orjson.loads(e.text) for e in events if isinstance(e, SendFrame)]


def sent_events(events: list[Output]) -> list[str]:
    return [f["event"] for f in sent(events)]


def errors(events: list[Output]) -> list[Exception]:
    return [e.error for e in events if isinstance(e, ErrorRaised)]


def opens(events: list[Output]) -> list[OpenTransport]:
    return of_type(events, OpenTransport)


def closes(events: list[Output]) -> list[CloseTransport]:
    return of_type(events, CloseTransport)
