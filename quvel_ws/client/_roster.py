"""Presence members kept incrementally, with snapshots that cost O(1) to take.

A presence channel of 100,000 members must not rebuild a 100,000-member tuple on every join: a join
or a leave changes the :class:`Roster` in O(1), and ``members`` subscribers get a :class:`MemberList`,
an immutable snapshot that is only materialised when someone reads it. Each change records how to undo
it, so a snapshot taken earlier still shows the members as they were when it was taken; the undo log is
trimmed (and the few snapshots still alive and unread are materialised) once it is as long as the member
list, which keeps every change O(1) amortised.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from quvel_ws.protocol import Member

_NEW = None  # undo entry of an appended slot: the slot was empty before
_SLACK = 1024  # changes (or empty slots) allowed beyond the member count before trimming


class MemberList(Sequence[Member]):
    """The members of a presence channel at one moment, in joining order (ids are strings).

    Immutable and equal to a tuple or list of the same members; ``list(members)``, ``len``, indexing and
    iteration work as on the tuple ``members`` used to emit."""

    __slots__ = ("__weakref__", "_count", "_items", "_mark", "_roster")

    def __init__(self, items: Iterable[Member] = ()) -> None:
        self._items: tuple[Member, ...] | None = tuple(items)
        self._roster: Roster | None = None
        self._mark = 0
        self._count = len(self._items)

    @classmethod
    def _of(cls, roster: Roster, mark: int) -> MemberList:
        snapshot = cls.__new__(cls)
        snapshot._items = None
        snapshot._roster = roster
        snapshot._mark = mark
        snapshot._count = len(roster)
        return snapshot

    def _resolve(self) -> tuple[Member, ...]:
        items = self._items
        if items is None:
            assert self._roster is not None
            items = self._items = self._roster._materialize(self._mark)
            self._roster = None
        return items

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self._resolve()]

    def __len__(self) -> int:
        return self._count  # O(1): counting the members needs no list

    @overload
    def __getitem__(self, index: int) -> Member: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Member, ...]: ...
    def __getitem__(self, index: int | slice) -> Member | tuple[Member, ...]:
        return self._resolve()[index]

    def __iter__(self) -> Iterator[Member]:
        return iter(self._resolve())

    def __contains__(self, value: object) -> bool:
        return value in self._resolve()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MemberList):
            return self._resolve() == other._resolve()
        if isinstance(other, tuple | list):
            return list(self._resolve()) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MemberList({list(self._resolve())!r})"


class Roster:
    """The live member map of one presence channel (see the module docstring)."""

    __slots__ = ("_base", "_entries", "_index", "_live", "_log", "_snapshots")

    def __init__(self, members: Iterable[Member] = ()) -> None:
        self._entries: list[Member | None] = []  # joining order; None: a member who left
        self._index: dict[str, int] = {}  # id -> slot in _entries
        self._log: list[tuple[int, Member | None]] = []  # (slot, value before the change)
        self._base = 0  # changes dropped from the front of _log
        self._live = 0
        # Snapshots taken and not yet read, by the change count they were taken at (the latest one
        # per mark is enough: two snapshots at one mark hold the same members).
        self._snapshots: weakref.WeakValueDictionary[int, MemberList] = weakref.WeakValueDictionary()
        for member in members:
            self.put(member)

    def __len__(self) -> int:
        return self._live

    def get(self, user_id: str) -> Member | None:
        slot = self._index.get(user_id)
        return None if slot is None else self._entries[slot]

    def put(self, member: Member) -> bool:
        """Add or update a member; True when the id was already here (an update). O(1)."""
        slot = self._index.get(member.id)
        updated = slot is not None
        if slot is None:
            slot = len(self._entries)
            self._index[member.id] = slot
            self._entries.append(member)
            self._live += 1
            self._log.append((slot, _NEW))
        else:
            self._log.append((slot, self._entries[slot]))
            self._entries[slot] = member
        self._trim()
        return updated

    def pop(self, user_id: str) -> Member | None:
        """Remove a member; the member, or None for an unknown id. O(1) amortised."""
        slot = self._index.pop(user_id, None)
        if slot is None:
            return None
        member = self._entries[slot]
        self._log.append((slot, member))
        self._entries[slot] = None
        self._live -= 1
        self._trim()
        return member

    def snapshot(self) -> MemberList:
        """The members as they are now, materialised only when read. O(1)."""
        mark = self._base + len(self._log)
        snapshot = self._snapshots.get(mark)
        if snapshot is None or snapshot._roster is None:
            snapshot = MemberList._of(self, mark)
            self._snapshots[mark] = snapshot
        return snapshot

    def _materialize(self, mark: int) -> tuple[Member, ...]:
        """The member tuple as of ``mark`` (a count of changes): today's slots with the later changes
        undone, newest first."""
        entries = list(self._entries)
        for slot, before in reversed(self._log[mark - self._base :]):
            entries[slot] = before
        return tuple(m for m in entries if m is not None)

    def _trim(self) -> None:
        if len(self._log) <= self._live + _SLACK and len(self._entries) <= 2 * self._live + _SLACK:
            return
        for snapshot in list(self._snapshots.values()):  # the few alive and unread: settle them now
            snapshot._resolve()
        self._snapshots = weakref.WeakValueDictionary()
        self._base += len(self._log)
        self._log.clear()
        if len(self._entries) > self._live:
            self._entries = [m for m in self._entries if m is not None]
            self._index = {m.id: slot for slot, m in enumerate(self._entries) if m is not None}


__all__ = ["MemberList", "Roster"]
