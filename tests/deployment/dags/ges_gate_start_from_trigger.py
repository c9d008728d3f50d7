"""Gates that start in the triggerer (``start_from_trigger=True``), for tests/deployment/test_gates.py.

``ges_gate_start_from_trigger`` mirrors the example's gate (graph_name from params, templated; the
default ``newer_than``: the run's ``run_after``, rendered by the triggerer) with a 2 s poke interval.
``retries=0``: a failure ends the task in the triggerer (a task with retries fails in a worker
instead, so that it does not retry), and a lost trigger or a retry shows as a failed or second try.
``do_xcom_push=False``: a pass ends in the triggerer too (a pass that pushes the backup ends in a
worker: Airflow 3.3.2 stores a triggerer's XCom so that a worker pulls a string). The job sensor of
``ges_job_start_from_trigger`` pushes its job: it passes in a worker, and fails fast in the triggerer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_ges.sensors.ges import GesBackupSensor, GesJobSensor

with DAG(
    dag_id="ges_gate_start_from_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"graph_name": Param("movies", type="string")},
    default_args={"retries": 0},
    tags=["ges", "deployment-test"],
):
    wait_for_backup = GesBackupSensor(
        task_id="wait_for_backup",
        graph_name="{{ params.graph_name }}",
        start_from_trigger=True,
        do_xcom_push=False,
        poke_interval=2,
        timeout=300,
    )

    @task
    def run_etl(params: dict[str, Any]) -> str:
        print(f"ETL reads graph {params['graph_name']!r}")
        return str(params["graph_name"])

    wait_for_backup >> run_etl()

with DAG(
    dag_id="ges_job_start_from_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"graph_name": Param("movies", type="string"), "job_id": Param("none", type="string")},
    default_args={"retries": 0},
    tags=["ges", "deployment-test"],
):
    GesJobSensor(
        task_id="wait_for_job",
        graph_name="{{ params.graph_name }}",
        job_id="{{ params.job_id }}",
        start_from_trigger=True,
        poke_interval=1,
        timeout=300,
    )
