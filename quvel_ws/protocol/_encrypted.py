"""End-to-end encrypted channels: decrypt, and on failure fetch the key again once, holding events
until it comes (part of :class:`~quvel_ws.protocol.PusherProtocol`)."""

from __future__ import annotations

from typing import Any

from quvel_ws.errors import DecryptionError
from quvel_ws.protocol._base import CoreBase
from quvel_ws.protocol._channels import ChannelEntry
from quvel_ws.protocol._codec import channel_event
from quvel_ws.protocol._crypto import DecryptFailed, decrypt, make_box
from quvel_ws.protocol._events import (
    AuthorizeChannel,
    ChannelAuthData,
    ErrorRaised,
)


class EncryptedChannelsPart(CoreBase):
    """Events of ``private-encrypted-`` channels; nothing undecryptable is dropped silently."""

    def _encrypted_event(
        self, ch: ChannelEntry, event: str, data: Any, user_id: str | None, now: float
    ) -> None:
        box = ch.box
        if box is None:
            self._events.append(
                ErrorRaised(
                    DecryptionError(ch.name, event, "the event arrived before the channel's key"), ch.name
                )
            )
            return
        if ch.refreshing:
            self._hold(ch, event, data, user_id)
            return
        try:
            plain = decrypt(box, data)
        except DecryptFailed as exc:
            if not exc.wrong_key:
                self._events.append(ErrorRaised(DecryptionError(ch.name, event, exc.reason), ch.name))
                return
            if self._socket_id is None:
                self._events.append(ErrorRaised(DecryptionError(ch.name, event, exc.reason), ch.name))
                return
            # The key may have been rotated: fetch it again once, hold events until it comes.
            self._hold(ch, event, data, user_id)
            ch.refreshing = True
            ch.refresh_deadline = now + self._config.subscription_timeout
            self._time(ch)
            self._events.append(AuthorizeChannel(ch.name, self._socket_id, "refresh_key"))
            return
        self._events.append(channel_event(ch.name, event, plain, user_id))

    def _hold(self, ch: ChannelEntry, event: str, data: Any, user_id: str | None) -> None:
        if len(ch.held) >= self._config.max_held_events:
            self._events.append(
                ErrorRaised(
                    DecryptionError(
                        ch.name, event, f"over {self._config.max_held_events} events wait for a new key"
                    ),
                    ch.name,
                )
            )
            return
        ch.held.append((event, data, user_id))

    def _key_refreshed(self, ch: ChannelEntry, auth: ChannelAuthData) -> None:
        if auth.shared_secret is None:
            self._flush_held(ch, "the new auth response has no shared_secret")
            self._untime(ch)
            return
        try:
            box = make_box(auth.shared_secret)
        except ValueError as exc:
            self._flush_held(ch, str(exc))
            self._untime(ch)
            return
        ch.box = box
        ch.key = auth.shared_secret
        held = ch.held
        ch.held = []
        ch.refreshing = False
        ch.refresh_deadline = None
        self._untime(ch)
        for event, data, user_id in held:
            try:
                plain = decrypt(box, data)
            except DecryptFailed as exc:
                self._events.append(
                    ErrorRaised(
                        DecryptionError(ch.name, event, f"{exc.reason} (also with the refreshed key)"),
                        ch.name,
                    )
                )
                continue
            self._events.append(channel_event(ch.name, event, plain, user_id))

    def _flush_held(self, ch: ChannelEntry, reason: str) -> None:
        """Report every held encrypted event as undecryptable (never drop them silently)."""
        held = ch.held
        ch.held = []
        ch.refreshing = False
        ch.refresh_deadline = None
        for event, _data, _user_id in held:
            self._events.append(ErrorRaised(DecryptionError(ch.name, event, reason), ch.name))
