"""The pytest plugin's fixtures, and that importing it stays cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from airflow_provider_ges.emulator import GesEmulator


def test_ges_emulator_fixture_is_running(ges_emulator: GesEmulator) -> None:
    url = f"{ges_emulator.url}/v1.0/{ges_emulator.project_id}/graphs/backups"
    response = requests.get(url, headers={"X-Auth-Token": ges_emulator.issue_token()}, timeout=5)
    assert response.json()["backupCount"] == 12 == len(ges_emulator.backups())
    assert len(ges_emulator.graphs()) == 2
    assert ges_emulator.backup_duration == 0.5


@pytest.mark.ges_emulator(backups=3, graphs=1, token_ttl=60)
def test_marker_passes_arguments(ges_emulator: GesEmulator) -> None:
    assert len(ges_emulator.backups()) == 3 and len(ges_emulator.graphs()) == 1
    assert ges_emulator.token_ttl == 60


def test_ges_connection_sets_the_env_var(ges_connection: GesEmulator) -> None:
    assert json.loads(os.environ["AIRFLOW_CONN_GES_DEFAULT"]) == ges_connection.connection()


def test_env_var_is_gone_after_the_test() -> None:
    assert "AIRFLOW_CONN_GES_DEFAULT" not in os.environ


def test_importing_the_plugin_is_cheap() -> None:
    code = (
        "import sys, airflow_provider_ges.emulator.pytest_plugin, airflow_provider_ges.emulator; "
        "print(sorted(m for m in ('airflow', 'requests', 'pydantic', 'httpx') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
