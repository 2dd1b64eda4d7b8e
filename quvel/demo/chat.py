"""A presence chat room store: who is here (Echo's here/joining/leaving), the messages, who is typing.

Members come from the ``presence-room.{id}`` channel, messages are ``App\\Events\\NewMessage`` broadcasts
plus a history loaded through the API on every (re)subscription (a :class:`~quvel_store.SyncedCollection`,
retried until it succeeds, so a message said while the connection and then the API were down is not
lost), and "typing" is a client whisper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from reactivex import operators as ops
from reactivex.abc import DisposableBase

from quvel_store import ActionError, Store, SyncedCollection, SyncInfo, SyncStatus, action, getter
from quvel_ws import Member

MAX_MESSAGES = 100
MAX_ACTIVITY = 20


class RoomNotJoined(ActionError, RuntimeError):
    """A room action was called before ``join(room_id)`` (or after ``leave()``)."""


class ChatUser(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str


class ChatMessage(BaseModel):
    """The ``NewMessage`` payload the back end broadcasts (and lists)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    user: ChatUser
    text: str
    created_at: datetime


class RoomMember(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str


class RoomState(BaseModel):
    room_id: str | None = None
    members: list[RoomMember] = []
    messages: list[ChatMessage] = []
    typing: list[str] = []
    #: Recent joins and leaves, newest last ("Cleo joined").
    activity: list[str] = []
    #: Whether ``messages`` holds everything said (``synced``) or is being caught up after a reconnection.
    sync: SyncInfo = SyncInfo()


def _member(member: Member) -> RoomMember:
    info = member.info if isinstance(member.info, Mapping) else {}
    return RoomMember(id=member.id, name=str(info.get("name", member.id)))


class RoomStore(Store[RoomState]):
    """One chat room; use one store per room: ``app.use(RoomStore, key="room-7")``."""

    id = "room"

    #: The messages, keyed by id, oldest first, at most :data:`MAX_MESSAGES`; reloaded until in sync
    #: after every (re)subscription.
    history: SyncedCollection[ChatMessage]
    _following: list[DisposableBase]

    def on_init(self) -> None:
        self._following = []
        self.history = SyncedCollection(
            self,
            ChatMessage,
            load=self._fetch,
            items="messages",
            info="sync",
            order=lambda m: m.id,
            limit=MAX_MESSAGES,
        )

    @getter
    def member_names(self) -> list[str]:
        return sorted(m.name for m in self.state.members)

    @getter
    def last_message(self) -> ChatMessage | None:
        return self.state.messages[-1] if self.state.messages else None

    @getter
    def sync_status(self) -> SyncStatus:
        """``synced``, ``resyncing`` or ``stale`` (the history may miss messages until it is synced)."""
        return self.state.sync.status

    @action
    async def join(self, room_id: str) -> None:
        """Enter ``presence-room.{room_id}``: members, messages, typing whispers and, on every
        (re)subscription, the message history from the API, retried until it loads."""
        if room_id == self.state.room_id and self._following:
            return  # already here: joining again must not fold every event twice
        ws = self.container.ws
        channel = ws.channel(f"room.{room_id}", type="presence")
        self.leave()  # another room's members and messages must not leak into this one
        self.patch({"room_id": room_id})
        connection_lost = ws.state.pipe(ops.filter(lambda state: state != "connected"))
        self._following = [
            self.connect(channel.members, self._set_members),
            self.connect(channel.joining, lambda m: self._log(f"{_member(m).name} joined")),
            self.connect(channel.leaving, lambda m: self._log(f"{_member(m).name} left")),
            self.connect(channel.listen("NewMessage", model=ChatMessage), self._add_messages_one),
            self.connect(channel.listen_for_whisper("typing"), self._typing),
            self.history.follow(channel.subscribed, lost=connection_lost),
        ]

    @action
    def leave(self) -> None:
        """Stop following the room (the channel is left when nothing else listens to it) and forget its
        members, messages and activity. ``dispose()`` releases the channel too."""
        for handle in self._following:
            handle.dispose()
        self._following = []
        self.history.stop()
        if self.state.room_id is not None:
            self.reset()

    def _set_members(self, members: Sequence[Member]) -> None:
        self.patch({"members": [_member(m).model_dump() for m in members]})

    def _log(self, line: str) -> None:
        self.patch({"activity": [*self.state.activity, line][-MAX_ACTIVITY:]})

    def _add_messages_one(self, message: ChatMessage) -> None:
        self._add_messages([message])

    def _add_messages(self, messages: list[ChatMessage]) -> None:
        """Keyed by id (a reload and a live broadcast may bring the same one); clears the senders'
        typing flags."""
        senders = {m.user.name for m in messages}
        with self.batch():
            for message in messages:
                self.history.upsert(message)
            self.patch({"typing": [name for name in self.state.typing if name not in senders]})

    def _typing(self, data: Any) -> None:
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ValueError(f"a typing whisper needs a name: {data!r}")
        name, typing = data["name"], bool(data.get("typing", True))
        others = [n for n in self.state.typing if n != name]
        self.patch({"typing": [*others, name] if typing else others})

    async def _fetch(self) -> list[Any]:
        room = self.state.room_id
        if room is None:
            return []
        body = await self.container.api.get(f"/api/rooms/{room}/messages")
        if self.state.room_id != room:
            return []  # left (or moved to another room) while the list was on its way
        return list(body["data"])

    @action
    async def load_history(self) -> None:
        """Read the room's recent messages once and merge them in (the automatic reloads retry on their
        own; this one raises what the API raised)."""
        if self.state.room_id is not None:
            await self.history.reload()

    @action
    async def send(self, text: str) -> ChatMessage:
        """Post a message; the back end broadcasts it to the others (``toOthers()`` via ``X-Socket-ID``)."""
        room = self.state.room_id
        if room is None:
            raise RoomNotJoined("join a room before sending")
        # container.api sends X-Socket-ID once connected, so the back end skips our socket (toOthers)
        body = await self.container.api.post(f"/api/rooms/{room}/messages", json={"text": text})
        message = ChatMessage.model_validate(body["data"])
        self._add_messages([message])
        return message

    @action
    def set_typing(self, name: str, typing: bool = True) -> None:
        """Tell the others (a ``client-typing`` whisper; not sent back to us)."""
        room = self.state.room_id
        if room is None:
            raise RoomNotJoined("join a room before typing")
        self.container.ws.channel(f"room.{room}", type="presence").whisper(
            "typing", {"name": name, "typing": typing}
        )
