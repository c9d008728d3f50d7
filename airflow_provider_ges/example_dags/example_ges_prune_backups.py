"""Weekly retention of a graph's manual backups: keep the newest 4, delete older ones past 4 weeks.

A dry run first logs (and returns) what the rule would delete; the prune then deletes that. A
backup goes only if both rules say so; a running backup, and the graph's newest successful
backup, never go. Automatic backups are left to GES's own policy (``backup_method="manual"``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_ges.operators.ges import GesPruneBackupsOperator

# One retention rule for the preview and the prune.
KEEP_LAST, OLDER_THAN, METHOD = 4, timedelta(weeks=4), "manual"

with DAG(
    dag_id="example_ges_prune_backups",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"graph_name": Param("movies", type="string", description="The GES graph to prune")},
    tags=["example", "ges"],
):
    preview, prune = (
        GesPruneBackupsOperator(
            task_id=task_id,
            graph_name="{{ params.graph_name }}",
            keep_last=KEEP_LAST,
            older_than=OLDER_THAN,
            backup_method=METHOD,
            dry_run=dry_run,
        )
        for task_id, dry_run in (("preview_prune", True), ("prune", False))
    )

    preview >> prune
