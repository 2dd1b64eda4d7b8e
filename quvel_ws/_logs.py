"""Logging helpers shared by the client and the server."""

from __future__ import annotations

import logging
import re
import time


class NoFrameLogs(logging.LoggerAdapter[logging.Logger]):
    """A logger for websockets' sans-I/O protocols that passes everything but their DEBUG frame dumps.

    Those dumps carry frame contents (in the formatted line and in the record's arguments), and a
    ``pusher:subscribe`` or ``pusher:signin`` frame holds an auth signature; quvel's own DEBUG lines say
    what happens without frame contents."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def protocol_logger(name: str) -> NoFrameLogs:
    return NoFrameLogs(logging.getLogger(name))


# --- redaction -------------------------------------------------------------------------------------

_REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    # signed HTTP API URLs (httpx logs them at INFO): replayable for the 600 s timestamp window
    (re.compile(r"(?i)(auth_signature=)[^&\s\"']+"), rf"\1{_REDACTED}"),
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"',]+"), rf"\1{_REDACTED}"),
    # channel / sign-in auth strings "key:64-hex-digit HMAC"
    (re.compile(r"(\b[^\s\"':]{1,200}:)[0-9a-f]{64}\b"), rf"\1{_REDACTED}"),
    # secret=..., "secret": "...", shared_secret, master_key, password, token (query, JSON, repr)
    (
        re.compile(
            r"(?i)(\b(?:app_secret|secret|shared_secret|master_key|encryption_master_key_base64|password|"
            r"token)\b[\"']?\s*[:=]\s*[\"']?)([^\"'&\s,})]+)"
        ),
        rf"\1{_REDACTED}",
    ),
)


def redact(text: str) -> str:
    """``text`` with auth signatures, bearer tokens and secrets replaced by ``[redacted]``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """A logging filter that redacts secrets from every record it sees (attach it to a handler, so it
    covers third-party loggers such as httpx's request log too). ``quvel`` installs it on its stderr
    handler; attach it to your own handlers when your app logs at INFO with httpx."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


# --- repeated messages -----------------------------------------------------------------------------


class RepeatLimiter:
    """Lets the first ``burst`` messages of one kind through per ``interval`` seconds, then counts.

    ``check(key, now)`` returns ``None`` to suppress, or the number of messages suppressed since the
    last one let through (0 normally), so the caller can say "(N similar messages suppressed)". Keys
    are bounded: past ``max_keys`` the oldest window is forgotten."""

    def __init__(self, burst: int = 5, interval: float = 10.0, max_keys: int = 256) -> None:
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._windows: dict[str, list[float]] = {}  # key -> [window start, passed, suppressed]

    def check(self, key: str, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            suppressed = int(window[2]) if window is not None else 0
            if window is None and len(self._windows) >= self.max_keys:
                del self._windows[next(iter(self._windows))]
            self._windows[key] = [now, 1, 0]
            return suppressed
        if window[1] < self.burst:
            window[1] += 1
            return 0
        window[2] += 1
        return None

    @property
    def suppressed(self) -> int:
        """Messages suppressed in the current windows (for tests and stats)."""
        return int(sum(w[2] for w in self._windows.values()))


def suppressed_note(count: int) -> str:
    return f" ({count} similar messages suppressed)" if count else ""
