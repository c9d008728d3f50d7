"""Wait for a GES job started elsewhere (a backup, stop or start of a graph), then go on.

Trigger it by hand with the ``job_id`` a script or the console printed. The sensor waits in the
triggerer and fails at once, with GES's fail reason, if the job failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_ges.sensors.ges import GesJobSensor

with DAG(
    dag_id="example_ges_wait_for_job",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "graph_name": Param("movies", type="string", description="The job's GES graph"),
        "job_id": Param("", type="string", description="The job to wait for"),
    },
    tags=["example", "ges"],
):
    wait_for_job = GesJobSensor(
        task_id="wait_for_job",
        graph_name="{{ params.graph_name }}",
        job_id="{{ params.job_id }}",
        deferrable=True,
        poke_interval=30,
        timeout=timedelta(hours=2).total_seconds(),
    )

    @task
    def report(job: dict[str, Any]) -> str:
        print(f"{job.get('jobName')} {job['jobId']} ended {job['status']} at {job.get('endTime')} UTC")
        return str(job["status"])

    report(wait_for_job.output)
