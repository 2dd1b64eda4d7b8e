"""Settings of the protocol core (every time in seconds), validated when built."""

from __future__ import annotations

from dataclasses import dataclass

from quvel_ws.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """Settings of the core; every time is in seconds. See ``docs/internals/protocol-core.md``."""

    url: str
    #: Other nodes of the same cluster: after each failed attempt or lost connection the next
    #: attempt goes to the next URL (round robin from ``url``), with the usual backoff.
    fallback_urls: tuple[str, ...] = ()
    activity_timeout: float = 120.0
    pong_timeout: float = 30.0
    unavailable_timeout: float = 10.0
    subscription_timeout: float = 30.0
    connect_timeout: float = 15.0
    handshake_timeout: float = 15.0
    backoff_initial: float = 1.0
    backoff_max: float = 5.0  # back within ~5 s of the server's return (socket.io's cap too)
    backoff_reset_after: float = 30.0  # a connection that lived this long resets the backoff exponent
    immediate_retry_jitter: float = 1.0
    max_frame_bytes: int = 10_000
    encrypted_channels: bool = True
    max_held_events: int = 1_000  # encrypted events held while a key is refreshed; beyond: reported

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("ws://", "wss://")):
            raise InvalidArgument(f"url must start with ws:// or wss://, got {self.url!r}")
        if not isinstance(self.fallback_urls, tuple) or not all(
            isinstance(u, str) and u.startswith(("ws://", "wss://")) for u in self.fallback_urls
        ):
            raise InvalidArgument(
                f"fallback_urls must be a tuple of ws:// or wss:// URLs, got {self.fallback_urls!r}"
            )
        for name in (
            "activity_timeout",
            "pong_timeout",
            "unavailable_timeout",
            "subscription_timeout",
            "connect_timeout",
            "handshake_timeout",
            "backoff_initial",
            "backoff_max",
            "backoff_reset_after",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument(f"{name} must be a positive number of seconds, got {value!r}")
        if not self.immediate_retry_jitter >= 0:
            raise InvalidArgument(f"immediate_retry_jitter must be >= 0, got {self.immediate_retry_jitter!r}")
        if self.max_frame_bytes < 64:
            raise InvalidArgument(f"max_frame_bytes must be at least 64, got {self.max_frame_bytes!r}")
        if self.max_held_events < 0:
            raise InvalidArgument(f"max_held_events must be >= 0, got {self.max_held_events!r}")
