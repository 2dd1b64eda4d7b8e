"""The one exception hierarchy of :mod:`quvel_ws` (client, embedded server and auth helpers).

Every error says what was wrong and, where there is one, what to do about it. Errors that arrive
asynchronously (a bad frame, a failed authorisation) are delivered on ``errors`` Observables as these
same types; errors from a call the user made are raised.
"""

from __future__ import annotations

from typing import Any


class WsError(Exception):
    """Base class of every quvel_ws error."""


# --- input the user gave us -------------------------------------------------------------------------


class InvalidArgument(WsError, ValueError):
    """A value passed to a quvel_ws function is not valid (a bad URL, channel type, option...)."""


class CallbackGivenAsModel(InvalidArgument, TypeError):
    """``channel.listen(event, callback)`` (Echo's form): quvel_ws's second argument is a model to
    validate payloads into; the message shows the callback forms."""


class InvalidChannelName(InvalidArgument):
    """A channel name breaks Pusher's rules: 1-200 characters from ``[-a-zA-Z0-9_=@,.;]``."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"invalid channel name {name!r}: {reason}")


class InvalidEventName(InvalidArgument):
    """An event name is empty, too long (over 200 characters), or lacks a required prefix."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"invalid event name {name!r}: {reason}")


class PayloadTooLarge(InvalidArgument):
    """A frame to send is larger than the configured limit (servers would close the connection)."""

    def __init__(self, size: int, limit: int, what: str = "frame") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} of {size} bytes is over the {limit}-byte limit")


# --- the connection ---------------------------------------------------------------------------------


class ProtocolError(WsError):
    """The server sent something that is not a valid Pusher frame. The frame is ignored; the
    connection keeps going."""

    def __init__(self, message: str, frame: str | bytes | None = None) -> None:
        self.reason = message
        self.frame = frame[:200] if frame is not None else None
        super().__init__(message if frame is None else f"{message}: {self.frame!r}")


class HandshakeError(WsError):
    """The server's first message was not ``pusher:connection_established`` or lacked what it needs."""


class ConnectionClosed(WsError):
    """The WebSocket closed. ``code``/``reason`` are the close frame's (``1006`` when there was none);
    ``action`` is what the client does next: ``reconnect`` (with backoff), ``backoff`` (at least 1 s),
    ``retry`` (4200-4299: now, with a little jitter), ``tls_only`` or ``refused``."""

    def __init__(self, code: int, reason: str, action: str) -> None:
        self.code = code
        self.reason = reason
        self.action = action
        super().__init__(f"connection closed with {code} {reason!r}; next: {action}")


class ConnectionRefused(WsError):
    """The server refused the connection for good (close or error codes 4001-4099 and 4300+, e.g.
    4001 unknown app key). The client stops; fix the configuration and call ``connect()`` again."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"server refused the connection ({code}): {message}")


class TransportError(WsError):
    """Opening the socket failed (refused, DNS, TLS, timeout). The client retries with backoff."""


class CertificateError(TransportError):
    """The server's TLS certificate could not be verified (untrusted CA, wrong host name, expired).
    Not transient: the client stops (state ``failed``) instead of retrying. Trust the server's CA with
    ``ca_file=`` (or ``ssl=``), or fix the certificate; then call ``connect()`` again."""


class ServerError(WsError):
    """A ``pusher:error`` the server sent after the handshake. Informational: the connection stays up
    (e.g. 4301 client event rate limit, Reverb 4009/4200)."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"server error {code}: {message}")


class NotConnected(WsError):
    """An operation needs a connected socket (e.g. a whisper); nothing was sent."""


class ServiceShutDown(WsError):
    """The ``WebSocketService`` was shut down (``shutdown()``, or its container's shutdown); it cannot be
    used again. Create a new service."""

    def __init__(self) -> None:
        super().__init__("this WebSocketService was shut down; create a new one")


# --- channels ---------------------------------------------------------------------------------------


class SubscriptionError(WsError):
    """A subscription attempt failed. ``type`` follows pusher-js/Soketi (``AuthError``,
    ``LimitReached``, ``ServerError``, ``Timeout``); ``status`` is the HTTP status of a failed auth
    request or the server's code. The channel may be subscribed again to retry."""

    def __init__(
        self, channel: str, message: str, *, type: str = "SubscriptionError", status: int | None = None
    ) -> None:
        self.channel = channel
        self.type = type
        self.status = status
        self.message = message
        super().__init__(f"subscription to {channel!r} failed ({type}, status {status}): {message}")


class AuthorizationError(SubscriptionError):
    """The auth endpoint did not authorise the channel: an HTTP error status (403, 500...), status 0
    for a network failure or timeout, or a 200 with a body that is not a valid auth response."""

    def __init__(
        self, channel: str, message: str, *, status: int | None = None, body: str | None = None
    ) -> None:
        self.body = body[:500] if body else body
        super().__init__(channel, message, type="AuthError", status=status)


class SubscriptionRefused(AuthorizationError):
    """The server refused a private or presence subscription with a channel-less ``pusher:error``
    (Laravel Reverb's 4009 "Connection is unauthorized", the Pusher cloud's "Invalid signature"): the
    signature the auth endpoint gave did not verify. ``code`` and ``message`` are the server's.

    It is not retried on a timer (asking the same endpoint again gives the same signature): the next
    attempt is on reconnect, or when the channel is left and subscribed again."""

    def __init__(self, channel: str, code: int | None, message: str) -> None:
        super().__init__(channel, message or "the server refused the subscription", status=code)
        self.code = code


class SubscriptionTimeout(SubscriptionError):
    """The server did not confirm a subscription in time (a server that drops a refused subscribe
    without any answer; Reverb's channel-less ``pusher:error`` is a :class:`SubscriptionRefused`)."""

    def __init__(self, channel: str, seconds: float) -> None:
        super().__init__(channel, f"no subscription_succeeded within {seconds:g}s", type="Timeout")


class DecryptionError(WsError):
    """An event on a ``private-encrypted-`` channel could not be decrypted, even after fetching the
    key again. The event is reported here, never silently dropped."""

    def __init__(self, channel: str, event: str, reason: str) -> None:
        self.channel = channel
        self.event = event
        self.reason = reason
        super().__init__(f"could not decrypt {event!r} on {channel!r}: {reason}")


class ClientEventError(WsError):
    """A client event (whisper) cannot be sent: wrong name, wrong channel type (public or encrypted),
    or the channel is not subscribed."""


class SigninError(WsError):
    """User authentication (``pusher:signin``) failed; ``status`` is the HTTP status when the user-auth
    endpoint failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message if status is None else f"{message} (status {status})")


class PayloadValidationError(WsError):
    """An event payload did not validate against the pydantic model given to ``listen(model=...)``.
    The event is skipped; the stream goes on."""

    def __init__(self, channel: str, event: str, data: Any, errors: Any) -> None:
        self.channel = channel
        self.event = event
        self.data = data
        self.errors = errors
        super().__init__(f"payload of {event!r} on {channel!r} does not match the model: {errors}")


class CallbackError(WsError):
    """A user callback raised while handling an event. Logged and reported; other subscribers and the
    connection are not affected. The original exception is ``__cause__``."""

    def __init__(self, channel: str | None, event: str | None, error: BaseException) -> None:
        self.channel = channel
        self.event = event
        self.error = error
        super().__init__(f"callback for {event!r} on {channel!r} raised {type(error).__name__}: {error}")


# --- the embedded server ----------------------------------------------------------------------------


class ServerRequestError(WsError):
    """The embedded server refuses a request; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class SignatureError(ServerRequestError):
    """A signed HTTP API request is refused (missing or wrong ``auth_signature``, expired timestamp,
    bad ``body_md5``); sign it the way Pusher's server SDKs do."""


class HttpApiError(ServerRequestError):
    """An HTTP API request is valid HTTP but not a valid Pusher API call (bad event, unknown app...)."""


class HttpRequestError(ServerRequestError):
    """A request that is not valid HTTP/1.1 for the server (bad head, body too large...); the
    connection is closed after the answer."""


class ClusterError(WsError):
    """The embedded server cannot join its cluster: Redis is unreachable at start, or the URL is not a
    ``redis://`` / ``rediss://`` / ``unix://`` URL. Check ``--redis`` and that Redis is running."""
