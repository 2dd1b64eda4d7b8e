"""Pusher request signing (HTTP API) and channel/user auth signatures, verified in constant time.

The algorithm is the official SDKs': the query parameters other than ``auth_signature`` (values
decoded, keys lower-cased, sorted, joined as ``k=v`` with ``&`` and *not* re-escaped) make the
string ``METHOD\\nPATH\\nQUERY``, whose HMAC-SHA256 with the app secret, in hex, is ``auth_signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from quvel_ws.errors import SignatureError

#: How far ``auth_timestamp`` may be from the server clock, in seconds (Pusher's value).
TIMESTAMP_WINDOW = 600


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    query = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return f"{method.upper()}\n{path}\n{query}"


def sign_params(
    method: str,
    path: str,
    params: Mapping[str, str],
    *,
    key: str,
    secret: str,
    body: bytes = b"",
    timestamp: int | None = None,
) -> dict[str, str]:
    """Query parameters (including ``auth_signature``) that sign a request the way the SDKs do."""
    signed = {k.lower(): v for k, v in params.items()}
    signed.update(
        {
            "auth_key": key,
            "auth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "auth_version": "1.0",
            "body_md5": hashlib.md5(body).hexdigest(),
        }
    )
    signed["auth_signature"] = hmac_hex(secret, string_to_sign(method, path, signed))
    return signed


def verify_request(
    method: str,
    path: str,
    params: Mapping[str, str],
    body: bytes,
    *,
    key: str,
    secret: str,
    now: float | None = None,
) -> None:
    """Check a signed HTTP API request; raise :class:`SignatureError` with Pusher's status if it fails.

    ``params`` are the decoded query parameters. ``body_md5`` is required for a request with a body
    and, when present, must match (an empty body hashes too, as the SDKs send it on GET).
    """
    lowered = {k.lower(): v for k, v in params.items()}
    for required in ("auth_key", "auth_timestamp", "auth_signature"):
        if not lowered.get(required):
            raise SignatureError(
                401, f"Missing {required} query parameter: sign the request as Pusher's SDKs do"
            )
    if lowered["auth_key"] != key:
        raise SignatureError(401, "Unknown auth_key")
    version = lowered.get("auth_version", "1.0")
    if version != "1.0":
        raise SignatureError(400, f"Unsupported auth_version {version!r}; expected 1.0")
    raw_timestamp = lowered["auth_timestamp"]
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()) or len(raw_timestamp) > 12:
        raise SignatureError(400, "auth_timestamp must be an integer (seconds since the epoch)")
    timestamp = int(raw_timestamp)
    now = time.time() if now is None else now
    if abs(now - timestamp) > TIMESTAMP_WINDOW:
        raise SignatureError(
            401,
            f"Timestamp expired: Given timestamp ({timestamp}) not within {TIMESTAMP_WINDOW}s of server "
            f"time ({int(now)})",
        )
    if body or "body_md5" in lowered:
        expected_md5 = hashlib.md5(body).hexdigest()
        if not constant_time_equal(lowered.get("body_md5", ""), expected_md5):
            raise SignatureError(401, "body_md5 does not match the MD5 of the request body")
    given = lowered.pop("auth_signature")
    signed = string_to_sign(method, path, lowered)
    expected = hmac_hex(secret, signed)
    if not constant_time_equal(given, expected):
        raise SignatureError(
            401,
            f"Invalid signature: expected the HMAC SHA256 hex digest of {signed!r}",
        )


def channel_auth_string(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    return f"{socket_id}:{channel}" if channel_data is None else f"{socket_id}:{channel}:{channel_data}"


def user_auth_string(socket_id: str, user_data: str) -> str:
    return f"{socket_id}::user::{user_data}"


def check_auth(given: object, *, key: str, secret: str, to_sign: str) -> bool:
    """Does ``given`` equal ``key:HMAC(secret, to_sign)``? Constant time over the signature."""
    if not isinstance(given, str):
        return False
    expected = f"{key}:{hmac_hex(secret, to_sign)}"
    return constant_time_equal(given, expected)
