"""The signer against the official SDK's ``Signer``, byte for byte, and its verifier."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_ges.signer import (
    EMPTY_BODY_SHA256,
    SignatureError,
    canonical_uri,
    parse_authorization,
    sign_request,
    verify_signature,
)

sdk_credentials = pytest.importorskip("huaweicloudsdkcore.auth.credentials")
sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")

AK = "HPUAEXAMPLEAK0000001"
SK = "sEcReTkEy/with+odd=chars~0123456789abcdef"
PROJECT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
NOW = datetime(2024, 5, 23, 8, 30, 15, tzinfo=timezone.utc)
SDK_DATE = "20240523T083015Z"
HOST = "ges.cn-north-4.myhuaweicloud.com"


def sdk_sign(
    method: str,
    path: str,
    query: list[tuple[str, object]],
    headers: dict[str, str],
    body: bytes | None,
    *,
    host: str = HOST,
    project_id: str | None = PROJECT,
    security_token: str | None = None,
) -> tuple[dict[str, str], str]:
    """Sign with the official SDK (fixed X-Sdk-Date); return its headers and the URL it would send."""
    creds = sdk_credentials.BasicCredentials(AK, SK, project_id)
    if security_token is not None:
        creds.with_security_token(security_token)
    request = sdk_request.SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params={**headers, "X-Sdk-Date": SDK_DATE},
        body=body,
    )
    signed = creds.sign_request(request)
    return dict(signed.header_params), f"https://{host}{signed.uri}"


def ours(
    method: str, url: str, headers: dict[str, str], body: bytes | None, **kw: str | None
) -> dict[str, str]:
    return sign_request(method, url, ak=AK, sk=SK, body=body or b"", headers=headers, now=NOW, **kw)


SDK_HEADERS = {"User-Agent": "huaweicloud-usdk-python/3.0", "Content-Type": "application/json"}

CASES = [
    pytest.param(
        "GET", "/v1.0/p/graphs/backups", [("offset", 0), ("limit", 10)], SDK_HEADERS, None, id="list"
    ),
    pytest.param("GET", "/v1.0/p/graphs/backups", [], SDK_HEADERS, None, id="no-query"),
    pytest.param("POST", "/v1.0/p/graphs/g1/backups", [], SDK_HEADERS, None, id="post-no-body"),
    pytest.param("POST", "/v1.0/p/graphs", [], SDK_HEADERS, b'{"graph": {"name": "x"}}', id="post-json"),
    pytest.param("PUT", "/v1.0/p/x", [], {"Content-Type": "text/plain"}, b"plain", id="unsigned-payload"),
    pytest.param("DELETE", "/v1.0/p/graphs/g/backups/b", [], {}, None, id="delete"),
    pytest.param(
        "GET",
        "/v1.0/p/a%20b/%E5%9B%BE/~tilde/it's(1)*!/",
        [("q", "a b+c&d=e"), ("empty", ""), ("z", "é~"), ("a", "2"), ("a", "1"), ("flag", True)],
        SDK_HEADERS,
        None,
        id="odd-path-and-query",
    ),
    pytest.param(
        "get",
        "/v1.0/p/x",
        [],
        {"X-Custom": "  padded value  ", "X_Under": "skipped", "x-lower": "Ünïcode"},
        None,
        id="header-trimming-unicode-underscore",
    ),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "body"), CASES)
def test_matches_sdk(
    method: str, path: str, query: list[tuple[str, object]], headers: dict[str, str], body: bytes | None
) -> None:
    expected, url = sdk_sign(method, path, query, dict(headers), body)
    assert ours(method, url, dict(headers), body, project_id=PROJECT) == expected


def test_matches_sdk_with_temporary_credentials_and_port() -> None:
    expected, url = sdk_sign(
        "GET",
        "/v1.0/p/graphs/backups",
        [("limit", 5)],
        dict(SDK_HEADERS),
        None,
        host="127.0.0.1:8080",
        security_token="sts-token/abc=+",
    )
    got = ours("GET", url, dict(SDK_HEADERS), None, project_id=PROJECT, security_token="sts-token/abc=+")
    assert got == expected
    assert "x-security-token" in parse_authorization(got["Authorization"])[1]


def test_matches_sdk_without_project_id() -> None:
    expected, url = sdk_sign("GET", "/v3/projects", [], dict(SDK_HEADERS), None, project_id=None)
    got = ours("GET", url, dict(SDK_HEADERS), None)
    assert got == expected
    assert "X-Project-Id" not in got


def test_form_encoded_url_signs_like_the_sdk() -> None:
    """A URL written with ``+`` for spaces and unsorted keys signs as the SDK's canonical form does."""
    expected, _ = sdk_sign("GET", "/v1.0/p/x", [("b", "x y"), ("a", "1")], {}, None)
    got = ours(
        "GET",
        "https://" + HOST + "/v1.0/p/x?" + urlencode({"b": "x y", "a": "1"}),
        {},
        None,
        project_id=PROJECT,
    )
    assert got["Authorization"] == expected["Authorization"]


def test_existing_date_and_host_are_kept() -> None:
    got = sign_request("GET", "https://h/x", ak=AK, sk=SK, headers={"x-sdk-date": SDK_DATE, "host": "other"})
    assert got["x-sdk-date"] == SDK_DATE and got["host"] == "other"
    assert "X-Sdk-Date" not in got and "Host" not in got


def test_requires_keys() -> None:
    with pytest.raises(ValueError, match="required"):
        sign_request("GET", "https://h/x", ak="", sk=SK)


def test_canonical_uri() -> None:
    assert canonical_uri("/v1.0/p/graphs") == "/v1.0/p/graphs/"
    assert canonical_uri("/a%20b/c/") == "/a%20b/c/"
    assert canonical_uri("/") == "/"


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12)
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=10).filter(
    lambda n: n not in {"host", "x-sdk-date", "x-project-id", "authorization", "content-type", "user-agent"}
)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    segments=st.lists(_text, min_size=1, max_size=4),
    query=st.lists(st.tuples(_text.filter(bool), _text), max_size=5),
    headers=st.dictionaries(_names, _text.map(str.strip).filter(bool), max_size=4),
    body=st.binary(max_size=40),
)
def test_matches_sdk_property(
    method: str, segments: list[str], query: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    expected, url = sdk_sign(method, path, query, {**SDK_HEADERS, **headers}, body or None)
    assert ours(method, url, {**SDK_HEADERS, **headers}, body, project_id=PROJECT) == expected
    # The same request written by hand: query in reverse order, encoded another way.
    own_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in reversed(query))
    own_url = f"https://{HOST}{path}" + (f"?{own_query}" if query else "")
    assert ours(method, own_url, {**SDK_HEADERS, **headers}, body, project_id=PROJECT) == expected


# --- verification -------------------------------------------------------------------------------------


def _server_view(url: str, headers: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """What a server sees: raw path, raw query and header values decoded from the wire as UTF-8."""
    rest = url.split("://", 1)[1]
    target = rest[rest.index("/") :]
    path, _, query = target.partition("?")
    decoded = {k: v.encode("iso-8859-1").decode("utf-8") for k, v in headers.items()}
    return path, query, decoded


def _secrets(ak: str) -> str | None:
    return SK if ak == AK else None


def test_verify_accepts_sdk_signed_request() -> None:
    headers, url = sdk_sign("GET", "/v1.0/p/a%20b/x", [("q", "é z"), ("limit", 3)], dict(SDK_HEADERS), None)
    path, query, seen = _server_view(url, headers)
    assert verify_signature("GET", path, query, seen, b"", _secrets, now=NOW) == AK


def test_verify_round_trip_with_body() -> None:
    url = "http://127.0.0.1:9/v1.0/p/graphs?x=1"
    headers = sign_request("POST", url, ak=AK, sk=SK, body=b'{"a": 1}', headers={"X-Note": "ü"}, now=NOW)
    path, query, seen = _server_view(url, headers)
    assert verify_signature("POST", path, query, seen, b'{"a": 1}', _secrets, now=NOW) == AK


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(path="/v1.0/p/graphz"), "mismatch"),
        (lambda r: r.update(query="x=2"), "mismatch"),
        (lambda r: r.update(body=b'{"a": 2}'), "mismatch"),
        (lambda r: r.update(method="PUT"), "mismatch"),
        (lambda r: r["headers"].update({"X-Note": "tampered"}), "mismatch"),
        (lambda r: r["headers"].pop("X-Note"), "not in the request"),
        (lambda r: r["headers"].pop("Authorization"), "no Authorization"),
        (lambda r: r.update(now=NOW + timedelta(minutes=16)), "too far"),
        (lambda r: r.update(now=NOW - timedelta(minutes=16)), "too far"),
        (lambda r: r.update(secret_for_ak=lambda ak: None), "unknown access key"),
        (lambda r: r.update(secret_for_ak=lambda ak: "wrong-secret"), "mismatch"),
        (lambda r: r["headers"].update({"X-Sdk-Date": "yesterday"}), "form"),
        (
            lambda r: r["headers"].update(
                Authorization=r["headers"]["Authorization"].replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3")
            ),
            "unsupported",
        ),
        (
            lambda r: r["headers"].update(
                Authorization=r["headers"]["Authorization"].replace(";x-sdk-date", "")
            ),
            "not signed",
        ),
        (lambda r: r["headers"].update(Authorization="SDK-HMAC-SHA256 Access=a"), "no SignedHeaders"),
    ],
)
def test_verify_rejects(change: Callable[[dict[str, Any]], object], message: str) -> None:
    url = "http://127.0.0.1:9/v1.0/p/graphs?x=1"
    headers = sign_request("POST", url, ak=AK, sk=SK, body=b'{"a": 1}', headers={"X-Note": "n"}, now=NOW)
    path, query, seen = _server_view(url, headers)
    req: dict[str, Any] = {
        "method": "POST",
        "path": path,
        "query": query,
        "headers": seen,
        "body": b'{"a": 1}',
    }
    req.update(secret_for_ak=_secrets, now=NOW)
    assert verify_signature(**req) == AK
    change(req)
    with pytest.raises(SignatureError, match=message):
        verify_signature(**req)


def test_verify_within_skew_and_naive_now() -> None:
    url = "http://h/x"
    headers = sign_request("GET", url, ak=AK, sk=SK, now=NOW)
    path, query, seen = _server_view(url, headers)
    naive = (NOW + timedelta(minutes=14)).replace(tzinfo=None)
    assert verify_signature("GET", path, query, seen, b"", _secrets, now=naive) == AK


def test_empty_body_hash_ignores_content_sha_header() -> None:
    url = "http://h/x"
    headers = sign_request("GET", url, ak=AK, sk=SK, headers={"Content-Type": "text/plain"}, now=NOW)
    assert headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    path, query, seen = _server_view(url, headers)
    assert verify_signature("GET", path, query, seen, b"", _secrets, now=NOW) == AK
    assert EMPTY_BODY_SHA256.startswith("e3b0c442")
