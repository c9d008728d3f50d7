"""Gate a nightly ETL on tonight's successful GES backup.

The sensor waits in the triggerer (deferrable: no worker slot held) until the graph has a backup
that started after the run began and succeeded; it fails at once if that backup failed. "The run
began" is the sensor's default ``newer_than``: the run's data interval start, or, for a manual run
without a logical date, the moment it was triggered, so scheduled, manual and backfill runs all
work. The ETL task then reads the backup it was let through by from XCom. The sensor looks every 5
minutes; ``GES_EXAMPLE_POLL_INTERVAL`` (seconds, read at parse time) changes that for a demo.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_ges.sensors.ges import GesBackupSensor

POKE_INTERVAL = float(os.environ.get("GES_EXAMPLE_POLL_INTERVAL", "300"))

with DAG(
    dag_id="example_ges_backup_gate",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"graph_name": Param("movies", type="string", description="The GES graph the ETL reads")},
    tags=["example", "ges"],
):
    wait_for_backup = GesBackupSensor(
        task_id="wait_for_backup",
        graph_name="{{ params.graph_name }}",
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=timedelta(hours=6).total_seconds(),
    )

    @task
    def run_etl(backup: dict[str, Any]) -> str:
        print(
            f"ETL reads graph {backup['graph_name']!r} as of backup {backup['name']!r} "
            f"(id {backup['id']}, {backup['backupMethod']}, finished {backup['endTime']} UTC)"
        )
        return str(backup["id"])

    run_etl(wait_for_backup.output)
