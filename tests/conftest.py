"""Shared test set-up: an isolated AIRFLOW_HOME, connections from env vars, a clean token cache."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports Airflow (its config and DB engine are fixed at import): a private home,
# a SQLite metadata DB and the example DAGs as the DAGs folder.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ges-tests-airflow-"))
EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "airflow_provider_ges" / "example_dags"
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        # The host's IAM token files (airflow_provider_ges.token_cache): this session's own, emptied
        # with the in-memory cache around every test; the processes tests start inherit it.
        "GES_TOKEN_CACHE_DIR": str(AIRFLOW_HOME / "token-cache"),
    }
)

ENDPOINT = "https://ges.cn-north-4.myhuaweicloud.com"
IAM = "https://iam.cn-north-4.myhuaweicloud.com"
PROJECT = "0123456789abcdef0123456789abcdef"
PASSWORD = "s3cret-Passw0rd!"
TOKEN = "MIIT-token-value-" + "x" * 64


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    """No token in memory or in the token files, before and after each test."""
    from airflow_provider_ges.auth import TOKEN_CACHE

    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


@pytest.fixture(autouse=True)
def restore_secrets_masker() -> Iterator[None]:
    """Take the secrets a test registered back out of Airflow's secrets masker afterwards.

    The masker recompiles one regex of every secret it holds on each new one: with the emulator's
    2 KB tokens that is about 10 ms per token already held, so tokens piling up over a test run
    make every later token slower to register (and timing-sensitive tests flaky)."""
    from airflow_provider_ges._compat import secrets_masker

    masker = secrets_masker()
    before = set(masker.patterns)
    yield
    if masker.patterns != before:
        masker.patterns = before
        masker.replacer = re.compile("|".join(before)) if before else None


SetConn = Callable[..., dict[str, Any]]


@pytest.fixture
def set_conn(monkeypatch: pytest.MonkeyPatch) -> SetConn:
    """Define a connection through ``AIRFLOW_CONN_<ID>`` (JSON), as Airflow reads it."""

    def _set(
        conn_id: str = "ges_default", *, extra: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        conn: dict[str, Any] = {
            "conn_type": "ges",
            "host": ENDPOINT,
            "login": "etl-user",
            "password": PASSWORD,
            "extra": {"project_id": PROJECT, "domain_name": "acme", "region": "cn-north-4"},
        }
        conn.update(fields)
        if extra is not None:
            conn["extra"] = {**conn["extra"], **extra}
        conn = {k: v for k, v in conn.items() if v is not None}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return _set


@pytest.fixture
def ges_conn(set_conn: SetConn) -> dict[str, Any]:
    """The default ``ges_default`` connection, fast retries."""
    return set_conn(extra={"max_retries": 3})


# --- the GES API version: every test on the emulator's connection runs on v1 and on v2 ------------

#: The versions the ``ges_connection`` tests run on (``GES_TEST_API_VERSIONS=v1`` in the matrix
#: cells that leave v2 out: scripts/matrix.sh).
API_VERSIONS = os.environ.get("GES_TEST_API_VERSIONS", "v1,v2").split(",")
#: Modules whose emulator tests are not about the API (the UI form, the plugin itself): v1 only.
V1_ONLY = {"tests.airflow.test_ui_browser", "tests.emulator.test_emulator_plugin"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ges_api_version" in metafunc.fixturenames:
        versions = ["v1"] if metafunc.module.__name__ in V1_ONLY else API_VERSIONS
        metafunc.parametrize("ges_api_version", versions, indirect=True)


@pytest.fixture
def ges_api_version(request: pytest.FixtureRequest) -> str:
    """The connection's ``api_version`` for this test."""
    return str(getattr(request, "param", "v1"))


@pytest.fixture
def ges_connection(ges_connection: Any, ges_api_version: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The plugin's ``ges_connection``, its connection on ``ges_api_version``."""
    if ges_api_version != "v1":  # v1: the plugin's connection as it is (the default api_version)
        conn = ges_connection.connection()
        conn["extra"]["api_version"] = ges_api_version
        monkeypatch.setenv("AIRFLOW_CONN_GES_DEFAULT", json.dumps(conn))
    return ges_connection
