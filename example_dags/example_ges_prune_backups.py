"""Weekly retention of a graph's manual backups: keep the newest 4, delete older ones past 4 weeks.

A dry run first logs (and returns) what the rule would delete; the prune then deletes that. A
backup goes only if both rules say so; a running backup, and the graph's newest successful
backup, never go. Automatic backups are left to GES's own policy (``backup_method="manual"``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesPruneBackupsOperator

RULE = {"keep_last": 4, "older_than": timedelta(weeks=4), "backup_method": "manual"}

with DAG(
    dag_id="example_ges_prune_backups",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"graph_name": Param("movies", type="string", description="The GES graph to prune")},
    tags=["example", "ges"],
):
    preview = GesPruneBackupsOperator(
        task_id="preview_prune", graph_name="{{ params.graph_name }}", dry_run=True, **RULE
    )
    prune = GesPruneBackupsOperator(task_id="prune", graph_name="{{ params.graph_name }}", **RULE)

    preview >> prune
