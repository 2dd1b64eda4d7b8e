"""Fuzzing the server's HTTP side: random request heads, paths, queries, headers and bodies.

Properties: every request gets a well-formed HTTP response whose status is a client error (4xx) or a
success, never a 500 and never a dropped connection without an answer; the server logs no error and
keeps serving (a health check after every example). Requests are also sent *correctly signed*
with random bodies, so the validation behind the signature check is fuzzed too.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from quvel_ws.errors import HttpApiError, HttpRequestError, SignatureError
from quvel_ws.server import ServerThread
from quvel_ws.server._http import validate_event
from quvel_ws.server._http11 import body_length, parse_head
from quvel_ws.server._signature import verify_request
from tests.fuzz.conftest import APP, ErrorLog
from tests.fuzz.test_server_frames import json_values
from tests.security.raw import signed_query

pytestmark = pytest.mark.slow

# --- strategies ------------------------------------------------------------------------------------------

header_text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n"), max_size=60
)
digits_like = st.sampled_from(
    [
        "0",
        "1",
        "10",
        "-1",
        "+5",
        " 7",
        "\u00b2",
        "\u0661",
        "1e3",
        "0x10",
        "9" * 30,
        "9" * 5000,
        "",
        "abc",
        "5, 5",
    ]
)
methods = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "get", "CONNECT"]
) | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10)
path_segments = st.sampled_from(
    [
        "apps",
        "1",
        "2",
        "events",
        "batch_events",
        "channels",
        "users",
        "terminate_connections",
        "presence-x",
        "news",
        "%2F",
        "%00",
        "..",
        "",
        "app",
        "app-key",
        "%ZZ",
        "\u00e9",
    ]
) | st.text(max_size=12)
paths = st.lists(path_segments, min_size=0, max_size=6).map(lambda parts: "/" + "/".join(parts))
query_keys = st.sampled_from(
    [
        "auth_key",
        "auth_timestamp",
        "auth_version",
        "body_md5",
        "auth_signature",
        "info",
        "filter_by_prefix",
        "socket_id",
        "protocol",
    ]
) | st.text(max_size=10)
query_values = st.sampled_from(
    [
        "app-key",
        "1.0",
        "2.0",
        str(int(time.time())),
        "user_count",
        "subscription_count",
        "presence-",
        "\u00b2",
        "9" * 400,
        "nan",
        "inf",
    ]
) | st.text(max_size=30)
queries = st.dictionaries(query_keys, query_values, max_size=6)
header_names = st.sampled_from(
    [
        "Content-Length",
        "Transfer-Encoding",
        "Expect",
        "Connection",
        "Upgrade",
        "Content-Type",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Host",
    ]
) | st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
headers = st.lists(st.tuples(header_names, header_text | digits_like), max_size=6)
event_objects = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values | st.text(max_size=210),
        "channel": json_values | st.text(max_size=30),
        "channels": json_values | st.lists(st.text(max_size=30), max_size=3),
        "data": json_values | st.text(max_size=100),
        "socket_id": json_values | st.text(max_size=20),
        "info": json_values | st.sampled_from(["user_count", "subscription_count", "x"]),
        "batch": json_values | st.lists(json_values, max_size=3),
    },
)
bodies = st.binary(max_size=300) | (json_values | event_objects).map(lambda v: json.dumps(v).encode())


# --- the parser functions on their own: only their typed errors ---------------------------------------------

UNIT_EXAMPLES = max(300, settings.get_profile("quvel-fuzz").max_examples)  # no I/O: cheap


@settings(settings.get_profile("quvel-fuzz"), max_examples=UNIT_EXAMPLES)
@given(
    head=st.binary(max_size=400)
    | st.builds(
        lambda m, p, q, h: (
            (f"{m} {p}?{urlencode(q)} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h))
            .rstrip("\r\n")
            .encode("latin-1", "replace")
        ),
        methods,
        paths,
        queries,
        headers,
    )
)
@example(head=b"POST / HTTP/1.1\r\nContent-Length: \xb2")
@example(head=b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000)
def test_parse_head_and_body_length_raise_only_http_errors(head: bytes) -> None:
    status = 200
    try:
        request = parse_head(head)
        body_length(request, 1024 * 1024)
    except HttpRequestError as exc:
        status = exc.status
    assert 200 <= status < 500


signature_params = (
    st.fixed_dictionaries(
        {
            "auth_key": st.sampled_from([APP.key, "other-key", ""]),
            "auth_timestamp": query_values | digits_like,
            "auth_signature": st.text(max_size=70) | st.just("0" * 64),
        },
        optional={
            "auth_version": st.sampled_from(["1.0", "2.0", ""]) | st.text(max_size=5),
            "body_md5": st.text(max_size=40),
            "info": query_values,
        },
    )
    | queries
)


@settings(settings.get_profile("quvel-fuzz"), max_examples=UNIT_EXAMPLES)
@given(method=methods, path=paths, params=signature_params, body=st.binary(max_size=100))
@example(
    method="GET",
    path="/apps/1/channels",
    body=b"",
    params={"auth_key": APP.key, "auth_timestamp": "9" * 400, "auth_signature": "x"},
)
def test_verify_request_raises_only_signature_errors(
    method: str, path: str, params: dict[str, str], body: bytes
) -> None:
    status = 200
    try:
        verify_request(method, path, params, body, key=APP.key, secret=APP.secret)
    except SignatureError as exc:
        status = exc.status
    assert status in {200, 400, 401, 403}


@settings(settings.get_profile("quvel-fuzz"), max_examples=UNIT_EXAMPLES)
@given(body=json_values | event_objects)
def test_validate_event_raises_only_api_errors(body: Any) -> None:
    try:
        event = validate_event(APP, body)
    except HttpApiError as exc:
        status = exc.status
    else:
        status = 200
        assert event.channels
        assert isinstance(event.name, str)
    assert 200 <= status < 500


# --- end to end against the running server ----------------------------------------------------------------


def raw_request(port: int, data: bytes) -> bytes:
    """Send ``data`` (then half-close) and return everything the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(answer: bytes) -> list[int]:
    """Status codes of every response in ``answer`` (keep-alive may give several)."""
    found = []
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            found.append(int(line.split(b" ", 2)[1]))
    return found


def healthy(server: ServerThread) -> None:
    answer = raw_request(server.port, b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(answer) == [200], answer[:200]


def check_answer(answer: bytes, request: bytes) -> None:
    codes = statuses(answer)
    assert codes, f"no HTTP answer to {request[:300]!r}"
    assert all(code < 500 for code in codes), f"{codes} for {request[:300]!r}: {answer[:300]!r}"


@settings(settings.get_profile("quvel-fuzz"))
@given(method=methods, path=paths, query=queries, head=headers, body=bodies)
def test_random_requests_get_client_errors_never_500(
    fuzz_server: ServerThread,
    server_errors: ErrorLog,
    method: str,
    path: str,
    query: dict[str, str],
    head: list[tuple[str, str]],
    body: bytes,
) -> None:
    target = quote(path, safe="/%") + ("?" + urlencode(query) if query else "")
    lines = [f"{method} {target} HTTP/1.1", "Host: fuzz"]
    if not any(k.lower() == "content-length" for k, _ in head):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in head]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body
    answer = raw_request(fuzz_server.port, request)
    if answer:  # a refused upgrade or a malformed head may close after its answer; silence is checked below
        check_answer(answer, request)
    assert server_errors.take() == []
    healthy(fuzz_server)


@settings(settings.get_profile("quvel-fuzz"))
@given(
    route=st.sampled_from(
        [
            "events",
            "batch_events",
            "channels",
            "channels/presence-x",
            "channels/presence-x/users",
            "channels/news",
            "users/1/terminate_connections",
            "channels/%ZZ",
            "channels/" + "c" * 201,
        ]
    ),
    method=st.sampled_from(["GET", "POST"]),
    body=bodies,
    extra=queries,
    app_id=st.sampled_from(["1", "9"]),
)
def test_signed_random_requests_get_client_errors_never_500(
    fuzz_server: ServerThread,
    server_errors: ErrorLog,
    route: str,
    method: str,
    body: bytes,
    extra: dict[str, str],
    app_id: str,
) -> None:
    """Correctly signed requests with random bodies and parameters reach the validation code."""
    path = f"/apps/{app_id}/{route}"
    extra = {
        k.lower(): v
        for k, v in extra.items()
        if k.lower() not in {"auth_key", "auth_timestamp", "auth_version", "body_md5", "auth_signature"}
    }
    query = signed_query(method, path, body, key=APP.key, secret=APP.secret, extra=extra)
    request = (
        f"{method} {path}?{query} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    answer = raw_request(fuzz_server.port, request)
    check_answer(answer, request)
    assert server_errors.take() == []
    healthy(fuzz_server)


# --- regressions found by these properties -----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
            id="superscript-two-content-length",
        ),
        pytest.param(
            b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
            id="5000-digit-content-length",
        ),
        pytest.param(
            b"GET /apps/1/channels?auth_key=app-key&auth_timestamp="
            + b"9" * 400
            + b"&auth_signature=x HTTP/1.1\r\nHost: x\r\n\r\n",
            id="huge-auth-timestamp",
        ),
    ],
)
def test_found_by_fuzzing(fuzz_server: ServerThread, server_errors: ErrorLog, request_bytes: bytes) -> None:
    answer = raw_request(fuzz_server.port, request_bytes)
    check_answer(answer, request_bytes)
    assert server_errors.take() == []
    healthy(fuzz_server)
