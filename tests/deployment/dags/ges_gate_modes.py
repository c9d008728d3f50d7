"""The example's gate with the sensor's mode set and a 2 s poke interval, one DAG per mode.

Only the real-deployment tests (tests/deployment/test_gates.py) use these: they mirror
``airflow_provider_ges/example_dags/example_ges_backup_gate.py`` (graph_name from params, default
newer_than: the run's data interval start, or its ``run_after`` when it has none) with a short
interval, so a test sees the wait and the pass in seconds. ``retries=2`` so a lost trigger or a
wrongly retried failure shows as a second try instead of hiding as a failure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_ges.sensors.ges import GesBackupSensor

MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
    "aksk": {"deferrable": True, "ges_conn_id": "ges_aksk"},
}

for name, mode in MODES.items():
    with DAG(
        dag_id=f"ges_gate_{name}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"graph_name": Param("movies", type="string")},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
        tags=["ges", "deployment-test"],
    ):
        wait_for_backup = GesBackupSensor(
            task_id="wait_for_backup",
            graph_name="{{ params.graph_name }}",
            poke_interval=2,
            timeout=300,
            **mode,
        )

        @task
        def run_etl(backup: dict[str, Any]) -> str:
            print(f"ETL reads graph {backup['graph_name']!r} as of backup {backup['id']}")
            return str(backup["id"])

        run_etl(wait_for_backup.output)
