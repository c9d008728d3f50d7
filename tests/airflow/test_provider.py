"""Airflow finds the provider through its entry point and lists the ``ges`` connection type."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import airflow_provider_ges
from airflow_provider_ges.assets import sanitize_uri
from airflow_provider_ges.hooks.ges import GesHook


def test_entry_point_resolves_to_provider_info() -> None:
    (ep,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_ges")
    ]
    info = ep.load()()
    assert info == airflow_provider_ges.get_provider_info()
    assert info["package-name"] == "airflow-provider-ges"
    (conn_type,) = info["connection-types"]
    assert conn_type["hook-class-name"] == "airflow_provider_ges.hooks.ges.GesHook"
    assert conn_type["connection-type"] == "ges"
    modules = {
        m
        for kind in ("hooks", "sensors", "operators", "triggers")
        for e in info[kind]
        for m in e["python-modules"]
    }
    for module in modules:
        importlib.import_module(module)  # every declared module exists
    assert GesHook.conn_type == "ges" and GesHook.default_conn_name == "ges_default"
    assert GesHook.conn_name_attr == "ges_conn_id"


def airflow_cli(*args: str) -> list[dict[str, str]]:
    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run(
        [str(airflow), *args, "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    ).stdout
    table = next(line for line in out.splitlines() if line.startswith("[{"))  # past any log lines
    return list(json.loads(table))


def test_airflow_cli_lists_provider_and_connection_type() -> None:
    providers = airflow_cli("providers", "list")
    assert any(p["package_name"] == "airflow-provider-ges" for p in providers)
    hooks = airflow_cli("providers", "hooks")
    ges = [h for h in hooks if h["connection_type"] == "ges"]
    assert ges and ges[0]["class"] == "airflow_provider_ges.hooks.ges.GesHook"


def test_dag_parse_imports_no_hook_or_models() -> None:
    """A DAG file using the sensor and operator pulls in neither HTTP code nor the pydantic models."""
    code = (
        "import sys; import airflow.sdk; "
        "import airflow_provider_ges.sensors.ges, airflow_provider_ges.operators.ges; "
        "from airflow_provider_ges.sensors.ges import GesBackupSensor; "
        "GesBackupSensor(task_id='t', graph_name='g', newer_than='2026-01-01T00:00:00Z'); "
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_ges.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1].replace("'", '"')))
    heavy = {
        f"airflow_provider_ges.{m}"
        for m in (
            "hooks.ges",
            "models",
            "gate",
            "plans",
            "replies",
            "endpoints",
            "connection",
            "signer",
            "auth",
        )
    }
    assert loaded & heavy == set()
    assert "airflow_provider_ges.times" in loaded and "airflow_provider_ges.enums" in loaded


def test_ges_asset_scheme_is_registered() -> None:
    from airflow.sdk.definitions.asset import _get_uri_normalizer  # what Asset() asks, on 3.1-3.3

    assert airflow_provider_ges.get_provider_info()["asset-uris"] == [
        {"schemes": ["ges"], "handler": "airflow_provider_ges.assets.sanitize_uri"}
    ]
    assert _get_uri_normalizer("ges") is sanitize_uri


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("ges://movies/backups", "ges://movies/backups"),
        ("GES://Movies_2026/backups//#tonight", "ges://Movies_2026/backups"),
    ],
)
def test_airflow_asset_with_a_ges_uri_is_normalised(given: str, canonical: str) -> None:
    from airflow.sdk import Asset

    assert Asset(name="movies_backups", uri=given).uri == canonical


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("ges://movies", "the path is '/', not '/backups'"),
        ("ges://movies/jobs", "the path is '/jobs', not '/backups'"),
        ("ges://mov/backups", "'mov' is not a graph name"),
        ("ges://2movies/backups", "'2movies' is not a graph name"),
        ("ges://movies-dr/backups", "'movies-dr' is not a graph name"),
        ("ges://admin@movies/backups", "it names a user or a port"),
        ("ges://movies:8080/backups", "it names a user or a port"),
        ("ges://movies/backups?method=auto", "it has a query"),
    ],
)
def test_airflow_asset_with_a_malformed_ges_uri_is_refused(uri: str, problem: str) -> None:
    from airflow.sdk import Asset

    shown = uri if uri != "ges://movies" else "ges://movies/"  # Airflow makes an empty path '/'
    expected = f"Asset URI {shown!r}: {problem}; expected ges://<graph>/backups"
    with pytest.raises(ValueError, match=re.escape(expected)):
        Asset(name="movies_backups", uri=uri)
