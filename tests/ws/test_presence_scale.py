"""Presence at scale: a join or leave costs O(1) with ``members`` subscribed; snapshots are exact."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from typing import Any

import pytest

from quvel_ws import Member, MemberList, WebSocketService
from quvel_ws.client._roster import Roster
from tests.ws.helpers import Collector
from tests.ws.scripted_server import ScriptedServer


def test_snapshots_read_late_show_the_members_when_they_were_taken() -> None:
    rng = random.Random(11)
    roster = Roster()
    model: dict[str, Member] = {}
    taken: list[tuple[MemberList, list[Member]]] = []
    for step in range(6000):
        uid = str(rng.randrange(300))
        if rng.random() < 0.55:
            member = Member(uid, {"step": step})
            assert roster.put(member) == (uid in model)
            model[uid] = member  # an update keeps the joining position, as a dict does
        else:
            assert roster.pop(uid) == model.pop(uid, None)
        if rng.random() < 0.3:
            taken.append((roster.snapshot(), list(model.values())))
        if len(taken) > 40:  # most snapshots die unread, a few live long
            del taken[rng.randrange(len(taken))]
    for snapshot, expected in taken:
        assert len(snapshot) == len(expected)
        assert list(snapshot) == expected
        assert snapshot == tuple(expected)


async def test_joins_with_members_subscribed_do_constant_work_each(monkeypatch: Any) -> None:
    materialized: list[int] = []
    original = Roster._materialize

    def counting(self: Roster, mark: int) -> tuple[Member, ...]:
        result = original(self, mark)
        materialized.append(len(result))
        return result

    monkeypatch.setattr(Roster, "_materialize", counting)
    joins = 20_000
    async with ScriptedServer() as server:
        ws = WebSocketService(server.url, authorizer=_me)
        try:
            room = ws.join("hall")
            members: Collector[MemberList] = Collector(room.members)
            counts: list[int] = []
            sizes = room.members.subscribe(lambda m: counts.append(len(m)))  # len() reads no list
            await Collector(room.subscribed).first()
            conn = server.latest
            for i in range(joins):
                await conn.send_event(
                    "pusher_internal:member_added", {"user_id": i, "user_info": {}}, "presence-hall"
                )
            await members.wait(lambda items: len(items[-1]) == joins + 1, within=60)
            sizes.dispose()
            assert counts[-1] == joins + 1
            assert materialized == []  # 20,000 snapshots emitted, none built (before: a tuple per join)
            assert all(type(m) is MemberList for m in members.items)
            last = members.items[-1]
            assert len(list(last)) == joins + 1
            assert materialized == [joins + 1]  # built once, when read
            assert [m.id for m in members.items[-1]][-3:] == [str(joins - 3), str(joins - 2), str(joins - 1)]
        finally:
            await ws.shutdown()


@pytest.mark.slow
async def test_a_join_allocates_the_same_whatever_the_member_count() -> None:
    """Work per join, counted in bytes allocated (tracemalloc's peak over each join), not in time and not
    through the Roster: an implementation that copies the member list per join (a tuple, a dict, a list)
    allocates 8 bytes or more per member each time. The same joins are measured at 2,000 and at 100,000
    members: O(n) peaks at 800 KB or more at the larger size, O(1) the same at both (the client's fixed
    256 KiB read buffer dominates the peak). Medians, so the rare O(n) trim of the roster does not count."""
    small, large = 2_000, 100_000
    async with ScriptedServer() as server:
        ws = WebSocketService(server.url, authorizer=_me)
        try:
            room = ws.join("hall")
            latest: list[int] = [0]
            sizes = room.members.subscribe(lambda m: latest.__setitem__(0, len(m)))  # as a UI badge would
            await Collector(room.subscribed).first()
            conn = server.latest
            joined = 0

            async def join_until(count: int) -> None:
                nonlocal joined
                while joined < count:
                    await conn.send_event(
                        "pusher_internal:member_added", {"user_id": joined, "user_info": {}}, "presence-hall"
                    )
                    joined += 1
                await _until(lambda: latest[0] == count + 1)

            async def median_peak() -> int:
                peaks = []
                tracemalloc.start()
                try:
                    for _ in range(100):
                        tracemalloc.reset_peak()
                        before, _ = tracemalloc.get_traced_memory()
                        await join_until(joined + 1)
                        peaks.append(tracemalloc.get_traced_memory()[1] - before)
                finally:
                    tracemalloc.stop()
                return sorted(peaks)[len(peaks) // 2]

            await join_until(small)
            at_small = await median_peak()
            await join_until(large)
            at_large = await median_peak()
            sizes.dispose()
            growth = at_large - at_small
            assert growth < 100_000, (
                f"a join allocated {at_small:,} bytes at {small:,} members, {at_large:,} at {large:,}: O(n)"
            )
        finally:
            await ws.shutdown()


async def _until(predicate: Any, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def _me(channel: str, socket_id: str) -> dict[str, str]:
    return {"auth": "app-key:unchecked", "channel_data": '{"user_id":"me","user_info":{}}'}


@pytest.mark.parametrize("n", [3])
def test_member_list_behaves_like_the_tuple_it_replaces(n: int) -> None:
    items = tuple(Member(str(i), None) for i in range(n))
    roster = Roster(items)
    snapshot = roster.snapshot()
    assert snapshot == items
    assert snapshot[1:] == items[1:]
    assert items[0] in snapshot
    assert list(reversed(snapshot)) == list(reversed(items))
    assert MemberList() == ()
    assert repr(MemberList(items[:1])) == "MemberList([Member(id='0', info=None)])"
