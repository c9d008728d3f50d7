"""AK/SK auth end to end against the emulator (which verifies SDK-HMAC-SHA256 signatures), and
the connection test's answers for what a user gets wrong."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ges.emulator import GesEmulator
from airflow_provider_ges.exceptions import GesAuthError
from airflow_provider_ges.hooks.ges import GesAsyncHook, GesHook
from airflow_provider_ges.token_cache import cache_dir


def use(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))


@pytest.mark.ges_emulator(graphs=2, backups=25, seed=3)
def test_aksk_lists_every_backup_with_no_token_call(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(monkeypatch, ges_emulator.connection("aksk"))
    monkeypatch.setenv("GES_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    ids = [b.id for b in GesHook().iter_backups(page_size=10)]
    assert sorted(ids) == sorted(b["id"] for b in ges_emulator.backups())
    assert ges_emulator.counters["list_backups"] == 3
    assert ges_emulator.counters["create_token"] == 0
    assert not cache_dir().exists()  # no token, so no token file either


@pytest.mark.ges_emulator(graphs=2, backups=25, seed=3)
def test_aksk_from_the_async_hook(ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, ges_emulator.connection("aksk"))
    graph = ges_emulator.graphs()[0]["id"]

    async def listing() -> list[str]:
        async with GesAsyncHook() as hook:
            return [b.id for b in await hook.list_backups(graph, page_size=4)]

    expected = {b["id"] for b in ges_emulator.backups(graph)}
    assert set(asyncio.run(listing())) == expected
    assert ges_emulator.counters["create_token"] == 0


@pytest.mark.ges_emulator(graphs=1, backups=3)
def test_wrong_secret_key_fails_at_once(ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = ges_emulator.connection("aksk")
    conn["password"] = "not-the-secret-key-0123456789"
    use(monkeypatch, conn)
    with pytest.raises(GesAuthError) as err:
        GesHook().list_backups()
    assert err.value.status_code == 401 and err.value.error_code == "APIGW.0301"
    assert ges_emulator.counters["auth_failures"] == 1  # never retried: five failures lock the AK
    assert "not-the-secret-key" not in str(err.value)


@pytest.mark.ges_emulator(graphs=1, backups=7)
@pytest.mark.parametrize("auth_type", ["password", "aksk"])
def test_connection_test_succeeds(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch, auth_type: str
) -> None:
    use(monkeypatch, ges_emulator.connection(auth_type))  # type: ignore[arg-type]
    ok, message = GesHook().test_connection()
    assert ok, message
    assert "7 backups" in message
    assert ges_emulator.counters["list_backups"] == 1


@pytest.mark.ges_emulator(graphs=1, backups=1)
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"password": "Wrong-Passw0rd"}, "check login, password"),
        ({"extra": {"project_id": "ffffffffffffffffffffffffffffffff"}}, "project_id"),
        ({"host": "http://127.0.0.1:9", "extra": {"iam_endpoint": "http://127.0.0.1:9"}}, "Cannot reach"),
        ({"extra": {"project_id": ""}}, "extra 'project_id' is required"),
        ({"extra": {"timeout": "soon"}}, "extra 'timeout' is invalid"),
    ],
)
def test_connection_test_says_what_to_fix(
    ges_emulator: GesEmulator, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], expected: str
) -> None:
    conn = ges_emulator.connection()
    conn.update({k: v for k, v in change.items() if k != "extra"})
    conn["extra"] = {**conn["extra"], **change.get("extra", {}), "max_retries": 0}
    use(monkeypatch, conn)
    ok, message = GesHook().test_connection()
    assert not ok
    assert expected in message
    assert ges_emulator.password not in message and "Wrong-Passw0rd" not in message


def test_connection_test_reports_tls_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_garbage() -> None:  # not TLS: the handshake fails
        conn, _ = server.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    use(
        monkeypatch,
        {
            "conn_type": "ges",
            "host": f"https://127.0.0.1:{port}",
            "login": "AK",
            "password": "SK-secret-value",
            "extra": {"auth_type": "aksk", "project_id": "p1", "max_retries": 0},
        },
    )
    ok, message = GesHook().test_connection()
    server.close()
    assert not ok and "TLS" in message
