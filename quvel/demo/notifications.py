"""The notification-store recipe: QuVel's Pinia ``useNotificationStore`` in Python.

A user's Laravel notifications arrive live on ``private-tenant.{tenant}.User.{id}`` as
``BroadcastNotificationCreated`` events and are folded into typed state; the list is (re)loaded through
the API on every (re)subscription, retried until it succeeds, so nothing sent while the connection was
down is lost, even when the API is briefly unavailable too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, JsonValue
from reactivex import operators as ops
from reactivex.abc import DisposableBase

from quvel_store import Store, SyncedCollection, SyncInfo, SyncStatus, action, getter
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
    """Newest first; ``sync`` says whether the list is complete (``synced``) or being caught up,
    ``received`` counts the notifications that arrived live."""

    user_id: int | None = None
    channel: str | None = None
    notifications: list[Notification] = []
    sync: SyncInfo = SyncInfo()
    received: int = 0

    @property
    def loads(self) -> int:
        """Successful (re)loads of the list."""
        return self.sync.loads


def _newest_first(notification: Notification) -> datetime:
    return notification.created_at or _EPOCH


_EPOCH = datetime.fromtimestamp(0, UTC)


class NotificationStore(Store[NotificationState]):
    """A user's notifications: live from their private channel, listed and marked read through the API."""

    id = "notifications"

    #: The list, keyed by notification id, reloaded until in sync after every (re)subscription.
    synced: SyncedCollection[Notification]
    _following: list[DisposableBase]

    def on_init(self) -> None:
        self._following = []
        self.synced = SyncedCollection(
            self,
            Notification,
            load=self._fetch,
            items="notifications",
            info="sync",
            order=_newest_first,
            reverse=True,
        )

    @getter
    def unread_count(self) -> int:
        return sum(not n.read for n in self.state.notifications)

    @getter
    def latest(self) -> Notification | None:
        return self.state.notifications[0] if self.state.notifications else None

    @getter
    def sync_status(self) -> SyncStatus:
        """``synced``, ``resyncing`` or ``stale`` (a UI shows "catching up" unless ``synced``)."""
        return self.state.sync.status

    @action
    async def subscribe_to_socket(self, user_id: int) -> None:
        """Follow ``user_id``'s notifications (instead of anyone followed before). Every (re)subscription
        reloads the list until the reload succeeds, which is how notifications sent while the connection
        was down are caught up."""
        tenant = self.container.config.get("tenant_id")
        if tenant is None:
            raise NotificationConfigError(
                "set tenant_id in the container config (QUVEL_TENANT_ID)", key="tenant_id"
            )
        ws = self.container.ws
        channel = ws.channel(f"tenant.{tenant}.User.{user_id}", type="privateNotification")
        self.unsubscribe_from_socket()
        if self.state.user_id not in (None, user_id):
            self.synced.clear()  # another user's list must not stay (or merge into theirs)
        self.patch({"user_id": user_id, "channel": channel.name})
        connection_lost = ws.state.pipe(ops.filter(lambda state: state != "connected"))
        self._following = [
            self.connect(channel.notifications(), self._receive),
            self.synced.follow(channel.subscribed, lost=connection_lost),
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
        notification = Notification.from_broadcast(payload)
        with self.batch():
            if notification.id not in self.synced:  # a reload may have brought it first: keep that copy
                # The broadcast has no timestamp: order it by arrival until a reload brings the stored one.
                self.synced.upsert(notification.model_copy(update={"created_at": datetime.now(UTC)}))
            self.patch({"received": self.state.received + 1})

    async def _fetch(self) -> list[Any]:
        body = await self.container.api.get("/api/notifications")
        return list(body["data"])

    @action(concurrency="switch")
    async def load(self) -> None:
        """Read the user's notifications from ``GET /api/notifications`` once and merge them in (the
        automatic reloads retry on their own; this one raises what the API raised)."""
        await self.synced.reload()

    @action
    async def mark_read(self, notification_id: str) -> None:
        """``POST /api/notifications/{id}/read``; the answer (with its ``read_at``) replaces the held copy."""
        body = await self.container.api.post(f"/api/notifications/{notification_id}/read")
        self.synced.upsert(Notification.model_validate(body["data"]))

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
    first load then merges the API's list in (its copies win: they carry the server's ``read_at``).
    Only the newest ``keep_restored`` are restored (and so saved again): the saved list stays bounded
    across runs instead of growing by every run's notifications."""

    persist = Persist(
        storage=_state_dir_storage,
        key="{tenant}.{store_id}.{user}",
        include=("notifications",),
        debounce=0.1,
    )
    keep_restored: ClassVar[int] = 200

    def on_init(self) -> None:
        held = self.state.notifications  # restored from the last run (persisted state loads before on_init)
        if len(held) > self.keep_restored:
            newest = sorted(held, key=_newest_first, reverse=True)[: self.keep_restored]
            self.patch({"notifications": newest})
        super().on_init()
