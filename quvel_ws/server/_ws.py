"""One Pusher WebSocket connection: frames in, protocol-7 behaviour out.

Incoming bytes are parsed by websockets' sans-I/O protocol (which also answers WebSocket pings and the
close handshake); each complete text message is a Pusher frame handled synchronously here. Whatever a
client sends, the worst outcome is a ``pusher:error`` (or a close for the cases Pusher closes on): no
exception escapes a frame handler.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from websockets.exceptions import ProtocolError as WsProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from quvel_ws._logs import protocol_logger
from quvel_ws.errors import ProtocolError
from quvel_ws.protocol import (
    USER_CHANNEL_PREFIX,
    channel_name_problem,
    decode_frame,
    is_cache,
    is_encrypted,
    is_presence,
    is_private,
)
from quvel_ws.server._channels import PresenceMember
from quvel_ws.server._frames import error_frame, event_frame, text_frame
from quvel_ws.server._signature import channel_auth_string, check_auth, user_auth_string

if TYPE_CHECKING:
    from quvel_ws.server._server import PusherServer
    from quvel_ws.server._state import AppState

logger = logging.getLogger(__name__)
_ws_logger = protocol_logger("quvel_ws.server.websocket")  # no frame dumps: they hold auth signatures

#: Pusher's limit on the users one connection may watch; ids past it are ignored.
MAX_WATCHLIST = 100
PONG_FRAME = text_frame(b'{"event":"pusher:pong","data":{}}')
PING_FRAME = text_frame(b'{"event":"pusher:ping","data":{}}')


def new_socket_id() -> str:
    return f"{secrets.randbelow(10**10) + 1}.{secrets.randbelow(10**10) + 1}"


class Socket:
    """A connected client of one app (after the WebSocket handshake)."""

    def __init__(
        self, server: PusherServer, app: AppState, transport: asyncio.Transport, socket_id: str
    ) -> None:
        self.server = server
        self.app = app
        self.transport = transport
        self.write: Callable[[bytes | bytearray | memoryview[Any]], None] = transport.write
        self.id = socket_id
        self.proto = ServerProtocol(
            state=State.OPEN, max_size=server.limits.max_frame_bytes, logger=_ws_logger
        )
        self.channels: set[str] = set()
        self.presence: dict[str, str] = {}  # presence channel -> member key (str user id)
        self.user_id: str | None = None
        self.watchlist: tuple[str, ...] = ()
        now = time.monotonic()
        self.connected_at = now
        self.last_seen = now
        self.ping_sent_at: float | None = None
        self.authorized = False  # signed in or joined a private channel (user_authentication_timeout)
        self._ce_window = 0.0
        self._ce_count = 0
        self._fragments: list[bytes] | None = None
        self._fragment_binary = False
        self.closing = False
        self.closed = False

    def __repr__(self) -> str:
        return f"<Socket {self.id} app={self.app.config.id}>"

    # --- I/O ---------------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if not self.closing:
            self.write(frame)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self.ping_sent_at = None
        try:
            self.proto.receive_data(data)
        except (WsProtocolError, EOFError):  # pragma: no cover - receive_data records errors itself
            logger.debug("socket %s: protocol error", self.id, exc_info=True)
        for frame in self.proto.events_received():
            if isinstance(frame, Frame):
                self._frame(frame)
        self._flush()

    def eof_received(self) -> None:
        self.proto.receive_eof()
        self._flush()

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.write(chunk)
            else:  # websockets asks for EOF: the close handshake is over (or failed)
                if not self.closing:
                    self.closing = True
                    self.app.remove_socket(self)
                self.transport.close()
                return
        if self.proto.state is State.CLOSED and not self.transport.is_closing():
            self.transport.close()

    def close(self, code: int, reason: str, *, error: str | None = None) -> None:
        """Close with ``code`` (after a ``pusher:error`` carrying the same code when ``error`` is given)."""
        if self.closing:
            return
        if error is not None:
            self.write(error_frame(code, error))
        self.closing = True
        # Leave every channel now: nothing may follow the close frame, and the others should learn
        # (member_removed) without waiting for the TCP connection to end.
        self.app.remove_socket(self)
        if self.proto.state is State.OPEN:
            self.proto.send_close(code, reason[:120])
        self._flush()
        # The peer should answer the close frame; if it does not, drop the TCP connection.
        loop = asyncio.get_running_loop()
        loop.call_later(self.server.close_timeout, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.closed:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now (no close frame), and leave every channel first: a fan-out
        must never write into an aborted transport (asyncio logs a warning per such write)."""
        if not self.closing:
            self.closing = True
            # Mute rather than leave: this may run inside a fan-out loop over a channel's subscribers
            # (a write that overflows the buffer), which must not change size. connection_lost leaves.
            self.write = _discard
            self.app.mute(self)
        self.transport.abort()

    # --- frames ------------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                self._fragment_binary = op is Opcode.BINARY
                return
            self._message(bytes(frame.data), op is Opcode.BINARY)
        elif op is Opcode.CONT:
            if self._fragments is None:
                return  # websockets already rejects an unexpected continuation frame
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, binary = b"".join(self._fragments), self._fragment_binary
                self._fragments = None
                self._message(data, binary)
        # PING/PONG/CLOSE are answered by the sans-I/O protocol.

    def _message(self, raw: bytes, binary: bool) -> None:
        if self.closing:
            return
        if binary:
            self.send(
                error_frame(4200, "Invalid message format: binary frames are not supported, send JSON text")
            )
            return
        try:
            msg = decode_frame(raw)[3]  # client events are forwarded as sent
        except ProtocolError as exc:
            self.send(error_frame(4200, f"Invalid message format: {exc.reason}"))
            return
        try:
            self._dispatch(msg)
        except Exception:  # a bug must cost one frame, never the connection or the server
            logger.exception("socket %s: error while handling %r", self.id, msg.get("event"))
            self.send(error_frame(4302, "A server error has occurred."))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        event: str = msg["event"]
        if event == "pusher:ping":
            self.send(PONG_FRAME)
        elif event == "pusher:pong":
            pass
        elif event == "pusher:subscribe":
            self._subscribe(_data_object(msg.get("data")))
        elif event == "pusher:unsubscribe":
            data = _data_object(msg.get("data"))
            name = data.get("channel") if data is not None else None
            if not isinstance(name, str):
                self.send(error_frame(4200, "Invalid message format: pusher:unsubscribe needs data.channel"))
            else:
                self.app.leave(self, name)
        elif event == "pusher:signin":
            self._signin(_data_object(msg.get("data")))
        elif event.startswith("client-"):
            self._client_event(msg)
        else:
            self.send(
                error_frame(
                    4200, f"Unsupported event {event[:200]!r}: client events must start with 'client-'"
                )
            )

    # --- subscriptions -----------------------------------------------------------------------------

    def _sub_error(self, channel: str, type_: str, message: str, status: int) -> None:
        self.send(
            event_frame(
                "pusher:subscription_error", {"type": type_, "error": message, "status": status}, channel
            )
        )

    def _subscribe(self, data: dict[str, Any] | None) -> None:
        name = data.get("channel") if data is not None else None
        if data is None or not isinstance(name, str):
            self.send(
                error_frame(4200, "Invalid message format: pusher:subscribe needs data.channel (a string)")
            )
            return
        cfg = self.app.config
        problem = channel_name_problem(name, cfg.max_channel_name_length, user_channel=True)
        if problem is not None:
            kind = "LimitReached" if len(name) > cfg.max_channel_name_length else "InvalidChannelName"
            self._sub_error(name, kind, problem, 4009)
            return
        member: PresenceMember | None = None
        if name.startswith(USER_CHANNEL_PREFIX):
            if self.user_id is None or name != USER_CHANNEL_PREFIX + self.user_id:
                self._sub_error(
                    name,
                    "AuthError",
                    "Sign in (pusher:signin) as this user before subscribing "
                    "to their #server-to-user- channel.",
                    4009,
                )
                return
        elif is_private(name):
            channel_data = data.get("channel_data") if is_presence(name) else None
            if is_presence(name) and not isinstance(channel_data, str):
                self._sub_error(
                    name,
                    "AuthError",
                    "Presence channels need channel_data: the exact JSON string the auth endpoint returned.",
                    401,
                )
                return
            to_sign = channel_auth_string(self.id, name, channel_data)
            if not check_auth(data.get("auth"), key=cfg.key, secret=cfg.secret, to_sign=to_sign):
                self._sub_error(name, "AuthError", "The connection is unauthorized.", 401)
                return
            if channel_data is not None:
                member = self._member(name, channel_data)
                if member is None:
                    return
            self.authorized = True

        if name in self.channels:  # a repeated subscribe is confirmed again, with no membership change
            ch = self.app.channels[name]
        elif len(self.channels) >= cfg.max_channels_per_connection:
            self._sub_error(
                name,
                "LimitReached",
                f"A connection may hold at most {cfg.max_channels_per_connection} channels: "
                "unsubscribe from one first.",
                4100,
            )
            return
        else:
            ch, _ = self.app.join(self, name, member)
        cluster = self.app.cluster
        if not ch.presence:
            self.send(event_frame("pusher_internal:subscription_succeeded", channel=name, has_data=False))
        elif cluster is None:
            self._presence_succeeded(name, ch.presence_payload())
        else:  # the members of every node, once this node's join is in the shared store
            payload = cluster.presence_payload(self.app.config.id, name, self.id)
            payload.add_done_callback(lambda f: self._presence_gathered(name, f))
            return
        self._after_subscribed(name)

    def _presence_gathered(self, name: str, payload: asyncio.Future[dict[str, Any]]) -> None:
        if self.closing or name not in self.channels:
            return
        if payload.exception() is not None:  # the store is out of reach: this node's members, as alone
            self._presence_succeeded(name, self.app.channels[name].presence_payload())
        else:
            self._presence_succeeded(name, payload.result())
        self._after_subscribed(name)

    def _presence_succeeded(self, name: str, payload: dict[str, Any]) -> None:
        self.send(event_frame("pusher_internal:subscription_succeeded", orjson.dumps(payload).decode(), name))

    def _after_subscribed(self, name: str) -> None:
        if is_cache(name):
            cached = self.app.cached(name)
            if cached is None:
                self.send(event_frame("pusher:cache_miss", channel=name, has_data=False))
            else:
                self.send(event_frame(cached[0], cached[1], name))

    def _member(self, name: str, channel_data: str) -> PresenceMember | None:
        cfg = self.app.config
        try:
            parsed = orjson.loads(channel_data)
        except orjson.JSONDecodeError:
            parsed = None
        user_id = parsed.get("user_id") if isinstance(parsed, dict) else None
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
            self._sub_error(
                name, "AuthError", 'channel_data must be a JSON object with a non-empty "user_id".', 401
            )
            return None
        user_info = parsed.get("user_info") if isinstance(parsed, dict) else None
        ch = self.app.channels.get(name)
        if ch is not None and str(user_id) not in ch.members and len(ch.members) >= cfg.max_presence_members:
            self._sub_error(
                name,
                "LimitReached",
                f"The maximum members per presence channel ({cfg.max_presence_members}) was reached.",
                4100,
            )
            return None
        if len(orjson.dumps(user_info)) > cfg.max_presence_member_bytes:
            self._sub_error(
                name,
                "LimitReached",
                f"The maximum size for a channel member is {cfg.max_presence_member_bytes} bytes.",
                4301,
            )
            return None
        return PresenceMember(user_id, user_info)

    # --- client events -----------------------------------------------------------------------------

    def _client_event(self, msg: dict[str, Any]) -> None:
        cfg = self.app.config
        event: str = msg["event"]
        channel = msg.get("channel")
        ch_for_error = channel if isinstance(channel, str) else None
        if not cfg.enable_client_events:
            self.send(error_frame(4301, "The app does not have client messaging enabled.", ch_for_error))
            return
        if len(event) > cfg.max_event_name_length:
            self.send(
                error_frame(
                    4301,
                    f"Event name is too long: at most {cfg.max_event_name_length} characters.",
                    ch_for_error,
                )
            )
            return
        if not isinstance(channel, str) or channel not in self.channels:
            self.send(error_frame(4009, "The client is not a member of the specified channel.", ch_for_error))
            return
        if not is_private(channel) or is_encrypted(channel):
            self.send(
                error_frame(
                    4301,
                    "Client events are only allowed on private and presence channels "
                    "(not public or encrypted ones).",
                    channel,
                )
            )
            return
        data = msg.get("data")
        size = len(orjson.dumps(data))
        if size > cfg.max_payload_bytes:
            self.send(
                error_frame(
                    4301,
                    f"The event data must be at most {cfg.max_payload_bytes} bytes (got {size}).",
                    channel,
                )
            )
            return
        now = time.monotonic()
        if now - self._ce_window >= 1.0:
            self._ce_window, self._ce_count = now, 0
        self._ce_count += 1
        if self._ce_count > cfg.max_client_events_per_second:
            self.send(
                error_frame(
                    4301,
                    "The rate limit for sending client events exceeded the quota "
                    f"({cfg.max_client_events_per_second}/s).",
                    channel,
                )
            )
            return
        user_id = None
        key = self.presence.get(channel)
        if key is not None:
            member = self.app.channels[channel].members.get(key)
            user_id = member.user_id if member is not None else key
        self.app.broadcast(channel, event, data, exclude=self.id, user_id=user_id)
        self.app.client_event_webhook(channel, event, data, self.id, user_id)

    # --- user authentication -----------------------------------------------------------------------

    def _signin(self, data: dict[str, Any] | None) -> None:
        cfg = self.app.config
        if not cfg.user_authentication:
            self.send(error_frame(4200, "User authentication (pusher:signin) is not enabled for this app."))
            return
        user_data = data.get("user_data") if data is not None else None
        if (
            data is None
            or not isinstance(user_data, str)
            or not check_auth(
                data.get("auth"), key=cfg.key, secret=cfg.secret, to_sign=user_auth_string(self.id, user_data)
            )
        ):
            self.close(4009, "Connection not authorized.", error="Connection not authorized.")
            return
        try:
            parsed = orjson.loads(user_data)
        except orjson.JSONDecodeError:
            parsed = None
        user_id = parsed.get("id") if isinstance(parsed, dict) else None
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
            self.close(
                4009, "Invalid user data", error='The user data must be a JSON object with a non-empty "id".'
            )
            return
        watchlist = parsed.get("watchlist") if isinstance(parsed, dict) else None
        watched = tuple(
            str(w)
            for w in (watchlist if isinstance(watchlist, list) else ())
            if isinstance(w, (str, int)) and not isinstance(w, bool)
        )[:MAX_WATCHLIST]
        self.authorized = True
        self.send(event_frame("pusher:signin_success", {"user_data": user_data}))
        self.app.sign_in(self, str(user_id), watched)  # then the watchlist's online users, if any


def _discard(frame: bytes | bytearray | memoryview[Any]) -> None:
    """The writer of an aborted socket."""


def _data_object(data: Any) -> dict[str, Any] | None:
    """``data`` as an object: some clients send it JSON-encoded as a string."""
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    return data if isinstance(data, dict) else None
