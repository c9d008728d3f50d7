"""Back up a GES graph, then run a risky load: the ETL only starts once the new backup succeeded.

The backup is waited for in the triggerer (deferrable: no worker slot held). If a backup of the
graph is already running, the task attaches to it instead of starting a second one. The ETL task
reads the new backup (the API's fields) from XCom, so it can log the restore point it leaves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_ges.operators.ges import GesCreateBackupOperator

with DAG(
    dag_id="example_ges_backup_then_etl",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"graph_name": Param("movies", type="string", description="The GES graph the ETL loads")},
    tags=["example", "ges"],
):
    backup = GesCreateBackupOperator(
        task_id="backup_graph",
        graph_name="{{ params.graph_name }}",
        deferrable=True,
        poll_interval=30,
        timeout=timedelta(hours=2).total_seconds(),
    )

    @task
    def run_etl(backup: dict[str, Any]) -> str:
        print(
            f"Loading into graph {backup['graph_name']!r}; restore point: backup {backup['name']!r}"
            f" (id {backup['id']}, finished {backup.get('endTime')} UTC)"
        )
        return str(backup["id"])

    run_etl(backup.output)
