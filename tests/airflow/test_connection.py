"""The ges connection: defaults, derivations and a clear error for every bad field."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_ges.hooks.ges import GesHook
from tests.conftest import PASSWORD
from tests.helpers import TOKEN_URL


def config(conn_id: str = "ges_default") -> Any:
    return GesHook(conn_id).config


def test_defaults_and_derived_endpoints(set_conn: Any) -> None:
    set_conn(host=None)
    cfg = config()
    assert cfg.endpoint == "https://ges.cn-north-4.myhuaweicloud.com"
    assert cfg.iam_endpoint == "https://iam.cn-north-4.myhuaweicloud.com"
    assert (cfg.verify, cfg.timeout, cfg.max_retries, cfg.auth_type) == (True, 30.0, 5, "password")


def test_europe_and_global_iam(set_conn: Any) -> None:
    set_conn("ges_eu", host=None, extra={"region": "eu-west-101"})
    assert config("ges_eu").endpoint == "https://ges.eu-west-101.myhuaweicloud.eu"
    set_conn("ges_global", extra={"region": ""})
    assert config("ges_global").iam_endpoint == "https://iam.myhuaweicloud.com"


def test_host_with_port_and_no_scheme(set_conn: Any) -> None:
    set_conn(host="ges.example.internal", port=8443)
    assert config().endpoint == "https://ges.example.internal:8443"


def test_extras_from_the_ui_as_strings(set_conn: Any) -> None:
    set_conn(
        extra={
            "verify": "false",
            "timeout": "12",
            "max_retries": "2",
            "proxies": '{"https": "http://proxy:3128"}',
            "iam_endpoint": "",
        }
    )
    cfg = config()
    assert (cfg.verify, cfg.timeout, cfg.max_retries) == (False, 12.0, 2)
    assert cfg.proxies == {"https": "http://proxy:3128"}
    assert cfg.iam_endpoint == "https://iam.cn-north-4.myhuaweicloud.com"


def test_ca_bundle_path_is_kept(set_conn: Any, tmp_path: Any) -> None:
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    set_conn(extra={"verify": str(bundle)})
    assert config().verify == str(bundle)


@pytest.mark.parametrize(
    ("fields", "extra", "named"),
    [
        ({}, {"project_id": ""}, "extra 'project_id' is required"),
        ({"login": None}, {}, "login is required"),
        ({"password": None}, {}, "password is required"),
        ({}, {"domain_name": None}, "extra 'domain_name' is required"),
        ({"host": None}, {"region": None}, "host is required"),
        ({}, {"timeout": "soon"}, "extra 'timeout' is invalid"),
        ({}, {"timeout": -1}, "extra 'timeout' is invalid"),
        ({}, {"max_retries": -2}, "extra 'max_retries' is invalid"),
        ({}, {"auth_type": "kerberos"}, "extra 'auth_type' is invalid"),
        ({}, {"region": "Mars/1"}, "extra 'region' is invalid"),
        ({}, {"proxies": "not json"}, "extra 'proxies' is invalid"),
        ({"host": "ftp://ges.example.com"}, {}, "host must be an http(s) URL"),
        ({"host": "http://ges.example.com"}, {}, "host uses plain http"),
        ({}, {"iam_endpoint": "http://iam.example.com"}, "extra 'iam_endpoint' uses plain http"),
    ],
)
def test_bad_fields_are_named_before_any_call(
    set_conn: Any, requests_mock: Any, fields: dict[str, Any], extra: dict[str, Any], named: str
) -> None:
    set_conn("ges_bad", extra=extra, **fields)
    with pytest.raises(ValueError) as err:
        GesHook("ges_bad").list_backups()
    assert "GES connection 'ges_bad'" in str(err.value)
    assert named in str(err.value)
    assert PASSWORD not in str(err.value)
    assert requests_mock.call_count == 0


def test_http_allowed_on_loopback_or_when_asked(set_conn: Any) -> None:
    set_conn("ges_local", host="http://127.0.0.1:8080", extra={"iam_endpoint": "http://localhost:8080"})
    assert config("ges_local").endpoint == "http://127.0.0.1:8080"
    set_conn("ges_lan", host="http://ges.lan", extra={"allow_http": "true", "iam_endpoint": "http://iam.lan"})
    assert config("ges_lan").endpoint == "http://ges.lan"


def test_aksk_needs_no_domain(set_conn: Any) -> None:
    set_conn(login="AKEXAMPLE", extra={"auth_type": "aksk", "domain_name": None})
    assert config().auth_type == "aksk"


def test_hook_init_reads_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GesHook, "get_connection", lambda *a: pytest.fail("connection read in __init__"))
    hook = GesHook("whatever")
    assert hook.ges_conn_id == "whatever"
    assert repr(hook) == "GesHook(ges_conn_id='whatever')"


def test_connection_test_names_the_connection(set_conn: Any, requests_mock: Any) -> None:
    set_conn(extra={"project_id": None})
    ok, message = GesHook().test_connection()
    assert not ok and requests_mock.call_count == 0
    assert message.startswith("GES connection 'ges_default': extra 'project_id' is required")
    set_conn("ges_iam")
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": {"code": 401, "message": "wrong password"}})
    ok, message = GesHook("ges_iam", retry_base_delay=0).test_connection()
    assert not ok and message.startswith("GES connection 'ges_iam': Authentication failed")
    assert PASSWORD not in message


def test_iam_cache_extra(set_conn: Any) -> None:
    set_conn()
    assert config().iam_cache is True
    for off in (False, "false", "off", "0"):
        set_conn(extra={"iam_cache": off})
        assert config().iam_cache is False
    set_conn("ges_bad", extra={"iam_cache": "sometimes"})
    with pytest.raises(
        ValueError, match=r"GES connection 'ges_bad': extra 'iam_cache' is invalid .*'sometimes'"
    ):
        config("ges_bad")


@pytest.mark.parametrize(
    ("proxies", "problem"),
    [
        ('["http://proxy:3128"]', "valid dictionary"),
        ({"ftp": "http://proxy:3128"}, "keys must be one of http, https, all, got 'ftp'"),
        ({"https": "proxy:3128"}, "the 'https' proxy must be a URL such as http://proxy:3128"),
        ({"https": "http://user:hunter2@proxy:port"}, "the 'https' proxy must be a URL"),
        ({"all": "ftp://hunter2@proxy"}, "the 'all' proxy must be a URL"),
    ],
)
def test_proxies_must_map_schemes_to_urls(set_conn: Any, proxies: Any, problem: str) -> None:
    set_conn("ges_bad", extra={"proxies": proxies})
    with pytest.raises(ValueError) as err:
        config("ges_bad")
    assert "GES connection 'ges_bad': extra 'proxies" in str(err.value) and problem in str(err.value)
    assert "hunter2" not in str(err.value) and "(value hidden)" in str(err.value)


def test_proxies_of_every_kind_accepted(set_conn: Any) -> None:
    proxies = {
        "http": "http://proxy:3128",
        "https": "https://u:p@proxy.corp",
        "all": "socks5h://127.0.0.1:1080",
    }
    set_conn(extra={"proxies": proxies})
    assert config().proxies == proxies
