"""Secrets stay secret, and TLS stays on.

The password, the IAM token, the Secret Key (AK/SK) and the security token never show in an
exception, a ``repr()``, a serialized trigger, XCom, or the output and log files of a full
``dag.test()`` run. TLS verification is on by default; plain ``http://`` only to loopback hosts or
with the explicit ``allow_http`` extra; credentials never follow a redirect.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ges._compat import secrets_masker
from airflow_provider_ges.auth import TOKEN_CACHE
from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.exceptions import GesApiError, GesAuthError
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook
from airflow_provider_ges.models import Token
from airflow_provider_ges.sensors.ges import GesBackupSensor
from airflow_provider_ges.triggers.ges import GesBackupTrigger
from tests.airflow.test_e2e import gate_dag, run
from tests.conftest import AIRFLOW_HOME, PASSWORD, TOKEN
from tests.helpers import BACKUPS_URL, TOKEN_URL, backup, token_reply
from tests.reliability.test_sensor import flip_after_lists

SECURITY_TOKEN = "gQpzZWN1cml0eS10b2tlbi12YWx1ZS0xMjM0NTY3ODkw"


@pytest.fixture
def issued_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token value the cache takes (what the hooks send as X-Auth-Token)."""
    tokens: list[str] = []
    put = TOKEN_CACHE.put

    def recording_put(key: Any, token: Token) -> str:
        tokens.append(token.value)
        return put(key, token)

    monkeypatch.setattr(TOKEN_CACHE, "put", recording_put)
    return tokens


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        assert secret not in text, f"secret {secret[:6]}... leaked"


# --- reprs, exceptions, serialized triggers ------------------------------------------------------


def test_reprs_hold_no_secret(set_conn: Any, requests_mock: Any) -> None:
    set_conn(extra={"security_token": SECURITY_TOKEN, "max_retries": 0})
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, json={"backupCount": 1, "backupList": [backup(1)]})
    hook = GesHook()
    (found,) = hook.list_backups()
    token = Token(value=TOKEN, expires_at=datetime.now(timezone.utc))
    trigger = GesBackupTrigger(ges_conn_id="ges_default", gate={"graph_name": "g1"})
    sensor = GesBackupSensor(task_id="wait", graph_name="g1", newer_than=None, deferrable=False)
    shown = " ".join(
        [
            repr(hook),
            str(hook),
            repr(hook.config),
            str(hook.config),
            repr(GesAsyncHook()),
            repr(token),
            str(token),
            repr(trigger),
            json.dumps(trigger.serialize()),
            repr(sensor),
            repr(found),
            json.dumps(found.to_api()),
            repr(hook.session.headers),
        ]
    )
    assert_clean(shown, PASSWORD, TOKEN, SECURITY_TOKEN)


def test_exceptions_hold_no_secret(set_conn: Any, requests_mock: Any) -> None:
    set_conn(extra={"max_retries": 0})
    body = {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}
    requests_mock.post(TOKEN_URL, status_code=401, json=body)
    with pytest.raises(GesAuthError) as iam:
        GesHook().list_backups()
    requests_mock.post(TOKEN_URL, **token_reply())
    gateway = {
        "error_code": "APIGW.0301",
        "error_msg": "Incorrect IAM authentication information: token expires",
    }
    requests_mock.get(BACKUPS_URL, status_code=401, json=gateway)
    with pytest.raises(GesAuthError) as ges:
        GesHook().list_backups()
    requests_mock.get(BACKUPS_URL, status_code=503, text="busy")
    with pytest.raises(GesApiError) as busy:
        GesHook().list_backups()
    for err in (iam.value, ges.value, busy.value):
        text = " ".join([str(err), repr(err), repr(err.args), repr(vars(err))])
        assert_clean(text, PASSWORD, TOKEN)


@pytest.mark.parametrize(
    "extra",
    [
        {"security_token": [SECURITY_TOKEN]},
        {"proxies": '{"https": "http://user:Pr0xy-Passw0rd@proxy:3128"'},
    ],
    ids=["security_token", "proxies"],
)
def test_invalid_secret_bearing_extras_are_not_echoed(set_conn: Any, extra: dict[str, Any]) -> None:
    set_conn("ges_bad", extra=extra)
    with pytest.raises(ValueError) as err:
        GesHook("ges_bad").config  # noqa: B018
    assert_clean(str(err.value), SECURITY_TOKEN, "Pr0xy-Passw0rd")


@pytest.mark.ges_emulator(graphs=1, backups=3)
def test_trigger_error_event_holds_no_secret(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = ges_emulator.connection()
    conn["password"] = "Wrong-Passw0rd-for-the-trigger"
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))
    trigger = GesBackupTrigger(ges_conn_id="ges_default", gate={"graph_name": "g1"}, poll_interval=0.1)

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(collect(), 30))
    assert event["status"] == "error"
    assert_clean(json.dumps(event) + json.dumps(trigger.serialize()), "Wrong-Passw0rd-for-the-trigger")


def test_token_and_password_are_registered_with_the_secrets_masker(set_conn: Any, requests_mock: Any) -> None:
    """What Airflow's task-log processor redacts: the token, the password, the security token."""
    redact = secrets_masker().redact

    set_conn(extra={"security_token": SECURITY_TOKEN})
    requests_mock.post(TOKEN_URL, **token_reply())
    hook = GesHook()
    token = hook.get_token()
    line = f"careless: token={token} password={hook.config.password} sts={SECURITY_TOKEN}"
    redacted = str(redact(line))
    assert redacted.startswith("careless: token=***")
    assert_clean(redacted, TOKEN, PASSWORD, SECURITY_TOKEN)


# --- TLS and plain http ---------------------------------------------------------------------------


def test_tls_verification_is_on_by_default(ges_conn: Any) -> None:
    hook = GesHook()
    assert hook.config.verify is True
    assert hook.session.verify is True

    async def context() -> ssl.SSLContext:
        async with GesAsyncHook() as ahook:
            client = await ahook._get_client()
            return client._transport._pool._ssl_context  # type: ignore[attr-defined,no-any-return]

    ctx = asyncio.run(context())
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_tls_verification_off_only_when_asked(set_conn: Any) -> None:
    set_conn(extra={"verify": "false"})
    assert GesHook().session.verify is False


@pytest.mark.parametrize(
    ("host", "iam", "allowed"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", True),
        ("http://127.9.9.9", "http://localhost:1", True),
        ("http://[::1]:8080", "http://[::1]:8080", True),
        ("http://ges.example.com", "https://iam.example.com", False),
        ("HTTP://ges.example.com", "https://iam.example.com", False),
        ("http://localhost.evil.example", "https://iam.example.com", False),
        ("http://127.0.0.1.nip.io", "https://iam.example.com", False),
        ("http://127.0.0.1@evil.example", "https://iam.example.com", False),
        ("http://evil.example#@127.0.0.1", "https://iam.example.com", False),
        ("http://0.0.0.0:8080", "https://iam.example.com", False),
        ("http://10.0.0.5", "https://iam.example.com", False),
        ("https://ges.example.com", "http://iam.example.com", False),
    ],
)
def test_plain_http_only_to_loopback(set_conn: Any, host: str, iam: str, allowed: bool) -> None:
    set_conn("ges_x", host=host, extra={"iam_endpoint": iam})
    if allowed:
        GesHook("ges_x").config  # noqa: B018
        return
    with pytest.raises(ValueError, match="plain http"):
        GesHook("ges_x").config  # noqa: B018
    set_conn("ges_x", host=host, extra={"iam_endpoint": iam, "allow_http": True})
    GesHook("ges_x").config  # noqa: B018  the explicit opt-in


def test_credentials_never_follow_a_redirect(ges_conn: Any, requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, status_code=307, headers={"Location": "http://evil.example/token"})
    requests_mock.post("http://evil.example/token", **token_reply())
    with pytest.raises(GesApiError, match="HTTP 307"):
        GesHook(retry_base_delay=0).get_token()
    TOKEN_CACHE.clear()
    requests_mock.post(TOKEN_URL, **token_reply())
    requests_mock.get(BACKUPS_URL, status_code=302, headers={"Location": "http://evil.example/backups"})
    requests_mock.get("http://evil.example/backups", json={"backupCount": 0, "backupList": []})
    with pytest.raises(GesApiError, match="HTTP 302"):
        GesHook(retry_base_delay=0).list_backups()
    assert not [r for r in requests_mock.request_history if r.hostname == "evil.example"]


@pytest.mark.ges_emulator(graphs=1, backups=3)
def test_async_hook_does_not_follow_redirects(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def follows() -> bool:
        async with GesAsyncHook() as hook:
            return bool((await hook._get_client()).follow_redirects)

    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(ges_emulator.connection()))
    assert asyncio.run(follows()) is False


# --- a full DAG run: output, log files, XCom, the trigger table -----------------------------------


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


def log_files_text() -> str:
    logs = Path(AIRFLOW_HOME) / "logs"
    if not logs.exists():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())


def stored_rows_text(dag_id: str, run_id: str) -> str:
    """XCom values and serialized trigger kwargs as the metadata DB holds them."""
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id).all()
        triggers = session.query(Trigger).all()
        parts = [json.dumps(x.value, default=str) for x in xcoms]
        parts += [f"{t.classpath} {t.kwargs!r} {t.encrypted_kwargs}" for t in triggers]
    assert xcoms, "the run wrote no XCom to look at"
    return "\n".join(parts)


@pytest.fixture
def gate_night(ges_emulator: GesEmulator, airflow_db: None) -> Iterator[tuple[GesEmulator, datetime]]:
    logical_date = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    ges_emulator.add_graph("movies")
    tonight = ges_emulator.add_backup(
        "movies", status="backing_up", start=logical_date + timedelta(minutes=30)
    )
    flip = flip_after_lists(ges_emulator, tonight["id"], "success", lists=8)
    yield ges_emulator, logical_date
    flip.join()


@pytest.mark.ges_emulator(graphs=0, backups=0, faults="503:every=4,ges7006:every=7")
@pytest.mark.parametrize("auth_type", ["password", "aksk"])
def test_full_dag_run_leaks_no_secret(
    gate_night: tuple[GesEmulator, datetime],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    issued_tokens: list[str],
    auth_type: str,
) -> None:

    emu, logical_date = gate_night
    conn = emu.connection("aksk" if auth_type == "aksk" else "password")
    if auth_type == "aksk":
        conn["extra"]["security_token"] = SECURITY_TOKEN
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))
    monkeypatch.setattr("airflow_provider_ges.plans.random.uniform", lambda low, high: min(high, 0.01))

    dag_run, states, xcoms = run(gate_dag("deferrable", poke_interval=0.2), logical_date=logical_date)

    assert states == {"wait_for_backup": "success", "run_etl": "success"}
    out, err = capfd.readouterr()
    assert "retrying in" in out + err  # the faults did happen, and were logged
    assert "ETL reads graph 'movies'" in out  # dag.test writes the task logs here, not to files
    secrets = [conn["password"], *issued_tokens]
    if auth_type == "aksk":
        secrets.append(SECURITY_TOKEN)
        assert not issued_tokens and emu.counters["create_token"] == 0
    else:
        assert issued_tokens and emu.counters["tokens_issued"] == len(issued_tokens)
    everything = "\n".join([out, err, log_files_text(), stored_rows_text(dag_run.dag_id, dag_run.run_id)])
    everything += json.dumps(xcoms, default=str)
    assert_clean(everything, *secrets)
