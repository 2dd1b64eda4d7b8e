"""What to do when the socket closes with a given code (or a handshake ``pusher:error`` carries one).

The table is the protocol's (reference §1.11), as pusher-js's ``Protocol.getCloseAction`` applies it.
"""

from __future__ import annotations

from typing import Literal

CloseAction = Literal["reconnect", "backoff", "retry", "tls_only", "refused"]
"""``reconnect``: normal/abnormal close, reconnect with backoff; ``backoff``: back off at least 1 s;
``retry``: reconnect immediately (small jitter); ``tls_only``: reconnect now over ``wss://``;
``refused``: stop, do not reconnect."""

ABNORMAL_CLOSURE = 1006


def close_action(code: int | None) -> CloseAction:
    """Map a WebSocket close code (``None``: no close frame, i.e. 1006) to the client's next move."""
    if code is None:
        return "reconnect"
    if code >= 4000:
        if code == 4000:
            return "tls_only"
        if code < 4100:
            return "refused"
        if code < 4200:
            return "backoff"
        if code < 4300:
            return "retry"
        return "refused"
    if 1002 <= code <= 1004:
        return "backoff"
    return "reconnect"


def handshake_error_action(code: int | None) -> CloseAction:
    """A ``pusher:error`` as the first message: mapped like a close code; no code means back off."""
    if code is None:
        return "backoff"
    action = close_action(code)
    return "backoff" if action == "reconnect" else action
