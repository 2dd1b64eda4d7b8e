"""Logging helpers shared by the client and the server."""

from __future__ import annotations

import logging


class NoFrameLogs(logging.LoggerAdapter[logging.Logger]):
    """A logger for websockets' sans-I/O protocols that passes everything but their DEBUG frame dumps.

    Those dumps carry frame contents (in the formatted line and in the record's arguments), and a
    ``pusher:subscribe`` or ``pusher:signin`` frame holds an auth signature; quvel's own DEBUG lines say
    what happens without frame contents."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def protocol_logger(name: str) -> NoFrameLogs:
    return NoFrameLogs(logging.getLogger(name))
