"""The Pusher HTTP API (``/apps/{id}/...``) served on the WebSocket port, as Soketi and Reverb do.

Every route but the health checks verifies the request signature first. Validation errors are
answered with Pusher's status codes (400 bad request, 401 bad signature or stale timestamp, 404
unknown app, 413 payload too large) and a JSON body ``{"error": ..., "code": ...}`` (Soketi's shape).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from quvel_ws.errors import HttpApiError, SignatureError
from quvel_ws.protocol import channel_name_problem, is_encrypted, is_presence
from quvel_ws.server._app import AppConfig
from quvel_ws.server._http11 import Request, decoded_path
from quvel_ws.server._signature import verify_request

if TYPE_CHECKING:
    from quvel_ws.server._cluster import MergedChannel
    from quvel_ws.server._server import PusherServer
    from quvel_ws.server._state import AppState

SOCKET_ID_RE = re.compile(r"\A\d+\.\d+\Z")
_ROUTE_RE = re.compile(
    r"\A/apps/(?P<app>[^/]+)/(?:(?P<events>events)|(?P<batch>batch_events)|channels(?:/(?P<channel>[^/]+)"
    r"(?P<users>/users)?)?|users/(?P<user>[^/]+)/terminate_connections)\Z"
)
_SDK_TERMINATE_RE = re.compile(r"\A/users/(?P<user>[^/]+)/terminate_connections\Z")
_INFO_ATTRIBUTES = {"user_count", "subscription_count"}

#: An extra HTTP route of the server: request -> ``(status, body, content type, extra headers)``.
Route = Callable[[Request], tuple[int, bytes, str, Mapping[str, str]]]


@dataclass(frozen=True)
class EventToPublish:
    """A validated event of the HTTP API (or of :meth:`PusherServer.trigger`)."""

    name: str
    channels: tuple[str, ...]
    data: Any
    socket_id: str | None = None
    info: frozenset[str] = frozenset()


def validate_event(app: AppConfig, body: Any) -> EventToPublish:
    """Check one event object (``name``, ``channel``/``channels``, ``data``, ``socket_id``, ``info``)."""
    if not isinstance(body, dict):
        raise HttpApiError(400, "The event must be a JSON object with name, channels (or channel) and data")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HttpApiError(400, "The event needs a non-empty string name")
    if len(name) > app.max_event_name_length:
        raise HttpApiError(400, f"Event name is too long: at most {app.max_event_name_length} characters.")
    if "channels" in body:
        channels = body["channels"]
        if not isinstance(channels, list) or not channels:
            raise HttpApiError(400, "channels must be a non-empty list of channel names")
    elif "channel" in body:
        channels = [body["channel"]]
    else:
        raise HttpApiError(400, "The event needs channels (a list) or channel (a string)")
    if len(channels) > app.max_channels_per_event:
        raise HttpApiError(
            400, f"Cannot broadcast to more than {app.max_channels_per_event} channels at once"
        )
    for ch in channels:
        problem = channel_name_problem(ch, app.max_channel_name_length, user_channel=True)
        if problem is not None:
            raise HttpApiError(400, f"Invalid channel {str(ch)[:210]!r}: {problem}")
    if len(channels) > 1 and any(is_encrypted(ch) for ch in channels):
        raise HttpApiError(400, "An event to a private-encrypted- channel must go to that one channel only")
    if "data" not in body:
        raise HttpApiError(400, "The event needs data (usually a JSON-encoded string)")
    data = body["data"]
    size = len(data.encode()) if isinstance(data, str) else len(orjson.dumps(data))
    if size > app.max_payload_bytes:
        raise HttpApiError(413, f"The event data must be at most {app.max_payload_bytes} bytes (got {size}).")
    socket_id = body.get("socket_id")
    if socket_id is not None and (not isinstance(socket_id, str) or not SOCKET_ID_RE.match(socket_id)):
        raise HttpApiError(400, "socket_id must look like '123.456'")
    info = _info(body.get("info"))
    return EventToPublish(name, tuple(channels), data, socket_id, info)


def _info(raw: Any) -> frozenset[str]:
    if raw is None or raw == "":
        return frozenset()
    if not isinstance(raw, str):
        raise HttpApiError(400, "info must be a comma-separated string")
    attrs = frozenset(a.strip() for a in raw.split(",") if a.strip())
    unknown = attrs - _INFO_ATTRIBUTES
    if unknown:
        raise HttpApiError(
            400, f"Unknown info attribute(s) {sorted(unknown)}; use user_count, subscription_count"
        )
    return attrs


def channel_attributes(state: AppState, name: str, info: frozenset[str]) -> dict[str, Any]:
    ch = state.channels.get(name)
    attrs: dict[str, Any] = {}
    if "user_count" in info and is_presence(name):
        attrs["user_count"] = len(ch.members) if ch else 0
    if "subscription_count" in info:
        attrs["subscription_count"] = len(ch.subscribers) if ch else 0
    return attrs


def merged_attributes(merged: dict[str, MergedChannel], name: str, info: frozenset[str]) -> dict[str, Any]:
    """:func:`channel_attributes` from the cluster's gathered view."""
    ch = merged.get(name)
    attrs: dict[str, Any] = {}
    if "user_count" in info and is_presence(name):
        attrs["user_count"] = len(ch.members) if ch else 0
    if "subscription_count" in info:
        attrs["subscription_count"] = ch.subscription_count if ch else 0
    return attrs


Answer = tuple[int, bytes, str]


class HttpApi:
    """Routes requests to handlers; the result is ``(status, json body)``."""

    def __init__(self, server: PusherServer) -> None:
        self.server = server

    def handle(self, req: Request) -> Answer | Awaitable[Answer]:
        """Answer ``req``: ``(status, body, content type)``, or an awaitable of it when the answer is
        gathered from the cluster's nodes."""
        if req.path in ("/", "/ready", "/health"):
            if req.method not in ("GET", "HEAD"):
                return _error(405, "Use GET")
            if self.server.closing:
                return _error(503, "The server is closing")
            return 200, b"OK", "text/plain"
        try:
            result = self._route(req)
        except HttpApiError as exc:
            return _error(exc.status, exc.message)
        if isinstance(result, Coroutine):
            return self._gathered(result)
        return 200, orjson.dumps(result), "application/json"

    async def _gathered(self, answer: Coroutine[Any, Any, Any]) -> Answer:
        try:
            return 200, orjson.dumps(await answer), "application/json"
        except HttpApiError as exc:
            return _error(exc.status, exc.message)

    def _route(self, req: Request) -> Any:
        m = _ROUTE_RE.match(req.path)
        sdk_terminate = None if m else _SDK_TERMINATE_RE.match(req.path)
        if m is None and sdk_terminate is None:
            raise HttpApiError(404, f"No route for {req.method} {req.path[:200]}")
        if m is not None:
            state = self.server.app_state_by_id(decoded_path(m["app"]))
            if state is None:
                raise HttpApiError(404, f"The app {decoded_path(m['app'])[:100]!r} could not be found.")
        else:
            # pusher-http-python signs terminate_connections without the /apps/{id} prefix: find the
            # app by the signing key instead.
            state = self.server.app_state_by_key(req.query.get("auth_key", ""))
            if state is None:
                raise HttpApiError(401, "Unknown auth_key")
        self._verify(req, state.config)
        if not state.config.enabled:
            raise HttpApiError(403, "The app is not enabled.")
        if m is None:
            assert sdk_terminate is not None
            return self._terminate(state, decoded_path(sdk_terminate["user"]), req)
        if m["events"] or m["batch"]:
            _method(req, "POST")
            body = _json_body(req)
            if m["events"]:
                ev = validate_event(state.config, body)
                result = self.server.publish_event(state, ev)
                if ev.info and state.cluster is not None:
                    return self._cluster_info(state, [ev], batch=False)
                return result
            return self._batch(state, body)
        if m["user"]:
            return self._terminate(state, decoded_path(m["user"]), req)
        _method(req, "GET")
        if m["channel"] is None:
            return self._channels(state, req)
        name = decoded_path(m["channel"])
        problem = channel_name_problem(name, state.config.max_channel_name_length, user_channel=True)
        if problem is not None:
            raise HttpApiError(400, problem)
        if m["users"]:
            return self._users(state, name)
        return self._channel(state, name, req)

    def _verify(self, req: Request, app: AppConfig) -> None:
        try:
            verify_request(req.method, req.path, req.query, req.body, key=app.key, secret=app.secret)
        except SignatureError as exc:
            alternative = decoded_path(req.path)
            if exc.status == 401 and alternative != req.path:
                try:
                    verify_request(
                        req.method, alternative, req.query, req.body, key=app.key, secret=app.secret
                    )
                    return
                except SignatureError:
                    pass
            raise HttpApiError(exc.status, exc.message) from None

    def _batch(self, state: AppState, body: Any) -> Any:
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not batch:
            raise HttpApiError(400, 'The body must be {"batch": [event, ...]} with at least one event')
        if len(batch) > state.config.max_batch_size:
            raise HttpApiError(
                400, f"Cannot batch-send more than {state.config.max_batch_size} messages at once"
            )
        events = [validate_event(state.config, item) for item in batch]  # all or nothing
        results = [self.server.publish_event(state, ev) for ev in events]
        if any(ev.info for ev in events) and state.cluster is not None:
            return self._cluster_info(state, events, batch=True)
        if any(ev.info for ev in events):
            return {
                "ok": True,
                "batch": [
                    r.get("channels", {}).get(ev.channels[0], {})
                    for r, ev in zip(results, events, strict=True)
                ],
            }
        return {"ok": True}

    async def _cluster_info(self, state: AppState, events: list[EventToPublish], *, batch: bool) -> Any:
        assert state.cluster is not None
        names = list(dict.fromkeys(ch for ev in events for ch in ev.channels))
        merged = await state.cluster.gather(state.config.id, None, names)
        if batch:
            batch_info = [merged_attributes(merged, ev.channels[0], ev.info) for ev in events]
            return {"ok": True, "batch": batch_info}
        ev = events[0]
        return {"ok": True, "channels": {ch: merged_attributes(merged, ch, ev.info) for ch in ev.channels}}

    async def _cluster_channels(
        self,
        state: AppState,
        prefix: str | None,
        name: str | None,
        info: frozenset[str],
        *,
        users: bool = False,
    ) -> Any:
        assert state.cluster is not None
        merged = await state.cluster.gather(state.config.id, prefix, None if name is None else [name])
        if name is None:
            channels: dict[str, Any] = {}
            for ch_name, ch in merged.items():
                attrs: dict[str, Any] = {"subscription_count": ch.subscription_count, "occupied": True}
                if "user_count" in info:
                    attrs["user_count"] = len(ch.members)
                channels[ch_name] = attrs
            return {"channels": channels}
        found = merged.get(name)
        if users:
            return {"users": [{"id": key} for key in (found.members if found else {})]}
        result: dict[str, Any] = {
            "occupied": found is not None,
            "subscription_count": found.subscription_count if found else 0,
        }
        if is_presence(name):
            result["user_count"] = len(found.members) if found else 0
        return result

    def _channels(self, state: AppState, req: Request) -> Any:
        prefix = req.query.get("filter_by_prefix", "")
        info = _info(req.query.get("info"))
        if "user_count" in info and not prefix.startswith("presence-"):
            raise HttpApiError(400, "info=user_count needs filter_by_prefix=presence-")
        if state.cluster is not None:
            return self._cluster_channels(state, prefix, None, info)
        channels: dict[str, Any] = {}
        for ch in state.occupied(prefix):
            attrs: dict[str, Any] = {"subscription_count": len(ch.subscribers), "occupied": True}
            if "user_count" in info:
                attrs["user_count"] = len(ch.members)
            channels[ch.name] = attrs
        return {"channels": channels}

    def _channel(self, state: AppState, name: str, req: Request) -> Any:
        info = _info(req.query.get("info"))
        if "user_count" in info and not is_presence(name):
            raise HttpApiError(400, "user_count may only be requested for presence channels")
        if state.cluster is not None:
            return self._cluster_channels(state, None, name, info)
        ch = state.channels.get(name)
        result: dict[str, Any] = {
            "occupied": ch is not None,
            "subscription_count": len(ch.subscribers) if ch else 0,
        }
        if is_presence(name):
            result["user_count"] = len(ch.members) if ch else 0
        return result

    def _users(self, state: AppState, name: str) -> Any:
        if not is_presence(name):
            raise HttpApiError(400, "The channel must be a presence channel.")
        if state.cluster is not None:
            return self._cluster_channels(state, None, name, frozenset(), users=True)
        ch = state.channels.get(name)
        return {"users": [{"id": key} for key in (ch.members if ch else {})]}

    def _terminate(self, state: AppState, user_id: str, req: Request) -> Any:
        _method(req, "POST")
        state.terminate_user(user_id)
        if state.cluster is not None:
            state.cluster.terminate_user(state.config.id, user_id)
        return {"ok": True}


def _method(req: Request, method: str) -> None:
    if req.method != method:
        raise HttpApiError(405, f"Use {method} for {req.path[:200]}")


def _json_body(req: Request) -> Any:
    try:
        return orjson.loads(req.body or b"{}")
    except orjson.JSONDecodeError:
        raise HttpApiError(400, "The request body is not valid JSON") from None


def _error(status: int, message: str) -> tuple[int, bytes, str]:
    return status, orjson.dumps({"error": message, "code": status}), "application/json"
