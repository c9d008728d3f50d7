"""Roll a GES graph back to a known-good backup. Restoring throws away the graph's current data.

Trigger it by hand with the ``backup_id`` to restore (e.g. the one ``example_ges_backup_then_etl``
logged before a load that went wrong). The task checks that the backup exists, belongs to the
graph and succeeded before it touches the graph; then it stops the graph, starts it from the
backup and waits (deferred) for the start. A run without a ``backup_id`` is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesRestoreGraphOperator

with DAG(
    dag_id="example_ges_restore_graph",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "graph_name": Param("movies", type="string", description="The GES graph to restore"),
        "backup_id": Param("", type="string", description="The id of the backup to restore from"),
    },
    tags=["example", "ges"],
):
    GesRestoreGraphOperator(
        task_id="restore_graph",
        graph_name="{{ params.graph_name }}",
        backup_id="{{ params.backup_id }}",
        deferrable=True,
        poll_interval=30,
        timeout=timedelta(hours=1).total_seconds(),
    )
