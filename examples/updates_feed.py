"""A public updates feed: QuVel's ``subscribe({channelName: 'updates', type: 'public', event: 'NewUpdate'})``
folded into a store. The back end broadcasts ``App\\Events\\NewUpdate`` on the public ``updates`` channel.

``python examples/updates_feed.py`` starts the embedded server and the simulated back end, posts five
updates, prints the feed and exits 0.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel
from reactivex.abc import DisposableBase

from quvel.demo import demo_stack, next_value, wait_until
from quvel_store import Store, action, getter


class Update(BaseModel):
    id: int
    title: str
    level: str = "info"


class FeedState(BaseModel):
    updates: list[Update] = []


class FeedStore(Store[FeedState]):
    id = "feed"

    _following: DisposableBase | None

    def on_init(self) -> None:
        self._following = None

    @getter
    def latest(self) -> Update | None:
        return self.state.updates[-1] if self.state.updates else None

    @getter
    def warnings(self) -> int:
        return sum(u.level == "warning" for u in self.state.updates)

    @action
    def follow(self) -> None:
        """Fold every ``NewUpdate`` (validated into :class:`Update`) into the feed, until disposed.
        Following again changes nothing: a second subscription would add every update twice."""
        if self._following is None:
            updates = self.container.ws.channel("updates").listen("NewUpdate", model=Update)
            self._following = self.connect(updates, self._add)

    def _add(self, update: Update) -> None:
        self.patch(lambda s: s.updates.append(update))


async def run() -> int:
    async with demo_stack() as stack:
        client = await stack.client("Ann")
        feed = client.app.use(FeedStore)
        feed.follow()
        await next_value(client.ws.channel("updates").subscribed)

        for n in range(1, 6):
            level = "warning" if n % 3 == 0 else "info"
            await stack.backend.post_update({"id": n, "title": f"Release 1.{n} is out", "level": level})
        # An update that does not match the model is reported on the channel's errors and skipped.
        await stack.backend.post_update({"id": "not a number"})

        await wait_until(feed, lambda s: len(s.updates) == 5)
        for update in feed.state.updates:
            print(f"[{update.level}] #{update.id} {update.title}")
        print(f"latest: {feed.latest.title if feed.latest else '-'}; warnings: {feed.warnings}")
        return 0 if [u.id for u in feed.state.updates] == [1, 2, 3, 4, 5] else 1


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
