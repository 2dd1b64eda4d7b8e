"""Presence channel members, with pusher-js's rules: ids are strings, ``member_added`` for a known id
updates it (count unchanged), ``member_removed`` for an unknown id is ignored, reset on disconnect."""

from __future__ import annotations

from typing import Any

from quvel_ws.errors import ProtocolError
from quvel_ws.protocol._events import Member


def member_id(value: Any) -> str | None:
    """A user id as a string (Laravel sends ints), or None when it is not a usable id."""
    if type(value) is str:
        return value if value else None
    if type(value) is int:
        return str(value)
    if type(value) is float and value.is_integer():
        return str(int(value))
    return None


class Presence:
    """The member list of one presence channel and the local user's id (``me``)."""

    __slots__ = ("_members", "my_id")

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}
        self.my_id: str | None = None

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(self._members.values())

    @property
    def count(self) -> int:
        return len(self._members)

    @property
    def me(self) -> Member | None:
        return self._members.get(self.my_id) if self.my_id is not None else None

    def get(self, user_id: str) -> Member | None:
        return self._members.get(user_id)

    def reset(self) -> None:
        """Forget every member (the connection dropped; the next subscription rebuilds the list)."""
        self._members.clear()

    def load(self, data: Any) -> None:
        """Replace the members from ``subscription_succeeded`` data ``{"presence": {ids, hash, count}}``.

        Raises :class:`ProtocolError` when the shape is wrong; the list is then left empty.
        """
        self._members.clear()
        presence = data.get("presence") if type(data) is dict else None
        if type(presence) is not dict:
            raise ProtocolError("presence subscription_succeeded without a 'presence' object")
        hash_ = presence.get("hash")
        if hash_ is None:
            hash_ = {}
        if type(hash_) is not dict:
            raise ProtocolError("presence 'hash' is not an object")
        for key, info in hash_.items():
            self._members[key] = Member(key, info)
        ids = presence.get("ids")
        if type(ids) is list:
            # Members listed in ids but missing from hash still count (their info is unknown).
            for raw in ids:
                uid = member_id(raw)
                if uid is not None and uid not in self._members:
                    self._members[uid] = Member(uid, None)

    def add(self, data: Any) -> tuple[Member, bool]:
        """Apply ``member_added``; returns the member and whether it was an update of a known id."""
        uid = member_id(data.get("user_id")) if type(data) is dict else None
        if uid is None:
            raise ProtocolError("member_added without a valid 'user_id'")
        member = Member(uid, data.get("user_info"))
        updated = uid in self._members
        self._members[uid] = member
        return member, updated

    def remove(self, data: Any) -> Member | None:
        """Apply ``member_removed``; returns the removed member, or None for an unknown id."""
        uid = member_id(data.get("user_id")) if type(data) is dict else None
        if uid is None:
            raise ProtocolError("member_removed without a valid 'user_id'")
        return self._members.pop(uid, None)
