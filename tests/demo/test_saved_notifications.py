"""The demo's saved notification list stays bounded across runs (issue 17): a restart restores, and so
saves again, only the newest ``keep_restored`` notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from quvel.demo.notifications import Notification, PersistentNotificationStore
from quvel_store import App, ServiceContainer, create_app
from quvel_store.container import Config


def _app(state_dir: Path) -> App:
    config = Config(env=False, tenant_id="t", state_dir=str(state_dir), user="ann")
    return create_app(ServiceContainer(config=config))


def test_a_restart_keeps_only_the_newest_saved_notifications(tmp_path: Path) -> None:
    keep = 200  # PersistentNotificationStore.keep_restored, as documented
    start = datetime(2026, 1, 1, tzinfo=UTC)
    many = [
        Notification(id=f"n{i}", type="t", created_at=start + timedelta(minutes=i), read_at=start)
        for i in range(keep + 30)
    ]
    first = _app(tmp_path)
    notes = first.use(PersistentNotificationStore)
    notes.patch({"notifications": list(reversed(many))})  # newest first, as the store holds them
    first.dispose()  # flushes the write

    for _run in range(2):  # every later run starts from (and saves) at most `keep`
        app = _app(tmp_path)
        held = app.use(PersistentNotificationStore).state.notifications
        assert [n.id for n in held] == [f"n{i}" for i in reversed(range(30, keep + 30))]
        assert all(n.read for n in held)  # the read state came along
        app.dispose()
    assert PersistentNotificationStore.keep_restored == keep
