"""Hostile input: unsafe path parameters, garbage replies, connection extras of the wrong type.

Path parameters are refused before any request with a ``ValueError`` naming the parameter. Whatever
a server sends, the parsers raise only ``GesApiError`` (or a subclass) with a message that says
which call, what status and what was wrong: never a raw pydantic, JSON, Unicode, overflow or
recursion error. A wrong connection field is a ``ValueError`` naming the field.
"""

from __future__ import annotations

import asyncio
import json
import math
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.endpoints import Request, check_path_param, list_backups_request
from airflow_provider_ges.exceptions import GesApiError
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook
from airflow_provider_ges.models import Backup, BackupPage, Token
from airflow_provider_ges.replies import Response, parse_json, parse_token, raise_for_error
from tests.conftest import PASSWORD, PROJECT

UNSAFE = [
    "../x",
    "..",
    ".",
    "a/b",
    "/",
    "a?b",
    "a#b",
    "a%2fb",
    "%2e%2e",
    " a",
    "a ",
    "a b",
    "a\tb",
    "a\nb",
    "a\rb",
    "a\x00b",
    "a\x7fb",
    "a\u2028b",
    "ä",
    "a;b",
    "a\\b",
    "a&b=c",
    "",
    "x" * 129,
]


# --- path parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", UNSAFE)
def test_unsafe_graph_id_is_refused_before_any_request_sync_and_async(
    ges_conn: Any, requests_mock: Any, bad: str
) -> None:
    with pytest.raises(ValueError, match="graph_id"):
        list(GesHook().iter_backups(bad))

    async def alist() -> None:
        async with GesAsyncHook() as hook:
            await hook.list_backups(bad)

    with pytest.raises(ValueError, match="graph_id"):
        asyncio.run(alist())
    assert requests_mock.call_count == 0  # not even the token


@pytest.mark.parametrize("bad", [b for b in UNSAFE if b.strip() == b and b])
def test_unsafe_project_id_from_the_connection_is_refused(
    set_conn: Any, requests_mock: Any, bad: str
) -> None:
    set_conn(extra={"project_id": bad})
    with pytest.raises(ValueError, match="project_id") as err:
        GesHook(retry_base_delay=0).list_backups()
    assert PASSWORD not in str(err.value)
    ok, message = GesHook().test_connection()
    assert not ok and "project_id" in message

    async def alist() -> None:
        async with GesAsyncHook() as hook:
            await hook.list_backups()

    with pytest.raises(ValueError, match="project_id"):
        asyncio.run(alist())
    assert requests_mock.call_count == 0


@pytest.mark.ges_emulator(graphs=1, backups=3)
@pytest.mark.parametrize("bad", ["../graphs", "x/../../v3", "%2e%2e%2f", "id?offset=5"])
def test_unsafe_graph_id_never_reaches_the_emulator(ges_connection: GesEmulator, bad: str) -> None:
    with pytest.raises(ValueError, match="graph_id"):
        GesHook().list_backups(bad)
    assert ges_connection.counters["requests"] == 0


@settings(max_examples=200, deadline=None)
@given(project=st.text(max_size=140), graph=st.text(max_size=140))
def test_path_parameters_either_refused_or_confined_to_one_segment(project: str, graph: str) -> None:
    """Any string: a ValueError naming the parameter, or a URL whose path is exactly the template."""

    class Cfg:
        endpoint = "https://ges.example.com"
        project_id = project
        api_version = "v1"

    try:
        request = list_backups_request(Cfg(), graph, 0, 10)  # type: ignore[arg-type]
    except ValueError as err:
        assert "project_id" in str(err) or "graph_id" in str(err)
        return
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc) == ("https", "ges.example.com")
    assert parts.path == f"/v1.0/{project}/graphs/{graph}/backups"
    assert parts.fragment == "" and parts.query == "offset=0&limit=10"
    assert project not in ("", ".", "..") and graph not in ("", ".", "..")


@pytest.mark.parametrize("value", [None, 5, b"abc", ["a"]])
def test_path_parameter_of_the_wrong_type(value: Any) -> None:
    with pytest.raises(ValueError, match="graph_id"):
        check_path_param("graph_id", value)


# --- replies: only GesApiError, with a message a user can act on ----------------------------------

REQUEST = Request("GET", "https://ges.example.com", f"/v1.0/{PROJECT}/graphs/backups", {"offset": 0})
TOKEN_REQUEST = Request("POST", "https://iam.example.com", "/v3/auth/tokens")

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
JUNK = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=40,
)
BACKUP_KEYS = [
    "id",
    "name",
    "backupMethod",
    "graphId",
    "graph_name",
    "graphName",
    "graphStatus",
    "status",
    "startTimestamp",
    "startTime",
    "endTimestamp",
    "endTime",
    "size",
    "duration",
    "encrypted",
]
TIMES = st.sampled_from(
    [
        "2026-01-01T00:00:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-13-45",
        "",
        "\x00",
        "2026-01-01T00:00:00+99:00",
    ]
)
NUMBERS = st.sampled_from([0, -1, 2**63, -(2**63), 10**20, 1e300, -1e300, 1.5, 253402300800000])
BACKUPISH = st.fixed_dictionaries(
    {},
    optional={key: JUNK | TIMES | NUMBERS for key in BACKUP_KEYS},
)
PAGEISH = st.fixed_dictionaries(
    {},
    optional={
        "backupCount": JUNK | NUMBERS,
        "backup_count": JUNK | NUMBERS,
        "backupList": st.lists(BACKUPISH, max_size=4) | JUNK,
        "backup_list": st.lists(BACKUPISH, max_size=4) | JUNK,
        "errorCode": JUNK,
        "errorMessage": JUNK,
        "error_code": JUNK,
        "error_msg": JUNK,
        "error": JUNK | st.fixed_dictionaries({}, optional={"code": JUNK, "message": JUNK}),
    },
)
TOKENISH = st.fixed_dictionaries(
    {},
    optional={"token": JUNK | st.fixed_dictionaries({}, optional={"expires_at": JUNK | TIMES | NUMBERS})},
)
STATUSES = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504, 599])
HEADER_TEXT = st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": HEADER_TEXT
        | st.sampled_from(
            ["nan", "inf", "-1", "1e999", "Mon, 01 Jan 99999 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 -2359"]
        ),
        "X-Subject-Token": HEADER_TEXT,
    },
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


BODIES = (
    st.binary(max_size=200)
    | JUNK.map(dumps)
    | PAGEISH.map(dumps)
    | TOKENISH.map(dumps)
    | st.text(max_size=100).map(lambda s: s.encode("utf-16"))
    | st.sampled_from(
        [
            b"",
            b"[" * 100_000,
            b'{"a":' * 50_000,
            b"\xff\xfe\xfd",
            b'{"backupCount": 1' + b"0" * 5000 + b"}",
            b'{"backupCount": NaN, "backupList": [{"id": "a", "size": Infinity}]}',
            b"<html><body>502 Bad Gateway</body></html>",
            b'{"backupList": [{"id": "a", "startTime": "0001-01-01T00:00:00+01:00"}]}',
            b'{"token": {"expires_at": "9999-12-31T23:59:59-01:00"}}',
            b'{"error_msg": ' + b"[" * 900 + b"]" * 900 + b', "error_code": "X"}',
        ]
    )
)


def check_error(err: GesApiError, request: Request, status: int) -> None:
    message = str(err)
    assert message and len(message) < 1200
    assert f"{request.method} {request.path}" in message
    assert f"HTTP {status}" in message
    assert err.status_code == status


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=STATUSES, headers=HEADERS, body=BODIES)
@example(
    status=200, headers={}, body=b'{"backupList": [{"id": "a", "endTime": "9999-12-31T23:59:59-01:00"}]}'
)
@example(
    status=201,
    headers={"X-Subject-Token": "t"},
    body=b'{"token": {"expires_at": "0001-01-01T00:00:00+01:00"}}',
)
def test_parsers_raise_only_ges_api_errors(status: int, headers: dict[str, str], body: bytes) -> None:
    response = Response(status, headers, body)
    for request, parse in (
        (REQUEST, partial(parse_json, BackupPage)),
        (TOKEN_REQUEST, parse_token),
        (REQUEST, raise_for_error),
    ):
        try:
            result = parse(request, response)  # type: ignore[operator]
        except GesApiError as err:
            check_error(err, request, status)
            if err.retry_after is not None:
                assert math.isfinite(err.retry_after) and err.retry_after >= 0
            continue
        # what passes is a 2xx, and typed
        assert 200 <= status < 300
        if parse is raise_for_error:
            assert result is None
        elif parse is not parse_token:
            assert isinstance(result, BackupPage)
            assert all(isinstance(b, Backup) and b.id for b in result.items)
            assert result.backup_count is None or result.backup_count >= 0
        elif parse is parse_token:
            assert isinstance(result, Token) and result.expires_at.tzinfo is not None
            assert result.value not in repr(result)


@settings(max_examples=80, deadline=None)
@given(page=PAGEISH)
def test_backup_pages_parse_or_say_which_field(page: dict[str, Any]) -> None:
    try:
        parsed = parse_json(BackupPage, REQUEST, Response(200, {}, dumps(page)))
    except GesApiError as err:
        check_error(err, REQUEST, 200)
        assert "unexpected reply" in str(err) or err.error_code or err.error_message
        return
    for backup in parsed.items:
        backup.to_api()  # what goes to XCom always serializes
        json.dumps(backup.to_api())


def test_garbled_field_is_named_in_the_message() -> None:
    body = b'{"backupCount": 2, "backupList": [{"id": "a"}, {"id": "b", "startTimestamp": "soon"}]}'
    with pytest.raises(GesApiError) as err:
        parse_json(BackupPage, REQUEST, Response(200, {}, body))
    assert "backupList.1.startTimestamp" in str(err.value)
    assert err.value.transient  # a garbled page is retried before it is reported


def test_times_out_of_range_are_kept_as_text_not_a_crash() -> None:
    body = b'{"backupList": [{"id": "a", "startTime": "0001-01-01T00:00:00+01:00"}]}'
    (backup,) = parse_json(BackupPage, REQUEST, Response(200, {}, body)).items
    assert backup.start_time is None and backup.start_time_text == "0001-01-01T00:00:00+01:00"


# --- connection extras of the wrong type ----------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"timeout": 0}, "extra 'timeout'"),
        ({"timeout": "NaN"}, "extra 'timeout'"),
        ({"timeout": [5]}, "extra 'timeout'"),
        ({"timeout": "1e400"}, "extra 'timeout'"),
        ({"max_retries": 2.5}, "extra 'max_retries'"),
        ({"max_retries": "many"}, "extra 'max_retries'"),
        ({"max_retries": 51}, "extra 'max_retries'"),
        ({"verify": 2}, "extra 'verify"),
        ({"verify": ["/etc/ssl"]}, "extra 'verify"),
        ({"allow_http": "maybe"}, "extra 'allow_http'"),
        ({"proxies": ["http://proxy:3128"]}, "extra 'proxies'"),
        ({"proxies": {"https": 3128}}, "extra 'proxies"),  # 'proxies' or 'proxies.https'
        ({"project_id": 123}, "extra 'project_id'"),
        ({"project_id": ["x"]}, "extra 'project_id'"),
        ({"domain_name": {}}, "extra 'domain_name'"),
        ({"region": 5}, "extra 'region'"),
        ({"iam_endpoint": 5}, "extra 'iam_endpoint'"),
        ({"iam_endpoint": "iam.example.com"}, "extra 'iam_endpoint' must be an http(s) URL"),
        ({"auth_type": ""}, "extra 'auth_type'"),
        ({"auth_type": 1}, "extra 'auth_type'"),
        ({"auth_type": "PASSWORD"}, "extra 'auth_type'"),
    ],
)
def test_extras_of_the_wrong_type_name_the_field(
    set_conn: Any, requests_mock: Any, extra: dict[str, Any], named: str
) -> None:
    set_conn("ges_bad", extra=extra)
    with pytest.raises(ValueError) as err:
        GesHook("ges_bad").list_backups()
    assert "GES connection 'ges_bad'" in str(err.value) and named in str(err.value)
    assert PASSWORD not in str(err.value)
    assert requests_mock.call_count == 0
    ok, message = GesHook("ges_bad").test_connection()
    assert not ok and named in message


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "5"])
def test_extra_that_is_not_an_object(monkeypatch: pytest.MonkeyPatch, requests_mock: Any, raw: str) -> None:
    """Airflow 3.2+ hands such a connection over; 3.1 already refuses it as undefined."""
    from airflow.sdk import Connection

    conn = Connection(conn_id="ges_bad", conn_type="ges", host="https://ges.example.com", extra=raw)
    monkeypatch.setattr(GesHook, "get_connection", classmethod(lambda cls, conn_id: conn))
    with pytest.raises(ValueError, match="extra must be a JSON object"):
        GesHook("ges_bad").list_backups()
    assert requests_mock.call_count == 0


def test_verify_path_that_does_not_exist_is_named(set_conn: Any, requests_mock: Any) -> None:
    set_conn("ges_bad", extra={"verify": "/no/such/ca-bundle.pem"})
    with pytest.raises(ValueError, match="extra 'verify'"):
        GesHook("ges_bad").list_backups()
    assert requests_mock.call_count == 0
