"""The notification-store recipe: QuVel's Pinia ``useNotificationStore`` in Python.

A user's Laravel notifications arrive live on ``private-tenant.{tenant}.User.{id}`` as
``BroadcastNotificationCreated`` events and are folded into typed state; the list is (re)loaded through
the API on every (re)subscription, so nothing sent while the connection was down is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue
from reactivex.abc import DisposableBase

from quvel_store import Store, action, getter
from quvel_store.errors import ConfigError
from quvel_store.persist import Persist, SQLiteStorage


class NotificationConfigError(ConfigError, LookupError):
    """The container's config lacks what the store needs (``tenant_id``)."""


class Notification(BaseModel):
    """One Laravel database notification, as the API lists it or as it is broadcast."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    type: str
    data: dict[str, JsonValue] = {}
    read_at: datetime | None = None
    #: When it was created (for a live notification not yet reloaded from the API: when it arrived).
    created_at: datetime | None = None

    @classmethod
    def from_broadcast(cls, payload: Mapping[str, Any]) -> Notification:
        """Fold a ``BroadcastNotificationCreated`` payload (the notification's data plus ``id`` and
        ``type``) into the same shape the API returns."""
        fields = dict(payload)
        try:
            notification_id, notification_type = fields.pop("id"), fields.pop("type")
        except KeyError as exc:
            raise ValueError(f"a broadcast notification needs {exc.args[0]!r}: {payload!r}") from None
        return cls(id=notification_id, type=notification_type, data=fields)

    @property
    def read(self) -> bool:
        return self.read_at is not None

    @property
    def title(self) -> str:
        return str(self.data.get("title", ""))


class NotificationState(BaseModel):
    """Newest first; ``loads`` counts list (re)loads, ``received`` the notifications that arrived live."""

    user_id: int | None = None
    channel: str | None = None
    notifications: list[Notification] = []
    loads: int = 0
    received: int = 0


def _merge(current: list[Notification], incoming: list[Notification]) -> list[Notification]:
    """Union by id, newest first; an incoming copy replaces the held one (it has the newer ``read_at``),
    and items only held locally stay (they arrived live after the list was read)."""
    by_id = {n.id: n for n in current}
    by_id.update((n.id, n) for n in incoming)
    return sorted(by_id.values(), key=lambda n: n.created_at or _EPOCH, reverse=True)


_EPOCH = datetime.fromtimestamp(0, UTC)


class NotificationStore(Store[NotificationState]):
    """A user's notifications: live from their private channel, listed and marked read through the API."""

    id = "notifications"

    _following: list[DisposableBase]

    def on_init(self) -> None:
        self._following = []

    @getter
    def unread_count(self) -> int:
        return sum(not n.read for n in self.state.notifications)

    @getter
    def latest(self) -> Notification | None:
        return self.state.notifications[0] if self.state.notifications else None

    @action
    async def subscribe_to_socket(self, user_id: int) -> None:
        """Follow ``user_id``'s notifications (instead of anyone followed before). Every (re)subscription
        reloads the list, which is how notifications sent while the connection was down are caught up."""
        tenant = self.container.config.get("tenant_id")
        if tenant is None:
            raise NotificationConfigError(
                "set tenant_id in the container config (QUVEL_TENANT_ID)", key="tenant_id"
            )
        channel = self.container.ws.channel(f"tenant.{tenant}.User.{user_id}", type="privateNotification")
        self.unsubscribe_from_socket()
        if self.state.user_id not in (None, user_id):
            self.patch({"notifications": []})  # another user's list must not stay (or merge into theirs)
        self.patch({"user_id": user_id, "channel": channel.name})
        self._following = [
            self.connect(channel.notifications(), self._receive),
            self.connect(channel.subscribed, lambda _event: self.load()),
        ]

    @action
    def unsubscribe_from_socket(self) -> None:
        """Stop following (the channel is left when nothing else listens to it). ``dispose()`` does it too."""
        for handle in self._following:
            handle.dispose()
        self._following = []
        if self.state.channel is not None:
            self.patch({"channel": None})

    def _receive(self, payload: Mapping[str, Any]) -> None:
        # The broadcast has no timestamp: order it by arrival until a reload brings the stored one.
        notification = Notification.from_broadcast(payload).model_copy(
            update={"created_at": datetime.now(UTC)}
        )
        state = self.state
        self.patch(
            {"notifications": _merge(state.notifications, [notification]), "received": state.received + 1}
        )

    @action(concurrency="switch")
    async def load(self) -> None:
        """Read the user's notifications from ``GET /api/notifications`` and merge them in. A newer load
        (a re-subscription) cancels one still in flight: only a list read after subscribing is complete."""
        body = await self.container.api.get("/api/notifications")
        listed = [Notification.model_validate(row) for row in body["data"]]
        state = self.state
        self.patch({"notifications": _merge(state.notifications, listed), "loads": state.loads + 1})

    @action
    async def mark_read(self, notification_id: str) -> None:
        """``POST /api/notifications/{id}/read``; the answer (with its ``read_at``) replaces the held copy."""
        body = await self.container.api.post(f"/api/notifications/{notification_id}/read")
        updated = Notification.model_validate(body["data"])
        self.patch({"notifications": _merge(self.state.notifications, [updated])})

    @action
    async def mark_all_read(self) -> None:
        """``POST /api/notifications/read-all``, then every held unread notification gets its ``read_at``."""
        body = await self.container.api.post("/api/notifications/read-all")
        read_at = datetime.fromisoformat(str(body["read_at"]).replace("Z", "+00:00"))
        self.patch(
            {
                "notifications": [
                    n if n.read else n.model_copy(update={"read_at": read_at})
                    for n in self.state.notifications
                ]
            }
        )


def _state_dir_storage(store: Store[Any]) -> SQLiteStorage:
    state_dir = store.container.config.get("state_dir")
    if not state_dir:
        raise NotificationConfigError(
            "PersistentNotificationStore saves to the container config's state_dir; set it (a directory)",
            key="state_dir",
        )
    path = Path(str(state_dir))
    path.mkdir(parents=True, exist_ok=True)
    return SQLiteStorage(path / "notifications.db")


class PersistentNotificationStore(NotificationStore):
    """:class:`NotificationStore` whose held notifications, and so their read/unread state, outlive the
    process: saved (debounced, off the event loop) to ``notifications.db`` in the config's ``state_dir``,
    one value per tenant and user (config ``user``). After a restart the store starts from them; the
    first load then merges the API's list in (its copies win: they carry the server's ``read_at``)."""

    persist = Persist(
        storage=_state_dir_storage,
        key="{tenant}.{store_id}.{user}",
        include=("notifications",),
        debounce=0.1,
    )
