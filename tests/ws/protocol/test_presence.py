"""§6.6 area 7: presence members, as pusher-js's Members keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from quvel_ws.errors import ProtocolError
from quvel_ws.protocol import (
    ChannelEvent,
    Member,
    MemberAdded,
    MemberRemoved,
    MembersCleared,
    SubscriptionSucceeded,
)

from .harness import Harness, errors, of_type

ROOM = "presence-room.1"


def joined(
    channel_data: str = '{"user_id":1,"user_info":{"name":"Me"}}', presence: dict[str, Any] | None = None
) -> tuple[Harness, SubscriptionSucceeded]:
    h = Harness()
    h.connect("1.1")
    h.proto.subscribe(ROOM, h.now)
    h.drain()
    h.authorize(ROOM, channel_data=channel_data)
    if presence is None:
        presence = {"ids": ["1", "2"], "hash": {"1": {"name": "Me"}, "2": {"name": "B"}}, "count": 2}
    (ok,) = of_type(h.succeed(ROOM, {"presence": presence}), SubscriptionSucceeded)
    return h, ok


def test_snapshot_from_hash_and_me_from_channel_data_with_int_id() -> None:
    h, ok = joined()
    assert ok.members == (Member("1", {"name": "Me"}), Member("2", {"name": "B"}))
    assert ok.me == Member("1", {"name": "Me"})
    assert h.proto.members(ROOM) == ok.members
    assert h.proto.me(ROOM) == ok.me


def test_ids_without_hash_entries_still_count() -> None:
    _, ok = joined(presence={"ids": ["1", 3], "hash": {"1": None}, "count": 2})
    assert ok.members == (Member("1", None), Member("3", None))


def test_member_added_new_then_update() -> None:
    h, _ = joined()
    assert h.frame("pusher_internal:member_added", {"user_id": 3, "user_info": {"name": "C"}}, ROOM) == [
        MemberAdded(ROOM, Member("3", {"name": "C"}), updated=False)
    ]
    assert h.frame("pusher_internal:member_added", {"user_id": "3", "user_info": {"name": "C2"}}, ROOM) == [
        MemberAdded(ROOM, Member("3", {"name": "C2"}), updated=True)
    ]
    members = h.proto.members(ROOM)
    assert members is not None
    assert len(members) == 3  # an update does not increment the count
    assert Member("3", {"name": "C2"}) in members


def test_member_removed_known_and_unknown() -> None:
    h, _ = joined()
    assert h.frame("pusher_internal:member_removed", {"user_id": 2}, ROOM) == [
        MemberRemoved(ROOM, Member("2", {"name": "B"}))
    ]
    assert h.frame("pusher_internal:member_removed", {"user_id": "99"}, ROOM) == []  # ignored silently
    assert h.proto.members(ROOM) == (Member("1", {"name": "Me"}),)


@pytest.mark.parametrize("data", [{}, {"user_id": None}, {"user_id": ""}, "x", [1]])
def test_member_events_without_a_valid_user_id_are_protocol_errors(data: Any) -> None:
    h, _ = joined()
    for event in ("pusher_internal:member_added", "pusher_internal:member_removed"):
        out = h.frame(event, data, ROOM)
        assert [type(e) for e in errors(out)] == [ProtocolError]
    assert len(h.proto.members(ROOM) or ()) == 2


def test_internal_member_events_are_not_channel_events() -> None:
    h, _ = joined()
    out = h.frame("pusher_internal:member_added", {"user_id": 3}, ROOM)
    assert of_type(out, ChannelEvent) == []


def test_members_reset_on_disconnect_and_rebuilt_on_resubscribe() -> None:
    h, _ = joined()
    out = h.close(1006)
    assert MembersCleared(ROOM) in out
    assert h.proto.members(ROOM) == ()
    h.reopen("2.2")
    h.authorize(ROOM, channel_data='{"user_id":"1"}')
    (ok,) = of_type(
        h.succeed(ROOM, {"presence": {"ids": ["1"], "hash": {"1": {"n": 1}}, "count": 1}}),
        SubscriptionSucceeded,
    )
    assert ok.members == (Member("1", {"n": 1}),)
    assert ok.me == Member("1", {"n": 1})


def test_client_event_carries_sender_user_id() -> None:
    h, _ = joined()
    out = h.frame("client-typing", {"typing": True}, ROOM, encode=False, user_id=2)
    (event,) = of_type(out, ChannelEvent)
    assert event == ChannelEvent(ROOM, "client-typing", {"typing": True}, "2")


def test_malformed_presence_snapshot_is_reported_but_subscription_holds() -> None:
    h = Harness()
    h.connect()
    h.proto.subscribe(ROOM, h.now)
    h.drain()
    h.authorize(ROOM, channel_data='{"user_id":"1"}')
    out = h.succeed(ROOM, {"nope": 1})
    assert [type(e) for e in errors(out)] == [ProtocolError]
    (ok,) = of_type(out, SubscriptionSucceeded)
    assert ok.members == ()


def test_members_of_non_presence_channel_is_none() -> None:
    h, _ = joined()
    assert h.proto.members("chat") is None
    assert h.proto.me("chat") is None
