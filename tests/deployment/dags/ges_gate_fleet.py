"""100 deferrable gates in one run (mapped over 100 graphs), for the triggerer load test in
tests/deployment/test_gates.py: all wait in one triggerer at once, then pass after one flip."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_ges.sensors.ges import GesBackupSensor

FLEET = [f"fleet_{i:03d}" for i in range(100)]

with DAG(
    dag_id="ges_gate_fleet",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=128,
    tags=["ges", "deployment-test"],
):
    gates = GesBackupSensor.partial(
        task_id="wait_for_backup", deferrable=True, poke_interval=2, timeout=600
    ).expand(graph_name=FLEET)

    @task
    def count(backups: list[dict[str, Any]]) -> int:
        return len({b["graph_name"] for b in backups})

    count(gates.output)
