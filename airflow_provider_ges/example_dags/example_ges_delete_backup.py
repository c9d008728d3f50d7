"""Delete one GES backup by id, after checking it may go.

Trigger it by hand with the ``backup_id`` to delete. The task refuses, before any change, a backup
that is still running and the graph's newest successful backup; a backup that is not there is fine
(``missing_ok``). A DELETE whose reply was lost, and that GES then says is gone, counts as deleted.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesDeleteBackupOperator

with DAG(
    dag_id="example_ges_delete_backup",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "graph_name": Param("movies", type="string", description="The GES graph"),
        "backup_id": Param("", type="string", description="The id of the backup to delete"),
    },
    tags=["example", "ges"],
):
    GesDeleteBackupOperator(
        task_id="delete_backup",
        graph_name="{{ params.graph_name }}",
        backup_id="{{ params.backup_id }}",
    )
