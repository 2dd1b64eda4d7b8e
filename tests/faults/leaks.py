"""Counting what a client may leak: asyncio tasks, sockets, file descriptors, RxPY observers, memory.

Used by the flap and soak tests: take a :func:`snapshot` before and after, then compare. Everything
is read from the running process (``/proc`` on Linux) so nothing needs to be instrumented.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reactivex.subject import Subject

_PAGE = resource.getpagesize()


def open_fds() -> list[str]:
    """Targets of this process's open file descriptors (``socket:[123]``, paths, pipes...)."""
    fd_dir = Path("/proc/self/fd")
    targets: list[str] = []
    for entry in fd_dir.iterdir() if fd_dir.exists() else ():
        try:
            targets.append(os.readlink(entry))
        except OSError:  # closed between listing and reading
            continue
    return targets


def open_sockets() -> int:
    return sum(1 for target in open_fds() if target.startswith("socket:"))


def rss_bytes() -> int:
    """Resident set size now (not the peak)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * _PAGE
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def live_subject_observers() -> tuple[int, int]:
    """(live subjects, observers attached to them) across the process, found through the GC."""
    subjects = 0
    observers = 0
    for obj in gc.get_objects():
        if isinstance(obj, Subject) and not obj.is_disposed:
            subjects += 1
            observers += len(obj.observers)
    return subjects, observers


def live_handlers() -> tuple[int, int]:
    """(channel hubs, active handler sinks) of every quvel_ws service in the process: the client keeps
    one hub per subscribed channel and one sink per Observable subscription or callback."""
    from quvel_ws.client._hubs import Hub, Sink

    hubs = sinks = 0
    for obj in gc.get_objects():
        if isinstance(obj, Hub):
            hubs += 1
        elif isinstance(obj, Sink) and obj.active:
            sinks += 1
    return hubs, sinks


@dataclass(frozen=True)
class Snapshot:
    tasks: int
    sockets: int
    fds: int
    threads: int
    subjects: int
    observers: int
    hubs: int
    handlers: int
    rss: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(*, collect: bool = True) -> Snapshot:
    """Counts for this process now; ``collect`` runs the GC first so only live objects count."""
    if collect:
        gc.collect()
    subjects, observers = live_subject_observers()
    hubs, handlers = live_handlers()
    fds = open_fds()
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:  # no running loop
        tasks = 0
    return Snapshot(
        tasks=tasks,
        sockets=sum(1 for t in fds if t.startswith("socket:")),
        fds=len(fds),
        threads=threading.active_count(),
        subjects=subjects,
        observers=observers,
        hubs=hubs,
        handlers=handlers,
        rss=rss_bytes(),
    )


def growth(before: Snapshot, after: Snapshot) -> dict[str, int]:
    """Per counter, how much ``after`` exceeds ``before`` (RSS excluded: it is noisy, judge it on a curve)."""
    b, a = before.as_dict(), after.as_dict()
    return {k: a[k] - b[k] for k in b if k != "rss" and a[k] > b[k]}
