"""User authentication (``pusher:signin``), the ``#server-to-user-`` channel and the watchlist
(part of :class:`~quvel_ws.protocol.PusherProtocol`)."""

from __future__ import annotations

from typing import Any

from quvel_ws.errors import (
    AuthorizationError,
    InvalidArgument,
    PayloadTooLarge,
    ProtocolError,
    SigninError,
    WsError,
)
from quvel_ws.protocol._base import (
    KIND_USER,
    PHASE_OPEN,
    STATE_CONNECTED,
)
from quvel_ws.protocol._channels import ChannelEntry
from quvel_ws.protocol._codec import (
    JSONDecodeError,
    encode_limited,
    loads,
)
from quvel_ws.protocol._events import (
    AuthorizeUser,
    ErrorRaised,
    GlobalEvent,
    SendFrame,
    SignedIn,
    UserAuthData,
)
from quvel_ws.protocol._names import USER_CHANNEL_PREFIX
from quvel_ws.protocol._presence import member_id
from quvel_ws.protocol._subscriptions import SubscriptionsPart


class UserAuthPart(SubscriptionsPart):
    """Sign-in now and after every reconnect; user events and watchlist events."""

    def signin(self, now: float) -> None:
        """Request user authentication, now if connected, and again after every reconnect."""
        self._signin_requested = True
        if self._state is STATE_CONNECTED and self._user_id is None and not self._signin_pending:
            self._request_signin()

    def _request_signin(self) -> None:
        assert self._socket_id is not None
        self._signin_pending = True
        self._events.append(AuthorizeUser(self._socket_id))

    def user_authorized(self, socket_id: str, auth: UserAuthData, now: float) -> None:
        """Answer to ``AuthorizeUser``: sends ``pusher:signin``."""
        if socket_id != self._socket_id or self._phase != PHASE_OPEN or not self._signin_pending:
            return
        try:
            text = encode_limited(
                "pusher:signin",
                {"auth": auth.auth, "user_data": auth.user_data},
                None,
                self._config.max_frame_bytes,
            )
        except (PayloadTooLarge, InvalidArgument) as exc:
            self._signin_failed(SigninError(str(exc)))
            return
        self._events.append(SendFrame(text))

    def user_authorization_failed(self, socket_id: str, error: SigninError, now: float) -> None:
        """Answer to ``AuthorizeUser`` when the user-auth endpoint failed."""
        if socket_id != self._socket_id or self._phase != PHASE_OPEN or not self._signin_pending:
            return
        self._signin_failed(error)

    def _signin_failed(self, error: WsError) -> None:
        self._signin_pending = False
        self._events.append(ErrorRaised(error))
        for name in list(self._parked):
            del self._parked[name]
            ch = self._channels.get(name)
            if ch is not None and ch.pending:
                self._fail_subscription(
                    ch,
                    AuthorizationError(
                        name, "Invalid auth response: no channel_data and the user sign-in failed", status=200
                    ),
                )

    def _signin_success(self, data: Any, now: float) -> None:
        raw = data.get("user_data") if type(data) is dict else None
        user_data = raw
        if type(raw) is str:
            try:
                user_data = loads(raw)
            except JSONDecodeError:
                user_data = None  # reported below: user_data must be a JSON object
        uid = member_id(user_data.get("id")) if type(user_data) is dict else None
        if uid is None or type(user_data) is not dict:
            self._signin_failed(SigninError("signin_success carries no user_data with a non-empty 'id'"))
            return
        self._signin_pending = False
        self._user_id = uid
        self._user_data = user_data
        self._events.append(SignedIn(uid, user_data))
        name = USER_CHANNEL_PREFIX + uid
        ch = self._channels.get(name)
        if ch is None:
            ch = ChannelEntry(name, KIND_USER)
            self._channels[name] = ch
        if not ch.pending and not ch.subscribed:
            self._begin_subscribe(ch, now)
        for parked_name in list(self._parked):
            auth = self._parked.pop(parked_name)
            self.channel_authorized(parked_name, self._socket_id or "", auth, now)

    def _watchlist(self, data: Any) -> None:
        events = data.get("events") if type(data) is dict else None
        if type(events) is not list:
            self._events.append(ErrorRaised(ProtocolError("watchlist_events without an 'events' list")))
            return
        for entry in events:
            name = entry.get("name") if type(entry) is dict else None
            if type(name) is not str:
                self._events.append(ErrorRaised(ProtocolError("watchlist entry without a 'name'")))
                continue
            self._events.append(GlobalEvent(name, entry))
