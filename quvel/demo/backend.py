"""A simulated Laravel back end: the notifications HTTP API, ``/broadcasting/auth`` and
``/broadcasting/user-auth``, bearer-token and session (XSRF cookie) users, and a broadcaster that
publishes what Laravel publishes (``BroadcastNotificationCreated`` on a user's private channel, chat
messages on a presence room) through any Pusher-compatible HTTP API.

The examples, ``quvel demo`` and the tests use it as the application server a real front end talks to.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from quvel.demo._http import Handler, HTTPError, HTTPServer, Request, Response, Router
from quvel.demo._laravel import laravel_timestamp
from quvel.demo._pusher import Broadcaster, BroadcastError, PusherCredentials
from quvel.demo._tasks import TASKS_CHANNEL, TaskBoard, TaskRecord
from quvel_ws.auth import Authorizer
from quvel_ws.errors import InvalidArgument

logger = logging.getLogger(__name__)

NOTIFICATION_EVENT = "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated"
MESSAGE_EVENT = "App\\Events\\NewMessage"
UPDATE_EVENT = "App\\Events\\NewUpdate"
DEMO_PASSWORD = "password"


@dataclass(frozen=True)
class DemoUser:
    """A user of the simulated app; ``token`` is its API (Sanctum-style bearer) token."""

    id: int
    name: str
    email: str
    token: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


DEFAULT_USERS: tuple[DemoUser, ...] = (
    DemoUser(1, "Ann", "ann@example.test", "token-ann"),
    DemoUser(2, "Ben", "ben@example.test", "token-ben"),
    DemoUser(3, "Cleo", "cleo@example.test", "token-cleo"),
)


@dataclass
class NotificationRecord:
    """A row of Laravel's ``notifications`` table, plus whether its broadcast reached the server."""

    id: str
    user_id: int
    type: str
    data: dict[str, Any]
    created_at: str
    read_at: str | None = None
    broadcast: bool = False

    def to_api(self) -> dict[str, Any]:
        """The JSON of a ``DatabaseNotification`` as Laravel's API returns it."""
        return {
            "id": self.id,
            "type": self.type,
            "notifiable_type": "App\\Models\\User",
            "notifiable_id": self.user_id,
            "data": self.data,
            "read_at": self.read_at,
            "created_at": self.created_at,
            "updated_at": self.read_at or self.created_at,
        }

    def to_broadcast(self) -> dict[str, Any]:
        """The ``BroadcastNotificationCreated`` payload: the notification's data plus ``id`` and ``type``."""
        return {**self.data, "id": self.id, "type": self.type}


@dataclass(frozen=True)
class ChatMessage:
    id: int
    room_id: str
    user: DemoUser
    text: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room_id": self.room_id,
            "user": self.user.public(),
            "text": self.text,
            "created_at": self.created_at,
        }


@dataclass
class _Session:
    xsrf: str
    user_id: int | None = None


@dataclass
class BackendStats:
    """What the back end did: notifications stored, broadcasts that failed (server down), messages."""

    notifications: int = 0
    broadcast_failures: int = 0
    messages: int = 0
    updates: int = 0
    auth_requests: int = 0
    auth_denied: int = 0
    #: ``/api/...`` requests answered with an error (or held) by :meth:`DemoBackend.api_unavailable`.
    api_refused: int = 0
    auth_refused: int = 0  # /broadcasting/auth requests slowed or failed by auth_unavailable()


_NOTIFICATION_SAMPLES: tuple[tuple[str, str, str], ...] = (
    ("App\\Notifications\\InvoicePaid", "Invoice paid", "Invoice #{n} was paid."),
    ("App\\Notifications\\CommentPosted", "New comment", "{who} commented on your post (#{n})."),
    ("App\\Notifications\\TaskAssigned", "Task assigned", "{who} assigned task #{n} to you."),
    ("App\\Notifications\\DeploySucceeded", "Deploy succeeded", "Release {n} is live."),
)
_CHAT_SAMPLES: tuple[str, ...] = (
    "Morning all!",
    "Deploy is green.",
    "Who is on call tonight?",
    "Lunch at noon?",
    "PR #{n} is ready for review.",
    "Coffee machine fixed.",
    "Standup in 5.",
)


class DemoBackend:
    """The simulated Laravel app. Use as ``async with DemoBackend(credentials) as backend:``.

    Channel rules (``routes/channels.php``): ``private-tenant.{tenant}.User.{id}`` and
    ``private-App.Models.User.{id}`` for that user only, ``presence-room.{id}`` for any signed-in user
    (``user_info`` = id and name), ``private-encrypted-*`` for any signed-in user.
    """

    def __init__(
        self,
        credentials: PusherCredentials,
        *,
        tenant_id: str = "acme",
        users: Iterable[DemoUser] = DEFAULT_USERS,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.credentials = credentials
        self.tenant_id = tenant_id
        self.users = {u.id: u for u in users}
        self._by_token = {u.token: u for u in self.users.values()}
        self._by_email = {u.email: u for u in self.users.values()}
        self.notifications: list[NotificationRecord] = []
        self.messages: list[ChatMessage] = []
        self.stats = BackendStats()
        self._sessions: dict[str, _Session] = {}
        self._message_ids = itertools.count(1)
        #: The ``Task`` model (``BroadcastsEvents`` + ``SoftDeletes``) and its ``/api/tasks`` routes.
        self.tasks = TaskBoard(self._try_broadcast, self._user)
        self._rng = random.Random(seed)
        self._broadcaster = Broadcaster(credentials)
        self._authorizer = Authorizer(credentials.key, credentials.secret, master_key=credentials.master_key)
        self._api_down_until = 0.0
        self._api_down_status = 503
        self._api_down_hang = False
        self._auth_down_until = 0.0
        self._auth_down_status = 503
        self._auth_delay = 0.0
        self._server = HTTPServer(self._routes(), host, port)

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> DemoBackend:
        await self._server.start()
        logger.info("demo back end listening on %s", self.url)
        return self

    async def stop(self) -> None:
        await self._server.stop()
        await self._broadcaster.aclose()

    async def __aenter__(self) -> DemoBackend:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL of the app (``/api/...``, ``/broadcasting/auth``)."""
        return self._server.url

    @property
    def auth_endpoint(self) -> str:
        return f"{self.url}/broadcasting/auth"

    @property
    def user_auth_endpoint(self) -> str:
        return f"{self.url}/broadcasting/user-auth"

    def api_unavailable(self, seconds: float, *, status: int = 503, hang: bool = False) -> None:
        """For ``seconds`` from now the ``/api/...`` routes fail, as during a deploy when the WebSocket
        server is back before the app: each request is answered ``status`` (503 is Laravel's maintenance
        mode), or with ``hang=True`` held unanswered until the time is up (the client's request times out;
        one still waiting then is served). ``/broadcasting/auth`` keeps working. ``seconds=0`` ends it."""
        if seconds < 0 or not 400 <= status <= 599:
            raise ValueError(f"api_unavailable needs seconds >= 0 and a 4xx/5xx status: {seconds}, {status}")
        self._api_down_until = time.monotonic() + seconds
        self._api_down_status = status
        self._api_down_hang = hang

    def auth_unavailable(self, seconds: float, *, status: int = 503, delay: float = 0.0) -> None:
        """For ``seconds`` from now ``/broadcasting/auth`` is slow or failing (the app is overloaded or
        restarting): each request waits ``delay`` s, then is answered ``status`` (``status=200``: answered
        normally, only late). ``seconds=0`` ends it."""
        if seconds < 0 or delay < 0 or not (status == 200 or 400 <= status <= 599):
            raise ValueError(
                f"auth_unavailable needs seconds >= 0, delay >= 0 and 200 or a 4xx/5xx status: "
                f"{seconds}, {delay}, {status}"
            )
        self._auth_down_until = time.monotonic() + seconds
        self._auth_down_status = status
        self._auth_delay = delay

    def _api(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            remaining = self._api_down_until - time.monotonic()
            if remaining > 0:
                self.stats.api_refused += 1
                if not self._api_down_hang:
                    raise HTTPError(self._api_down_status, "Service Unavailable")
                await asyncio.sleep(remaining)
            return await handler(request)

        return guarded

    def _auth_guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if self._auth_down_until > time.monotonic():
                self.stats.auth_refused += 1
                if self._auth_delay:
                    await asyncio.sleep(self._auth_delay)
                if self._auth_down_status != 200:
                    raise HTTPError(self._auth_down_status, "Service Unavailable")
            return await handler(request)

        return guarded

    # --- what the app does (server side) -----------------------------------------------------------

    def notification_channel(self, user_id: int) -> str:
        """The private channel a user's notifications are broadcast on (tenant-scoped)."""
        return f"private-tenant.{self.tenant_id}.User.{user_id}"

    def sent_to(self, user_id: int) -> list[NotificationRecord]:
        """Every notification sent to ``user_id``, oldest first."""
        return [n for n in self.notifications if n.user_id == user_id]

    async def notify(self, user_id: int, type: str, data: dict[str, Any]) -> NotificationRecord:
        """Store a notification and broadcast it (``$user->notify(...)`` with the database and broadcast
        channels). A failed broadcast is logged and counted; the row stays, as with Laravel's queue."""
        if user_id not in self.users:
            raise KeyError(f"no user {user_id}")
        record = NotificationRecord(str(uuid.uuid4()), user_id, type, dict(data), laravel_timestamp())
        self.notifications.append(record)
        self.stats.notifications += 1
        try:
            await self._broadcaster.trigger(
                self.notification_channel(user_id), NOTIFICATION_EVENT, record.to_broadcast()
            )
            record.broadcast = True
        except BroadcastError as exc:
            self.stats.broadcast_failures += 1
            logger.warning("notification %s stored but not broadcast: %s", record.id, exc)
        return record

    async def send_message(
        self, room_id: str, user_id: int, text: str, socket_id: str | None = None
    ) -> ChatMessage:
        """Store a chat message and broadcast ``NewMessage`` on ``presence-room.{room_id}``
        (``socket_id`` excludes the sender's connection, like ``broadcast(...)->toOthers()``)."""
        user = self.users[user_id]
        message = ChatMessage(next(self._message_ids), room_id, user, text, laravel_timestamp())
        self.messages.append(message)
        self.stats.messages += 1
        await self._try_broadcast(f"presence-room.{room_id}", MESSAGE_EVENT, message.to_json(), socket_id)
        return message

    async def post_update(self, data: dict[str, Any]) -> None:
        """Broadcast ``NewUpdate`` on the public ``updates`` channel."""
        self.stats.updates += 1
        await self._try_broadcast("updates", UPDATE_EVENT, data)

    async def broadcast(self, channel: str, event: str, data: Any) -> None:
        """Publish any event (raises :class:`BroadcastError` when the server cannot be reached)."""
        await self._broadcaster.trigger(channel, event, data)

    async def _try_broadcast(
        self, channel: str | list[str], event: str, data: Any, socket_id: str | None = None
    ) -> bool:
        try:
            await self._broadcaster.trigger(channel, event, data, socket_id=socket_id)
        except BroadcastError as exc:
            self.stats.broadcast_failures += 1
            logger.warning("%s on %s not broadcast: %s", event, channel, exc)
            return False
        return True

    async def notify_random(self, user_ids: Sequence[int] | None = None) -> NotificationRecord:
        """Send a plausible notification to one of ``user_ids`` (all users by default)."""
        user_id = self._rng.choice(list(user_ids or self.users))
        type_, title, body = self._rng.choice(_NOTIFICATION_SAMPLES)
        who = self._rng.choice([u.name for u in self.users.values() if u.id != user_id] or ["Someone"])
        n = self._rng.randint(100, 9999)
        return await self.notify(user_id, type_, {"title": title, "body": body.format(n=n, who=who)})

    async def chat_random(self, room_id: str, user_ids: Sequence[int] | None = None) -> ChatMessage:
        """A plausible chat message in ``room_id`` from one of ``user_ids``."""
        user_id = self._rng.choice(list(user_ids or self.users))
        text = self._rng.choice(_CHAT_SAMPLES).format(n=self._rng.randint(100, 999))
        return await self.send_message(room_id, user_id, text)

    # --- HTTP ---------------------------------------------------------------------------------------

    def _routes(self) -> Router:
        r = Router()
        r.add("GET", "/sanctum/csrf-cookie", self._csrf_cookie)
        r.add("POST", "/login", self._login)
        r.add("POST", "/logout", self._logout)
        r.add("GET", "/api/user", self._api(self._me))
        r.add("GET", "/api/notifications", self._api(self._list_notifications))
        r.add("POST", "/api/notifications/read-all", self._api(self._read_all))
        r.add("POST", "/api/notifications/{id}/read", self._api(self._read_one))
        r.add("GET", "/api/rooms/{room}/messages", self._api(self._list_messages))
        r.add("POST", "/api/rooms/{room}/messages", self._api(self._post_message))
        for method, path, handler in self.tasks.routes():
            r.add(method, path, self._api(handler))
        r.add("POST", "/broadcasting/auth", self._auth_guard(self._broadcasting_auth))
        r.add("GET", "/broadcasting/auth", self._auth_guard(self._broadcasting_auth))
        r.add("POST", "/broadcasting/user-auth", self._broadcasting_user_auth)
        return r

    def _session(self, request: Request) -> tuple[str, _Session] | None:
        sid = request.cookies.get("laravel_session")
        if sid and sid in self._sessions:
            return sid, self._sessions[sid]
        return None

    def _user(self, request: Request, *, csrf: bool = True) -> DemoUser:
        """The signed-in user: a bearer token, or a session cookie (state-changing requests then need a
        matching ``X-XSRF-TOKEN``, Laravel's 419 otherwise). 401 when neither."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            user = self._by_token.get(auth[7:].strip())
            if user is None:
                raise HTTPError(401, "Unauthenticated.")
            return user
        found = self._session(request)
        if found is None or found[1].user_id is None:
            raise HTTPError(401, "Unauthenticated.")
        session = found[1]
        if csrf and request.method != "GET":
            self._check_xsrf(request, session)
        assert session.user_id is not None
        return self.users[session.user_id]

    @staticmethod
    def _check_xsrf(request: Request, session: _Session) -> None:
        token = request.headers.get("x-xsrf-token") or request.headers.get("x-csrf-token")
        if not token or not secrets.compare_digest(token, session.xsrf):
            raise HTTPError(419, "CSRF token mismatch.")

    async def _csrf_cookie(self, request: Request) -> Response:
        found = self._session(request)
        if found is None:
            sid = secrets.token_urlsafe(24)
            found = sid, _Session(xsrf=secrets.token_urlsafe(24))
            self._sessions[sid] = found[1]
        sid, session = found
        return (
            Response(204)
            .set_cookie("laravel_session", sid)
            .set_cookie("XSRF-TOKEN", session.xsrf, http_only=False)
        )

    async def _login(self, request: Request) -> Response:
        found = self._session(request)
        if found is None:
            raise HTTPError(419, "CSRF token mismatch.")
        self._check_xsrf(request, found[1])
        body = request.json()
        email = body.get("email") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        errors: dict[str, list[str]] = {}
        if not isinstance(email, str) or not email:
            errors["email"] = ["The email field is required."]
        if not isinstance(password, str) or not password:
            errors["password"] = ["The password field is required."]
        if errors:
            raise HTTPError(422, next(iter(errors.values()))[0], errors)
        user = self._by_email.get(str(email))
        if user is None or password != DEMO_PASSWORD:
            raise HTTPError(
                422,
                "These credentials do not match our records.",
                {"email": ["These credentials do not match our records."]},
            )
        found[1].user_id = user.id
        return Response.json({"data": user.public()})

    async def _logout(self, request: Request) -> Response:
        self._user(request)
        found = self._session(request)
        if found is not None:
            found[1].user_id = None
        return Response(204)

    async def _me(self, request: Request) -> Response:
        user = self._user(request)
        return Response.json({"data": {**user.public(), "email": user.email}})

    async def _list_notifications(self, request: Request) -> Response:
        user = self._user(request)
        rows = [n.to_api() for n in reversed(self.notifications) if n.user_id == user.id]
        if request.query.get("unread") in {"1", "true"}:
            rows = [r for r in rows if r["read_at"] is None]
        return Response.json({"data": rows, "meta": {"total": len(rows)}})

    def _owned(self, user: DemoUser, notification_id: str) -> NotificationRecord:
        for n in self.notifications:
            if n.id == notification_id and n.user_id == user.id:
                return n
        raise HTTPError(404, "No query results for model [Illuminate\\Notifications\\DatabaseNotification].")

    async def _read_one(self, request: Request) -> Response:
        user = self._user(request)
        record = self._owned(user, request.params["id"])
        if record.read_at is None:
            record.read_at = laravel_timestamp()
        return Response.json({"data": record.to_api()})

    async def _read_all(self, request: Request) -> Response:
        user = self._user(request)
        now = laravel_timestamp()
        updated = 0
        for n in self.notifications:
            if n.user_id == user.id and n.read_at is None:
                n.read_at = now
                updated += 1
        return Response.json({"updated": updated, "read_at": now})

    async def _list_messages(self, request: Request) -> Response:
        self._user(request)
        room = request.params["room"]
        rows = [m.to_json() for m in self.messages if m.room_id == room][-50:]
        return Response.json({"data": rows})

    async def _post_message(self, request: Request) -> Response:
        user = self._user(request)
        body = request.json()
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise HTTPError(422, "The text field is required.", {"text": ["The text field is required."]})
        if len(text) > 1000:
            raise HTTPError(
                422,
                "The text field must not be greater than 1000 characters.",
                {"text": ["The text field must not be greater than 1000 characters."]},
            )
        message = await self.send_message(
            request.params["room"], user.id, text.strip(), socket_id=request.headers.get("x-socket-id")
        )
        return Response.json({"data": message.to_json()}, 201)

    def _can_join(self, user: DemoUser, channel: str) -> bool:
        if channel == TASKS_CHANNEL or channel.startswith(TASKS_CHANNEL + "."):
            return True  # the task board is shared by every signed-in user
        if channel.startswith("presence-room."):
            return len(channel) > len("presence-room.")
        if channel.startswith("private-encrypted-"):
            return True
        for prefix in (f"private-tenant.{self.tenant_id}.User.", "private-App.Models.User."):
            if channel.startswith(prefix):
                return channel[len(prefix) :] == str(user.id)
        return False

    async def _broadcasting_auth(self, request: Request) -> Response:
        self.stats.auth_requests += 1
        form = request.form() if request.method == "POST" else request.query
        socket_id, channel = form.get("socket_id", ""), form.get("channel_name", "")
        if not socket_id or not channel:
            raise HTTPError(422, "socket_id and channel_name are required.")
        try:
            user = self._user(request, csrf=False)
        except HTTPError:
            self.stats.auth_denied += 1
            raise HTTPError(403, "This action is unauthorized.") from None
        if not self._can_join(user, channel):
            self.stats.auth_denied += 1
            raise HTTPError(403, "This action is unauthorized.")
        try:
            body = self._authorizer.channel(socket_id, channel, user=user.public())
        except InvalidArgument as exc:  # a malformed socket id or channel name
            raise HTTPError(422, str(exc)) from None
        return Response.json(body)

    async def _broadcasting_user_auth(self, request: Request) -> Response:
        form = request.form()
        socket_id = form.get("socket_id", "")
        if not socket_id:
            raise HTTPError(422, "socket_id is required.")
        try:
            user = self._user(request, csrf=False)
        except HTTPError:
            raise HTTPError(403, "This action is unauthorized.") from None
        try:
            body = self._authorizer.user(socket_id, {"id": user.id, "user_info": user.public()})
        except InvalidArgument as exc:
            raise HTTPError(422, str(exc)) from None
        return Response.json(body)


__all__ = [
    "DEFAULT_USERS",
    "MESSAGE_EVENT",
    "NOTIFICATION_EVENT",
    "TASKS_CHANNEL",
    "UPDATE_EVENT",
    "BackendStats",
    "BroadcastError",
    "Broadcaster",
    "ChatMessage",
    "DemoBackend",
    "DemoUser",
    "NotificationRecord",
    "PusherCredentials",
    "TaskRecord",
]
