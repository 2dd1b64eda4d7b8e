"""A presence chat room (``presence-room.{id}``): members from Echo's here/joining/leaving, messages
broadcast by the back end to everyone but the sender, and a "typing" whisper between clients.

``python examples/chat_room.py``: Ann and Ben join, Cleo drops by, Ben types and writes; Ann's store
shows it all. Exits 0.
"""

from __future__ import annotations

import asyncio
import logging

from quvel.demo import demo_stack, next_value, wait_until
from quvel.demo.chat import RoomStore

ROOM = "7"


async def run() -> int:
    async with demo_stack() as stack:
        ann, ben = await stack.client("Ann"), await stack.client("Ben")
        ann_room = ann.app.use(RoomStore, key=ROOM)
        ben_room = ben.app.use(RoomStore, key=ROOM)
        await ann_room.join(ROOM)
        await ben_room.join(ROOM)
        await wait_until(ann_room, lambda s: len(s.members) == 2)
        print("here:", ann_room.member_names)

        cleo = await stack.client("Cleo")
        await cleo.app.use(RoomStore, key=ROOM).join(ROOM)
        await wait_until(ann_room, lambda s: "Cleo" in {m.name for m in s.members})
        print("joining:", ann_room.state.activity[-1])
        await stack.close_client(cleo)  # disposing her app leaves the channel
        await wait_until(ann_room, lambda s: len(s.members) == 2)
        print("leaving:", ann_room.state.activity[-1])

        # Ben's "typing" whisper goes straight to the other clients, not through the back end.
        await next_value(ben.ws.channel(f"room.{ROOM}", type="presence").subscribed)
        ben_room.set_typing("Ben")
        await wait_until(ann_room, lambda s: s.typing == ["Ben"])
        print("typing:", ann_room.state.typing)

        # Ben posts through the API; the back end broadcasts to the others (X-Socket-ID: toOthers).
        sent = await ben_room.send("Hello from Ben")
        state = await wait_until(ann_room, lambda s: any(m.id == sent.id for m in s.messages))
        print("message:", f"{sent.user.name}: {sent.text}", "| typing now:", state.typing)
        # The back end can also speak in the room.
        await stack.backend.send_message(ROOM, 1, "Hi Ben, Ann here (sent server-side)")
        await wait_until(ben_room, lambda s: len(s.messages) == 2)
        print("Ben sees:", [f"{m.user.name}: {m.text}" for m in ben_room.state.messages])
        return 0 if ann_room.member_names == ["Ann", "Ben"] and not state.typing else 1


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
